"""HTTP that asks who is calling, signed prices, clear messages: a real slotd.

Covers (issue #10, points 11 HTTP half, 13, 14, 17):
- --token: every HTTP endpoint but /healthz, /readyz and /metrics needs
  `Authorization: Bearer <token>`; 401 with WWW-Authenticate and a JSON
  error otherwise; the same token works for TCP HELLO.
- --http-probes-auth: the probes and /metrics need credentials too.
- --token and --token-file agree: one length rule (256 bytes), one trailing
  newline of the file stripped, a longer file refused at start-up.
- 256 keep-alive HTTP connections do not take /healthz and /readyz away:
  a reserve beyond the budget serves only them, one answer each.
- negative prices (px, strike) in every wire form, stored and served
  exactly (JSON and msgpack), signed notional, VWAP rounded half away from
  zero, top-N by a signed notional, through a snapshot restart; qty < 0 is
  BAD_VALUE.
- error messages that say which limit (and its flag) was exceeded, and a
  symbol with an encoded NUL shown as received.
"""
import json
import os
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import msgpack  # noqa: E402
from harness import Results, Slotd  # noqa: E402

TS0 = 1767225600 * 10 ** 9
TOKEN = "s3cret-Token_0123456789.~+/="


def get(s, path, token=None, raw_auth=None):
    headers = {}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if raw_auth is not None:
        headers["Authorization"] = raw_auth
    status, hdrs, body = s.http_get(path, headers)
    return status, {k.lower(): v for k, v in hdrs.items()}, body


def expect_401(s, path, **kw):
    status, hdrs, body = get(s, path, **kw)
    assert status == 401, (path, status, body)
    assert hdrs.get("www-authenticate", "").startswith("Bearer"), hdrs
    doc = json.loads(body)
    assert doc["error"] == "UNAUTHORIZED" and doc["message"], doc


def write_file(data):
    fd, path = tempfile.mkstemp(prefix="slotd-token-")
    os.write(fd, data)
    os.close(fd)
    return path


# ---- 13: authentication -----------------------------------------------------

def test_http_needs_token():
    path = write_file(TOKEN.encode() + b"\n")  # one newline: stripped
    try:
        with Slotd(["--token-file", path]) as s:
            c = s.connect("auth-feed", token=TOKEN)  # TCP: the same token
            c.send_batch(1, [{"sym": "SECRET", "ts": TS0, "px": "1.5", "qty": 1}])
            assert c.recv() == ["ACK", 1, 1]
            for p in ("/symbols/SECRET/trades", "/symbols/SECRET", "/symbols/SECRET/bars?interval=1s",
                      "/symbols", "/schema", "/stats", "/nope"):
                expect_401(s, p)
                expect_401(s, p, token="wrong")
                expect_401(s, p, token=TOKEN + "x")
                expect_401(s, p, token=TOKEN[:-1])
                expect_401(s, p, raw_auth="Basic " + TOKEN)
                expect_401(s, p, raw_auth=TOKEN)
            status, _, body = get(s, "/symbols/SECRET/trades", token=TOKEN)
            assert status == 200 and json.loads(body)["trades"][0]["px_s"] == "1.5", body
            # The scheme is case-insensitive (RFC 7235), spaces after it are fine.
            status, _, _ = get(s, "/stats", raw_auth="bearer   " + TOKEN)
            assert status == 200
            status, _, _ = get(s, "/nope", token=TOKEN)
            assert status == 404
            # Probes and the Prometheus scrape need no token.
            for p in ("/healthz", "/readyz", "/metrics"):
                status, _, _ = get(s, p)
                assert status == 200, p
            # Two Authorization headers are refused, whatever they hold.
            out = s.http_raw(("GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                              "Authorization: Bearer %s\r\nConnection: close\r\n\r\n"
                              % (TOKEN, TOKEN)).encode())
            assert out.startswith(b"HTTP/1.1 401 "), out[:100]
            # A header split over many reads still counts.
            sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
            req = ("GET /stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Connection: close\r\n\r\n" % TOKEN).encode()
            for i in range(0, len(req), 7):
                sock.sendall(req[i:i + 7])
            got = b""
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
            sock.close()
            assert got.startswith(b"HTTP/1.1 200 "), got[:100]
    finally:
        os.unlink(path)


