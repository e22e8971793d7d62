"""GET /export (issue #17): streamed CSV and JSON Lines against a real slotd.

- every trade exactly as the per-symbol query answers it (JSONL: the same
  maps plus "symbol" and "kind"; CSV: the same values as exact text), for
  all symbols, several named ones in the order given, and a time range
- chunked transfer encoding, and the connection stays usable after it
- a slow reader of a large export: slotd's resident memory grows by a
  bounded amount, not by the export's size (one piece at a time is made,
  when the previous one was written)
- bad parameters: 400 BAD_QUERY naming the parameter, 404 NOT_FOUND for an
  unknown symbol, 401 without the token under --token
- over HTTPS (--tls-http-port): the same bytes as the plain export, pieces
  encrypted one at a time as they are made
"""
import csv
import http.client
import io
import json
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Results, Slotd, random_decimal  # noqa: E402

BUILD = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
SLOTLOAD = os.path.join(BUILD, "load", "slotload")
TS0 = 1767225600 * 10 ** 9
TOKEN = "export-token"


def fill(s, rng):
    """Trades of three trade symbols (one with a CSV-hostile name) and one
    option_trade symbol, negative prices and 8-decimal values included."""
    syms = ["AAPL", "MSFT", 'we,ird"sym']
    with s.sender("fill") as snd:
        for i in range(3000):
            px = random_decimal(rng)
            if i % 7 == 0:
                px = "-" + px
            snd.trade(syms[i % 3], TS0 + i * 1000, px, random_decimal(rng),
                      side=rng.choice(["B", "S", None]), id=i)
        for i in range(500):
            snd.send({"sym": "OPT", "ts": TS0 + i, "px": random_decimal(rng), "qty": 3,
                      "strike": "150.5", "expiry": TS0 + 10 ** 12, "right": "CP"[i % 2]},
                     kind="option_trade")
        snd.flush()
    return syms + ["OPT"]


def query_trades(s, sym, frm=None, to=None):
    """Every trade of sym through GET /symbols/{sym}/trades, page by page."""
    out, cursor = [], 0
    while cursor is not None:
        q = "/symbols/%s/trades?limit=10000&cursor=%d" % (
            urlq(sym), cursor) + ("&from=%d" % frm if frm is not None else "") + (
            "&to=%d" % to if to is not None else "")
        status, doc = s.http_json(q)
        assert status == 200, (q, doc)
        out += doc["trades"]
        cursor = doc["next_cursor"]
    return out


def urlq(s):
    from urllib.parse import quote
    return quote(s, safe="")


def export(s, query, headers=None):
    status, hdrs, body = s.http_get("/export?" + query, headers)
    return status, {k.lower(): v for k, v in hdrs.items()}, body


def jsonl_by_symbol(body):
    got = {}
    for line in body.decode().splitlines():
        rec = json.loads(line)
        sym = rec.pop("symbol")
        got.setdefault(sym, []).append(rec)
    return got


def expected(s, syms, frm=None, to=None):
    exp = {}
    for sym in syms:
        kind = s.http_json("/symbols/" + urlq(sym))[1]["kind"]
        exp[sym] = [dict(t, kind=kind) for t in query_trades(s, sym, frm, to)]
    return exp


def test_jsonl_every_trade(s, syms):
    status, hdrs, body = export(s, "syms=*&format=jsonl")
    assert status == 200, (status, body[:200])
    assert hdrs["transfer-encoding"] == "chunked" and "content-length" not in hdrs, hdrs
    assert hdrs["content-type"] == "application/x-ndjson", hdrs
    got = jsonl_by_symbol(body)
    exp = expected(s, syms)
    assert sorted(got) == sorted(exp), (sorted(got), sorted(exp))
    for sym in syms:
        assert len(got[sym]) == len(exp[sym]), (sym, len(got[sym]), len(exp[sym]))
        assert got[sym] == exp[sym], sym  # same keys, same values, same order
    # exact decimals travel as text: negative prices included
    assert any(t["px_s"].startswith("-") for t in got["AAPL"])