def test_probes_auth():
    """--http-probes-auth: /healthz, /readyz and /metrics need credentials too
    (a Prometheus scrape then carries a bearer token); any valid credential
    will do, with --token or --auth-file; the refusals are counted."""
    import hashlib
    d = tempfile.mkdtemp(prefix="slotd-probes-")
    auth = os.path.join(d, "auth")
    with open(auth, "w") as f:
        salt = "0011223344556677"
        f.write("scraper:%s:%s:ingest\n" % (salt, hashlib.sha256((salt + "scr-Secret9").encode())
                                            .hexdigest()))
    try:
        with Slotd(["--token", TOKEN, "--http-probes-auth"]) as s:
            for p in ("/healthz", "/readyz", "/metrics"):
                expect_401(s, p)
                expect_401(s, p, token="wrong")
                status, _, body = get(s, p, token=TOKEN)
                assert status == 200, (p, status)
            status, _, body = get(s, "/metrics", token=TOKEN)
            assert b"slotd_auth_failures_total 6" in body, body
            assert TOKEN.encode() not in body and TOKEN not in s.logs()
        with Slotd(["--auth-file", auth, "--http-probes-auth"],
                   probe_token="scraper:scr-Secret9") as s:
            expect_401(s, "/metrics")
            expect_401(s, "/readyz", token="scraper:wrong")
            for p in ("/healthz", "/readyz", "/metrics"):
                status, _, _ = get(s, p, token="scraper:scr-Secret9")
                assert status == 200, (p, status)
            # ... but the data stays behind its own perm
            status, _, _ = get(s, "/stats", token="scraper:scr-Secret9")
            assert status == 403
        with Slotd(["--token", TOKEN]) as s:  # without the flag: open, as before
            for p in ("/healthz", "/readyz", "/metrics"):
                assert get(s, p)[0] == 200, p
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def test_no_token_no_auth():
    with Slotd() as s:
        status, _, _ = get(s, "/stats")
        assert status == 200
        status, _, _ = get(s, "/stats", token="anything")
        assert status == 200


def test_token_length_rule():
    """--token and --token-file: one rule. 256 bytes start, 257 do not."""
    t256, t257 = "a" * 256, "b" * 257
    ok = write_file(t256.encode() + b"\r\n")
    long_file = write_file(t257.encode())
    long_nl = write_file(t257.encode() + b"\n")
    empty = write_file(b"\n")
    spaced = write_file(b"two words\n")
    try:
        for args in (["--token", t257], ["--token-file", long_file], ["--token-file", long_nl],
                     ["--token-file", empty], ["--token-file", spaced], ["--token", "two words"],
                     ["--token", ""], ["--token-file", "/nonexistent/token"]):
            s = Slotd(args)
            try:
                rc = s.start(expect_exit=True)
                assert rc != 0, (args, rc)
                log = s.logs()
                assert "token" in log, log
            finally:
                s.__exit__(None, None, None)
        for args in (["--token", t256], ["--token-file", ok]):
            with Slotd(args) as s:
                c = s.connect("long-token", token=t256)
                c.close()
                status, _, _ = get(s, "/stats", token=t256)
                assert status == 200, args
                expect_401(s, "/stats", token=t256[:-1])
    finally:
        for p in (ok, long_file, long_nl, empty, spaced):
            os.unlink(p)


# ---- 11: connection exhaustion ----------------------------------------------

def read_response(sock):
    """One Content-Length framed response: (status, headers, body)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return None, {}, buf
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    hdrs = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", 0))
    while len(rest) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), hdrs, rest[:n]


def request(port, path, token=None):
    """A fresh connection, one request: (status, headers, body, closed_after)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        auth = "Authorization: Bearer %s\r\n" % token if token else ""
        sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, auth)).encode())
        status, hdrs, body = read_response(sock)
        closed = sock.recv(1) == b""
        return status, hdrs, body, closed
    finally:
        sock.close()


def test_health_beyond_connection_budget():
    with Slotd(["--token", TOKEN]) as s:
        keep = []
        try:
            # Let the harness's own readiness connection leave the budget first.
            time.sleep(0.3)
            # 256 keep-alive connections, each served once and left open.
            for _ in range(256):
                k = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
                k.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                keep.append(k)
            for k in keep:
                status, hdrs, _ = read_response(k)
                assert status == 200 and hdrs["connection"] == "keep-alive", (status, hdrs)
            # The budget is spent, yet the probes answer, one request per connection.
            for p in ("/healthz", "/readyz"):
                status, hdrs, body, closed = request(s.http_port, p)
                assert status == 200, (p, status, body)
                assert hdrs["connection"] == "close" and closed, hdrs
            # Anything else from the reserve: 503, closed, even with the token.
            status, hdrs, body, closed = request(s.http_port, "/stats", TOKEN)
            assert status == 503 and json.loads(body)["error"] == "TOO_MANY_CONNECTIONS", body
            assert closed
            # The keep-alive connections still work.
            keep[0].sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(keep[0])[0] == 200
            # A reserve connection that says nothing is answered 503 and closed
            # (sooner than the budget's 10 s head timeout).
            idle = socket.create_connection(("127.0.0.1", s.http_port), timeout=30)
            status, _, body = read_response(idle)
            assert status == 503 and b"TOO_MANY_CONNECTIONS" in body, (status, body)
            assert idle.recv(1) == b""
            idle.close()
        finally:
            for k in keep:
                k.close()


# ---- 14: signed prices ------------------------------------------------------

def tcp_symbol(c, sym):
    r = c.query(7, {"op": "symbol", "sym": sym})
    assert r[0] == "R", r
    return r[2]


def check_signed(s):
    status, _, body = get(s, "/symbols/CL/trades")
    assert status == 200, body
    trades = json.loads(body)["trades"]
    assert [t["px_s"] for t in trades] == ["-37.63", "-37.63", "-5", "10.01"], trades
    assert trades[0]["px"] == -37.63 and trades[2]["px"] == -5, trades
    assert b'"px": -37.63' in body or b'"px":-37.63' in body, body[:300]
    status, _, body = get(s, "/symbols/CL")
    doc = json.loads(body)
    # notional = -376.3 - 206.965 - 10 + 10.01; vwap = -583.255 / 18.5
    assert doc["notional_s"] == "-583.255" and doc["notional"] == -583.255, doc
    assert doc["volume_s"] == "18.5", doc
    assert doc["vwap_s"] == "-31.5272973", doc
    assert (doc["open_s"], doc["high_s"], doc["low_s"], doc["close_s"]) == \
        ("-37.63", "10.01", "-37.63", "10.01"), doc
    # Half away from zero: -0.000000005 -> -0.00000001 (half up would give 0).
    assert json.loads(get(s, "/symbols/HALF")[2])["vwap_s"] == "-0.00000001"
    status, _, body = get(s, "/symbols/CL/bars?interval=1s")
    bar = json.loads(body)["bars"][0]
    assert bar["low_s"] == "-37.63" and bar["vwap_s"] == "-31.5272973", bar
    # Top by notional orders signed values: positive first, CL last.
    top = json.loads(get(s, "/symbols?by=notional&top=10")[2])["symbols"]
    assert [t["symbol"] for t in top] == ["POS", "HALF", "SPRD", "CL", "BIG"], top
    assert json.loads(get(s, "/symbols/SPRD/trades")[2])["trades"][0]["strike_s"] == "-2.5"
    # The schema says which slots are signed (the kind table declares it).
    sch = json.loads(get(s, "/schema")[2])
    slots = {sl["name"]: sl for k in sch["kinds"] for sl in k["slots"]}
    assert slots["px"]["signed"] and slots["strike"]["signed"], slots
    assert not slots["qty"]["signed"] and not slots["ts"]["signed"], slots
    # msgpack (TCP Q): the same numbers.
    c = s.connect("signed-q")
    doc = tcp_symbol(c, "CL")
    assert doc["notional_s"] == "-583.255" and doc["vwap_s"] == "-31.5272973", doc
    assert doc["low"] == -37.63 and doc["notional"] == -583.255, doc
    r = c.query(8, {"op": "trades", "sym": "CL"})
    assert [t["px"] for t in r[2]["trades"]] == [-37.63, -37.63, -5.0, 10.01], r
    c.close()