def csv_rows(body):
    rows = list(csv.DictReader(io.StringIO(body.decode(), newline="")))
    return rows


def test_csv_every_trade(s, syms):
    status, hdrs, body = export(s, "syms=*&format=csv")
    assert status == 200, (status, body[:200])
    assert hdrs["content-type"].startswith("text/csv"), hdrs
    header = body.split(b"\n", 1)[0].decode()
    assert header == "symbol,kind,ts,px,qty,side,id,strike,expiry,right", header
    rows = csv_rows(body)
    exp = expected(s, syms)
    by = {}
    for r in rows:
        by.setdefault(r["symbol"], []).append(r)
    assert sorted(by) == sorted(exp)
    for sym in syms:
        assert len(by[sym]) == len(exp[sym]), sym
        for r, t in zip(by[sym], exp[sym]):
            assert r["kind"] == t["kind"]
            assert int(r["ts"]) == t["ts"] and int(r["id"]) == t["id"], (r, t)
            assert r["px"] == t["px_s"] and r["qty"] == t["qty_s"], (r, t)
            assert r["side"] == t["side"], (r, t)
            if t["kind"] == "option_trade":
                assert r["strike"] == t["strike_s"] and int(r["expiry"]) == t["expiry"]
                assert r["right"] == t["right"]
            else:
                assert r["strike"] == r["expiry"] == r["right"] == "", r


def test_range_and_named_symbols(s, syms):
    frm, to = TS0 + 500 * 1000, TS0 + 1700 * 1000
    status, _, body = export(s, "syms=MSFT,AAPL&format=jsonl&from=%d&to=%d" % (frm, to))
    assert status == 200, body[:200]
    lines = [json.loads(x) for x in body.decode().splitlines()]
    order = [x["symbol"] for x in lines]
    # the order given: every MSFT trade, then every AAPL trade
    assert order == ["MSFT"] * order.count("MSFT") + ["AAPL"] * order.count("AAPL"), order[:5]
    got = jsonl_by_symbol(body)
    exp = expected(s, ["MSFT", "AAPL"], frm, to)
    assert got == exp
    assert 0 < len(got["AAPL"]) < 1000 and all(frm <= t["ts"] < to for t in got["AAPL"])
    # RFC 3339 times as in the queries; an empty range is a header only
    status, _, body = export(s, "syms=AAPL&from=2030-01-01T00:00:00Z")
    assert status == 200 and body == b"symbol,kind,ts,px,qty,side,id,strike,expiry,right\n", body


def test_keep_alive_after_export(s, syms):
    conn = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=30)
    try:
        conn.request("GET", "/export?syms=OPT&format=jsonl")
        r = conn.getresponse()
        assert r.status == 200
        assert len(r.read().splitlines()) == 500
        conn.request("GET", "/symbols/OPT")  # the same connection
        r = conn.getresponse()
        assert r.status == 200 and json.loads(r.read())["count"] == 500
    finally:
        conn.close()


def test_bad_params(s, syms):
    for q, param in [("format=csv", "syms"), ("syms=AAPL&format=xml", "format"),
                     ("syms=AAPL&from=yesterday", "from"), ("syms=AAPL&to=x", "to"),
                     ("syms=AAPL&limit=5", "limit"), ("syms=AAPL,,MSFT", "syms"),
                     ("syms=AAPL,AAPL", "AAPL"), ("syms=" + "X" * 32, "syms")]:
        status, _, body = export(s, q)
        doc = json.loads(body)
        assert status == 400 and doc["error"] == "BAD_QUERY", (q, status, doc)
        assert param in doc["message"], (q, doc)
    status, _, body = export(s, "syms=AAPL&from=%d&to=%d" % (TS0 + 5, TS0 + 5))
    assert status == 400 and json.loads(body)["error"] == "BAD_QUERY", body
    status, _, body = export(s, "syms=AAPL,NOPE")
    doc = json.loads(body)
    assert status == 404 and doc["error"] == "NOT_FOUND" and "NOPE" in doc["message"], doc