def test_negative_prices():
    with Slotd(["--checkpoint-on-exit"]) as s:
        c = s.connect("signed")
        c.send_batch(1, [
            {"sym": "CL", "ts": TS0, "px": "-37.63", "qty": 10},          # decimal string
            {"sym": "CL", "ts": TS0 + 1, "px": -37.63, "qty": "5.5"},    # float64
            ["CL", TS0 + 2, -5, 2],                                       # negative int, array
            ["CL", TS0 + 3, "10.01", 1],
            {"sym": "HALF", "ts": TS0, "px": "-0.00000001", "qty": "0.5"},
            {"sym": "HALF", "ts": TS0 + 1, "px": "-0", "qty": "0.5"},
            {"sym": "POS", "ts": TS0, "px": 100, "qty": 1},
        ])
        assert c.recv() == ["ACK", 1, 7]
        c.send_batch(2, [["SPRD", TS0, "-1.25", 1, "B", 7, "-2.5", TS0 + 10 ** 12, "C"]],
                     "option_trade")
        assert c.recv() == ["ACK", 2, 1]
        # Quantities stay >= 0, in every form; nothing of the batch is stored.
        # (A refused seq is resent until it is stored: PROTOCOL.md 5.)
        for qty in (-1, "-1", -1.5, "-0.00000001"):
            c.send_batch(3, [["CL", TS0 + 9, "1", 1], {"sym": "CL", "ts": TS0, "px": "1", "qty": qty}])
            r = c.recv()
            assert r[0] == "ERR" and r[2] == "BAD_VALUE" and r[4] == 1, r
            assert "qty" in r[3] and "negative" in r[3], r
        # The range is symmetric: -92233720368.54775807 fits, one unit more does not.
        for px, why in (("-92233720368.54775808", "range"), ("-1.000000001", "decimal")):
            c.send_batch(3, [["BIG", TS0, px, 1]])
            r = c.recv()
            assert r[2] == "BAD_VALUE" and "px" in r[3] and why in r[3], r
        c.send_batch(3, [["BIG", TS0, "-92233720368.54775807", 1]])
        assert c.recv() == ["ACK", 3, 1]
        c.close()
        check_signed(s)
        # Through a snapshot (--checkpoint-on-exit) and back.
        assert s.stop() == 0
        s.start()
        check_signed(s)


# ---- 17: messages -----------------------------------------------------------

def test_messages_name_the_limit():
    with Slotd(["--max-message", "64K", "--max-depth", "6", "--max-batch", "5000"]) as s:
        # A batch of 6-value trades just over 64 KiB: the last trade's header
        # is where the framer sees the message cannot fit.
        trades = [["M%d" % (i % 10), TS0 + i, 1, 1, "B", i] for i in range(4000)]
        msg = msgpack.packb(["T", 1, trades], use_bin_type=True)
        assert len(msg) > 65536
        c = s.connect("big")
        c.send_raw(msg)
        r = c.recv()
        assert r[2] == "TOO_LARGE", r
        assert "--max-message" in r[3] and "65536" in r[3], r
        assert c.closed()
        d = s.connect("deep")
        d.send_batch(1, [["DEEP", [[[[1]]]], 1, 1]])
        r = d.recv()
        assert r[2] == "TOO_LARGE" and "--max-depth" in r[3] and "6" in r[3], r
        e = s.connect("many")
        e.send_batch(1, [["X", 1, 1, 1]] * 5001)
        r = e.recv()
        assert r[2] == "TOO_LARGE" and "--max-batch" in r[3] and "5000" in r[3], r
        # An encoded NUL in the path: the symbol as received, escaped.
        status, _, body = get(s, "/symbols/A%00B")
        doc = json.loads(body)
        assert status in (400, 404), (status, doc)
        assert "A\\x00B" in doc["message"], doc
        status, _, body = get(s, "/symbols/A%01B/trades")
        assert "A\\x01B" in json.loads(body)["message"], body


if __name__ == "__main__":
    res = Results()
    for fn in (test_http_needs_token, test_probes_auth, test_no_token_no_auth, test_token_length_rule,
               test_health_beyond_connection_budget, test_negative_prices,
               test_messages_name_the_limit):
        res.run(fn)
    res.finish()