def test_token():
    with Slotd(["--token", TOKEN]) as s:
        with s.sender("t", token=TOKEN) as snd:
            snd.trade("AAPL", TS0, "1.5", 2)
        status, hdrs, body = export(s, "syms=*")
        assert status == 401 and json.loads(body)["error"] == "UNAUTHORIZED", body
        status, _, body = export(s, "syms=*&format=jsonl", {"Authorization": "Bearer " + TOKEN})
        assert status == 200 and json.loads(body)["px_s"] == "1.5", body


def vmrss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_slow_reader_bounded():
    """A 400,000-trade JSONL export (~60 MB) read slowly: slotd's RSS grows by
    a few pieces, not by the export. Were every piece made at once (written
    without waiting for the reader), the whole export would sit in slotd."""
    n = 400000
    with Slotd(["--max-memory", "512M"]) as s:
        subprocess.run([SLOTLOAD, "--port", str(s.tcp_port), "--http-port", "0", "--trades",
                        str(n), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
        pid = s.proc.pid
        before = vmrss(pid)
        sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=60)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.sendall(b"GET /export?syms=*&format=jsonl HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
        got, peak = 0, 0
        data = bytearray()
        for _ in range(40):  # ~2 MB over ~2 s: the server is far ahead of us
            chunk = sock.recv(48 << 10)
            assert chunk, "closed early"
            data += chunk
            got += len(chunk)
            time.sleep(0.05)
            peak = max(peak, vmrss(pid))
        while True:  # then the rest, fast: the export is complete
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        sock.close()
        head, _, body = bytes(data).partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head, head
        total = dechunk(body)
        lines = total.count(b"\n")
        assert lines == n, (lines, n)
        assert len(total) > 40 << 20, len(total)
        growth = peak - before
        print("    export %.1f MB; slotd RSS growth while read slowly: %.1f MB"
              % (len(total) / 2 ** 20, growth / 2 ** 20))
        assert growth < 16 << 20, growth


def test_export_over_https():
    """A multi-piece export read over HTTPS equals the plain one byte for byte."""
    d = tempfile.mkdtemp(prefix="slotd-export-tls-")
    crt, key = os.path.join(d, "crt.pem"), os.path.join(d, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with Slotd(["--tls-http-port", "0", "--tls-cert", crt, "--tls-key", key]) as s:
        fill(s, random.Random(5))
        fill(s, random.Random(6))  # ~7,000 trades: more than one ~256 KiB piece
        status, _, plain = export(s, "syms=*&format=jsonl")
        assert status == 200 and len(plain) > 600_000, (status, len(plain))
        conn = http.client.HTTPSConnection("127.0.0.1", s.tls_http_port, timeout=60,
                                           context=ssl.create_default_context(cafile=crt))
        try:
            for _ in range(2):  # and the connection stays usable after it
                conn.request("GET", "/export?syms=*&format=jsonl")
                r = conn.getresponse()
                assert r.status == 200 and r.getheader("Transfer-Encoding") == "chunked"
                assert r.read() == plain
        finally:
            conn.close()


def dechunk(body):
    out, i = bytearray(), 0
    while True:
        j = body.index(b"\r\n", i)
        size = int(body[i:j], 16)
        i = j + 2
        if size == 0:
            assert body[i:i + 2] == b"\r\n"
            return bytes(out)
        out += body[i:i + size]
        assert body[i + size:i + size + 2] == b"\r\n"
        i += size + 2


def main():
    r = Results()
    rng = random.Random(17)
    with Slotd() as s:
        syms = fill(s, rng)
        for t in (test_jsonl_every_trade, test_csv_every_trade, test_range_and_named_symbols,
                  test_keep_alive_after_export, test_bad_params):
            r.run(t, s, syms)
    r.run(test_token)
    r.run(test_slow_reader_bounded)
    r.run(test_export_over_https)
    r.finish()


if __name__ == "__main__":
    main()
