"""HTTP endpoints end to end: a real slotd, trades ingested over TCP, every
endpoint's figures checked against values computed here with exact decimals.

Covers: /healthz /readyz /stats /metrics (promtool-clean) /schema /symbols
(top-N), /symbols/{sym} (out-of-order OHLC semantics), trades paging with
cursors and time ranges (ns and RFC 3339), bars, both record kinds,
percent-encoded symbols, TCP Q giving the same answer as HTTP, bad
parameters (400 + JSON error), unknown symbol/path (404), POST (405 +
Allow), oversized headers (431) and URLs (414), a slow-loris client being
closed while ingest carries on, keep-alive and pipelining, HEAD, HTTP/1.0,
and the connection limit.
"""
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from decimal import Decimal, ROUND_HALF_UP
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(__file__))
from harness import Results, Slotd  # noqa: E402

TS0 = 1767225600 * 10 ** 9          # 2026-01-01T00:00:00Z
SEC = 10 ** 9
OPT = "AAPL 260116P200"             # a space: the path needs %20
UNI = "\u00c9TF\u00e9"               # UTF-8 in the path


def fmt(d):
    """Shortest exact decimal text, as slotd's *_s fields give it."""
    d = Decimal(d)
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    return format(d.normalize(), "f")


class Agg:
    """count, volume, notional, VWAP, OHLC: ts decides open/close (ties: arrival)."""

    def __init__(self):
        self.count = 0
        self.volume = Decimal(0)
        self.notional = Decimal(0)
        self.high = self.low = None
        self.first = self.last = None

    def add(self, ts, px, qty):
        self.count += 1
        self.volume += qty
        self.notional += px * qty
        self.high = px if self.high is None else max(self.high, px)
        self.low = px if self.low is None else min(self.low, px)
        if self.first is None or ts < self.first[0]:
            self.first = (ts, px)
        if self.last is None or ts >= self.last[0]:
            self.last = (ts, px)

    def vwap(self):
        if not self.volume:
            return Decimal(0)
        return (self.notional / self.volume).quantize(Decimal("1e-8"), ROUND_HALF_UP)


class World:
    """Everything the test sent, in arrival order, and the symbols' creation order."""

    def __init__(self):
        self.trades = []        # dicts as sent, plus Decimal px/qty and kind
        self.order = []         # symbols in creation order (ties in top-N go to the earlier)
        self.batches = 0
        self.bulk_trades = 0    # bulk-loaded trades, counted but not kept
        self.bulk_symbols = 0
        self.restarted = False  # process counters started again from zero

    def total(self):
        return len(self.trades) + self.bulk_trades

    def nsyms(self):
        return len(self.order) + self.bulk_symbols

    def add(self, t, kind="trade"):
        rec = dict(t)
        rec["kind"] = kind
        rec["pxd"] = Decimal(str(t["px"]))
        rec["qtyd"] = Decimal(str(t["qty"]))
        self.trades.append(rec)
        if t["sym"] not in self.order:
            self.order.append(t["sym"])

    def of(self, sym):
        return [t for t in self.trades if t["sym"] == sym]

    def agg(self, sym, lo=None, hi=None):
        a = Agg()
        for t in self.of(sym):
            if (lo is None or t["ts"] >= lo) and (hi is None or t["ts"] < hi):
                a.add(t["ts"], t["pxd"], t["qtyd"])
        return a


def make_trades():
    """Deterministic trades: several symbols, an out-of-order one, odd decimals."""
    out = []
    tid = 1
    pxs = {"AAPL": Decimal("187.25"), "MSFT": Decimal("401.1234"), "GOOG": Decimal("141.5"),
           UNI: Decimal("9.99")}
    counts = {"AAPL": 40, "MSFT": 25, "GOOG": 12, UNI: 3}
    for sym, n in counts.items():
        px = pxs[sym]
        for i in range(n):
            px += Decimal((i * 37 % 11) - 5) / 100   # a walk with 2-4 decimals
            qty = Decimal(1 + (i * 7919) % 500)
            if i % 3 == 0:
                qty += Decimal("0.125")
            t = {"sym": sym, "ts": TS0 + i * SEC + (i % 4) * 1000, "px": str(px),
                 "qty": str(qty) if i % 2 else int(qty) if qty == int(qty) else str(qty),
                 "side": "B" if i % 2 else "S", "id": tid}
            if i % 5 == 4:
                del t["side"]                       # optional slot: unknown side
            out.append(t)
            tid += 1
    # The out-of-order trade: earliest ts of AAPL, arriving last, odd price.
    out.append({"sym": "AAPL", "ts": TS0 - 7 * SEC, "px": "150.0001", "qty": 3, "side": "B",
                "id": tid})
    return out


def ingest(s, world):
    """Through the official Python client: 20 trades a batch, then the
    option trades (a kind change seals a batch of their own)."""
    trades = make_trades()
    opts = []
    for i in range(6):
        opts.append({"sym": OPT, "ts": TS0 + i * 500 * 10 ** 6, "px": str(Decimal("3.5") + i),
                     "qty": 10 + i, "side": "S" if i % 2 else "B", "id": 1000 + i,
                     "strike": "200", "expiry": TS0 + 15 * 86400 * SEC, "right": "P"})
    with s.sender("http-test", batch_size=20, linger=3600) as snd:
        for t in trades:
            snd.send(t)
        for t in opts:
            snd.send(t, kind="option_trade")
        snd.flush()
        st = snd.stats
    assert st["trades_acked"] == len(trades) + len(opts) and not st["batches_given_up"], st
    for t in trades:
        world.add(t)
    for t in opts:
        world.add(t, "option_trade")
    world.batches += st["batches_acked"]


# ---- HTTP helpers ----------------------------------------------------------------

def get_json(s, path, want=200):
    status, headers, body = s.http_get(path)
    assert status == want, (path, status, body[:500])
    assert headers.get("Content-Type", "").startswith("application/json"), headers
    assert int(headers["Content-Length"]) == len(body)
    return json.loads(body, parse_float=Decimal)


def get_error(s, path, status, code, words=()):
    doc = get_json(s, path, status)
    assert set(doc) == {"error", "message"}, doc
    assert doc["error"] == code, (path, doc)
    for w in words:
        assert w in doc["message"], (path, doc, w)
    return doc


def read_responses(sock, n, timeout=10):
    """Read n HTTP responses (Content-Length framed) from sock: [(status, headers, body)]."""
    sock.settimeout(timeout)
    buf = b""
    out = []
    closed = False
    while len(out) < n:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1").split("\r\n")
            status = int(head[0].split()[1])
            headers = {}
            for line in head[1:]:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", 0))
            if len(buf) >= head_end + 4 + length:
                out.append((status, headers, buf[head_end + 4:head_end + 4 + length]))
                buf = buf[head_end + 4 + length:]
                continue
        if closed:
            break
        chunk = sock.recv(65536)
        if not chunk:
            closed = True
        buf += chunk
    return out, buf


def raw(s, data, timeout=10):
    """Send raw bytes on a fresh connection; return everything until close."""
    sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=timeout)
    out = b""
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass   # refused mid-send: the answer may still be readable
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    finally:
        sock.close()
    return out


def is_closed(sock, timeout):
    """True if the peer closes within timeout (data read meanwhile is dropped)."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# ---- checks ------------------------------------------------------------------------

def check_health(s, world):
    doc = get_json(s, "/healthz")
    assert doc == {"status": "ok"}, doc
    doc = get_json(s, "/readyz")
    assert doc["status"] == "ready", doc


def check_schema(s, world):
    doc = get_json(s, "/schema")
    assert doc["fixed_point_decimals"] == 8
    kinds = {k["name"]: k for k in doc["kinds"]}
    assert set(kinds) >= {"trade", "option_trade"}, kinds.keys()
    assert kinds["trade"]["base"] is None
    assert kinds["option_trade"]["base"] == "trade"
    assert kinds["trade"]["slot_bytes"] <= 40
    names = [sl["name"] for sl in kinds["trade"]["slots"]]
    assert names[:5] == ["ts", "px", "qty", "side", "id"], names
    onames = [sl["name"] for sl in kinds["option_trade"]["slots"]]
    assert onames[:len(names)] == names and {"strike", "expiry", "right"} <= set(onames), onames
    for sl in kinds["option_trade"]["slots"]:
        assert set(sl) == {"name", "type", "bits", "required", "signed", "doc"}, sl
    signed = {sl["name"] for sl in kinds["option_trade"]["slots"] if sl["signed"]}
    assert signed == {"px", "strike"}, signed  # prices may be negative, nothing else
    req = {sl["name"] for sl in kinds["trade"]["slots"] if sl["required"]}
    assert req == {"ts", "px", "qty"}, req


def expect_symbol(doc, world, sym, kind="trade"):
    a = world.agg(sym)
    assert doc["symbol"] == sym and doc["kind"] == kind, doc
    assert doc["count"] == a.count, (sym, doc["count"], a.count)
    assert doc["volume_s"] == fmt(a.volume) and Decimal(doc["volume"]) == a.volume, (sym, doc)
    assert doc["notional_s"] == fmt(a.notional), (sym, doc["notional_s"], a.notional)
    assert abs(Decimal(doc["notional"]) - a.notional) <= a.notional * Decimal("1e-12")
    assert doc["vwap_s"] == fmt(a.vwap()) and Decimal(doc["vwap"]) == a.vwap(), (sym, doc, a.vwap())
    for k, v in (("open", a.first[1]), ("close", a.last[1]), ("high", a.high), ("low", a.low)):
        assert doc[k + "_s"] == fmt(v), (sym, k, doc[k + "_s"], v)
        assert Decimal(doc[k]) == v, (sym, k, doc[k], v)
    assert doc["first_ts"] == a.first[0] and doc["last_ts"] == a.last[0], doc
    assert doc["pages"] >= 1


def check_symbols(s, world):
    for sym in ("AAPL", "MSFT", "GOOG"):
        expect_symbol(get_json(s, "/symbols/" + sym), world, sym)
    # AAPL's earliest trade arrived last: open is its price, not the first arrival's.
    doc = get_json(s, "/symbols/AAPL")
    assert doc["open_s"] == "150.0001" and doc["first_ts"] == TS0 - 7 * SEC, doc
    expect_symbol(get_json(s, "/symbols/" + quote(OPT)), world, OPT, "option_trade")
    expect_symbol(get_json(s, "/symbols/" + quote(UNI)), world, UNI)


def check_same_over_tcp(s, world):
    """TCP Q and HTTP run the same query code: the same figures either way."""
    c = s.connect(name="http-test-q")
    for sym in ("AAPL", OPT):
        r = c.query(5, {"op": "symbol", "sym": sym})
        assert r[0] == "R" and r[1] == 5, r
        doc = get_json(s, "/symbols/" + quote(sym))
        for k in doc:
            if k.endswith("_s") or isinstance(doc[k], (int, str)):
                assert r[2][k] == doc[k], (k, r[2][k], doc[k])
    r = c.query(6, {"op": "trades", "sym": "AAPL", "limit": 7, "from": "2026-01-01T00:00:03Z"})
    doc = get_json(s, "/symbols/AAPL/trades?limit=7&from=2026-01-01T00:00:03Z")
    assert [t["id"] for t in r[2]["trades"]] == [t["id"] for t in doc["trades"]]
    assert r[2]["next_cursor"] == doc["next_cursor"]
    r = c.query(7, {"op": "symbol", "sym": "NOPE"})
    assert r[0] == "ERR" and r[2] == "NOT_FOUND", r
    c.close()


def check_top(s, world):
    syms = world.order

    def expect(by, n):
        key = {"count": lambda x: world.agg(x).count, "volume": lambda x: world.agg(x).volume,
               "notional": lambda x: world.agg(x).notional}[by]
        return sorted(syms, key=lambda x: (-key(x), syms.index(x)))[:n]

    doc = get_json(s, "/symbols")
    assert doc["by"] == "count"
    assert [x["symbol"] for x in doc["symbols"]] == expect("count", 10), doc
    for by in ("count", "volume", "notional"):
        for n in (1, 2, 3, 5):
            doc = get_json(s, "/symbols?top=%d&by=%s" % (n, by))
            got = [x["symbol"] for x in doc["symbols"]]
            assert doc["by"] == by and got == expect(by, n), (by, n, got, expect(by, n))
    doc = get_json(s, "/symbols?top=3&by=volume")
    for x in doc["symbols"]:
        a = world.agg(x["symbol"])
        assert x["count"] == a.count and x["volume_s"] == fmt(a.volume)
        assert x["notional_s"] == fmt(a.notional) and x["vwap_s"] == fmt(a.vwap()), x
    # top is clamped, not refused
    doc = get_json(s, "/symbols?top=100000")
    assert len(doc["symbols"]) == len(syms)


def expect_trade(doc_t, t):
    assert doc_t["ts"] == t["ts"] and doc_t["id"] == t["id"], (doc_t, t)
    assert doc_t["px_s"] == fmt(t["pxd"]) and Decimal(doc_t["px"]) == t["pxd"], (doc_t, t)
    assert doc_t["qty_s"] == fmt(t["qtyd"]) and Decimal(doc_t["qty"]) == t["qtyd"], (doc_t, t)
    assert doc_t["side"] == t.get("side", ""), (doc_t, t)


def page_all(s, path, limit):
    got, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        url = path + sep + "limit=%d" % limit + ("" if cursor is None else "&cursor=%d" % cursor)
        doc = get_json(s, url)
        assert doc["count"] == len(doc["trades"]) <= limit, doc
        got += doc["trades"]
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            return got, pages
        assert pages < 1000


def check_trades(s, world):
    want = world.of("AAPL")
    got, pages = page_all(s, "/symbols/AAPL/trades", 7)
    assert len(got) == len(want) and pages >= len(want) // 7, (len(got), pages)
    for d, t in zip(got, want):           # arrival order
        expect_trade(d, t)
    doc = get_json(s, "/symbols/AAPL/trades")
    assert doc["count"] == len(want) and doc["next_cursor"] is None and doc["kind"] == "trade"
    # [from, to) in ns and in RFC 3339 (with an offset) select the same trades.
    lo, hi = TS0 + 5 * SEC, TS0 + 17 * SEC + 2000
    sel = [t for t in want if lo <= t["ts"] < hi]
    for q in ("from=%d&to=%d" % (lo, hi),
              "from=2026-01-01T00:00:05Z&to=2026-01-01T00:00:17.000002Z",
              "from=2026-01-01T01:00:05%2B01:00&to=2025-12-31T19:00:17.000002-05:00",
              "from=2026-01-01T01:00:05+01:00&to=2026-01-01T00:00:17.000002Z"):
        got, _ = page_all(s, "/symbols/AAPL/trades?" + q, 4)
        assert [d["id"] for d in got] == [t["id"] for t in sel], (q, len(got), len(sel))
    # Option trades carry their own slots, fixed point twice.
    doc = get_json(s, "/symbols/%s/trades" % quote(OPT))
    assert doc["kind"] == "option_trade" and doc["count"] == 6
    for d, t in zip(doc["trades"], world.of(OPT)):
        expect_trade(d, t)
        assert d["strike_s"] == "200" and Decimal(d["strike"]) == 200
        assert d["expiry"] == t["expiry"] and d["right"] == "P", d
    # limit is clamped to the store's maximum rather than refused
    doc = get_json(s, "/symbols/AAPL/trades?limit=999999999")
    assert doc["count"] == len(want)


def check_bars(s, world):
    for interval, text in ((5 * SEC, "5s"), (SEC, "1000ms"), (60 * SEC, "1m"), (2500 * 10 ** 6, "2.5")):
        for rng in ("", "&from=2026-01-01T00:00:03Z&to=%d" % (TS0 + 20 * SEC)):
            lo, hi = (TS0 + 3 * SEC, TS0 + 20 * SEC) if rng else (None, None)
            doc = get_json(s, "/symbols/AAPL/bars?interval=%s%s" % (text, rng))
            assert doc["symbol"] == "AAPL" and doc["interval"] == interval
            buckets = {}
            for t in world.of("AAPL"):
                if (lo is None or t["ts"] >= lo) and (hi is None or t["ts"] < hi):
                    buckets.setdefault(t["ts"] // interval * interval, Agg()).add(
                        t["ts"], t["pxd"], t["qtyd"])
            starts = sorted(buckets)
            assert [b["start"] for b in doc["bars"]] == starts, (text, rng, doc["bars"][:3])
            for b in doc["bars"]:
                a = buckets[b["start"]]
                assert b["count"] == a.count
                assert b["open_s"] == fmt(a.first[1]) and b["close_s"] == fmt(a.last[1]), (b, a.first, a.last)
                assert b["high_s"] == fmt(a.high) and b["low_s"] == fmt(a.low)
                assert b["volume_s"] == fmt(a.volume) and b["vwap_s"] == fmt(a.vwap()), b
                assert Decimal(b["vwap"]) == a.vwap()
    # default interval (1m) and range (the symbol's own span) work
    doc = get_json(s, "/symbols/GOOG/bars")
    assert sum(b["count"] for b in doc["bars"]) == len(world.of("GOOG"))


def check_stats(s, world):
    doc = get_json(s, "/stats")
    n = world.total()
    assert doc["trades"] == n and doc["symbols"] == world.nsyms(), doc
    assert doc["batches"] == world.batches, (doc["batches"], world.batches)
    assert doc["store"]["trades"] == n and doc["store"]["symbols"] == world.nsyms()
    assert doc["version"] and doc["uptime_seconds"] > 0 and doc["ready"] is True
    assert set(doc["ingest_rate"]) == {"1s", "10s", "60s"}
    if not world.restarted:
        assert doc["trades_acked"] >= n and doc["bytes_in"] > 0
        assert doc["errors"]["NOT_FOUND"] >= 1     # the TCP query above
    assert all(isinstance(v, int) for v in doc["errors"].values())
    assert doc["resident_memory_bytes"] > 1 << 20
    assert doc["memory_per_million_trades"] is not None and doc["memory_per_million_trades"] >= 0
    st = doc["store"]
    assert st["bytes_used"] > 0 and st["bytes_reserved"] >= st["bytes_used"]
    assert 0 < st["fill"] <= 1 and st["bytes_per_trade"] > 0
    j = doc["journal"]
    assert j is not None, doc
    if not world.restarted:
        assert j["records"] >= world.batches and j["bytes"] > 0, j
    assert set(doc["replay"]) >= {"records", "seconds"} and doc["replay"]["in_progress"] is False


PROM_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def promtool_check(body):
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found (Debian package 'prometheus'; scripts/deps.sh test)"
    p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    complaints = (p.stdout + p.stderr).decode().strip()
    assert p.returncode == 0 and not complaints, complaints


def check_metrics(s, world):
    status, headers, body = s.http_get("/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
    promtool_check(body)
    vals, types = {}, {}
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            types[name] = typ
            continue
        if line.startswith("#") or not line:
            continue
        m = PROM_LINE.match(line)
        assert m, line
        vals[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    for name, typ in types.items():
        assert name.startswith("slotd_"), name
        assert (typ == "counter") == name.endswith("_total"), (name, typ)
    n = world.total()
    assert vals["slotd_store_trades"] == n and vals["slotd_symbols"] == world.nsyms()
    if not world.restarted:
        assert vals["slotd_trades_total"] >= n and vals["slotd_batches_total"] >= world.batches
        assert vals['slotd_errors_total{code="NOT_FOUND"}'] >= 1
        assert vals["slotd_journal_records_total"] >= world.batches
        assert vals["slotd_ack_latency_seconds_count"] >= world.batches
    assert vals["slotd_ready"] == 1 and vals["slotd_replay_in_progress"] == 0
    assert vals["slotd_resident_memory_bytes"] > 0 and vals["slotd_uptime_seconds"] > 0
    assert 'slotd_build_info{version="' in body.decode()
    buckets = [(k, v) for k, v in vals.items() if k.startswith("slotd_ack_latency_seconds_bucket")]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0].endswith('le="+Inf"}'), buckets
    assert counts[-1] == vals["slotd_ack_latency_seconds_count"]
    for name in ("slotd_http_requests_total", "slotd_connections", "slotd_store_pages",
                 "slotd_store_bytes_reserved", "slotd_store_bytes_used", "slotd_store_bytes_cap",
                 "slotd_store_fill_ratio", "slotd_duplicate_batches_total",
                 "slotd_bytes_received_total", "slotd_messages_total", "slotd_queries_total",
                 "slotd_connections_accepted_total", "slotd_journal_bytes_total",
                 "slotd_journal_fsyncs_total", "slotd_journal_errors_total",
                 "slotd_replay_seconds", "slotd_ack_latency_seconds_sum"):
        assert name in vals, name


def check_bad_params(s, world):
    get_error(s, "/symbols/AAPL/trades?limit=abc", 400, "BAD_QUERY", ["limit"])
    get_error(s, "/symbols/AAPL/trades?limit=0", 400, "BAD_QUERY", ["limit"])
    get_error(s, "/symbols/AAPL/trades?from=yesterday", 400, "BAD_QUERY", ["from"])
    get_error(s, "/symbols/AAPL/trades?to=2026-02-30T00:00:00Z", 400, "BAD_QUERY", ["to"])
    get_error(s, "/symbols/AAPL/trades?from=10&to=5", 400, "BAD_QUERY", ["from"])
    get_error(s, "/symbols/AAPL/trades?cursor=-1", 400, "BAD_QUERY", ["cursor"])
    get_error(s, "/symbols/AAPL/trades?bogus=1", 400, "BAD_QUERY", ["bogus"])
    get_error(s, "/symbols/AAPL/bars?interval=0", 400, "BAD_QUERY", ["interval"])
    get_error(s, "/symbols/AAPL/bars?interval=1ns", 400, "BAD_QUERY", ["bars"])  # too many bars
    get_error(s, "/symbols/AAPL/bars?limit=5", 400, "BAD_QUERY", ["limit"])
    get_error(s, "/symbols?by=price", 400, "BAD_QUERY", ["by"])
    get_error(s, "/symbols?top=-3", 400, "BAD_QUERY", ["top"])
    get_error(s, "/symbols/AAPL/trades?from=%zz", 400, "BAD_QUERY", ["percent"])
    get_error(s, "/symbols/" + "X" * 40, 400, "BAD_QUERY", ["symbol"])
    # control characters in a message come back escaped, still valid JSON
    doc = get_error(s, "/symbols/AAPL/trades?from=%01%22%5C", 400, "BAD_QUERY", ["from"])
    assert "\x01\"\\" in doc["message"], doc


def check_not_found(s, world):
    get_error(s, "/symbols/NOPE", 404, "NOT_FOUND", ["NOPE"])
    get_error(s, "/symbols/NOPE/trades", 404, "NOT_FOUND")
    get_error(s, "/symbols/NOPE/bars", 404, "NOT_FOUND")
    get_error(s, "/nope", 404, "NOT_FOUND")
    get_error(s, "/symbols/AAPL/candles", 404, "NOT_FOUND")
    get_error(s, "/symbols/", 404, "NOT_FOUND")


def check_method_and_limits(s, world):
    out = raw(s, b"POST /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert out.startswith(b"HTTP/1.1 405 "), out[:200]
    assert b"\r\nAllow: GET, HEAD, DELETE\r\n" in out and b"Connection: close" in out, out[:400]
    assert b'"error":"METHOD_NOT_ALLOWED"' in out
    out = raw(s, b"DELETE /symbols/AAPL HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 405 "), out[:200]
    # A body on a GET is refused too.
    out = raw(s, b"GET /stats HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    # 20 KiB of headers: refused once past 8 KiB, connection closed.
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(
        b"X-Pad-%d: %s\r\n" % (i, b"y" * 1000) for i in range(20)) + b"\r\n"
    out = raw(s, big)
    assert out.startswith(b"HTTP/1.1 431 "), out[:200]
    assert b'"error":"HEADERS_TOO_LARGE"' in out and b"Connection: close" in out
    # One enormous header line with no end: refused without waiting for it.
    sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Huge: " + b"z" * 100000)
    resp, _ = read_responses(sock, 1)
    assert resp and resp[0][0] == 431, resp
    assert is_closed(sock, 5)
    sock.close()
    # A 4 KiB URL: 414.
    out = raw(s, b"GET /symbols/AAPL/trades?x=" + b"a" * 4096 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 414 "), out[:200]
    assert b'"error":"URI_TOO_LONG"' in out
    # Garbage: 400, closed.
    out = raw(s, b"\x00\x01\x02 nonsense\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    # The server is fine afterwards.
    assert get_json(s, "/healthz") == {"status": "ok"}


def check_keepalive_pipelining(s, world):
    sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
    # Two requests one after the other on one connection...
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    r1, _ = read_responses(sock, 1)
    sock.sendall(b"GET /symbols/GOOG HTTP/1.1\r\nHost: x\r\n\r\n")
    r2, _ = read_responses(sock, 1)
    assert r1[0][0] == 200 and r1[0][2] == b'{"status":"ok"}', r1
    assert r1[0][1]["connection"] == "keep-alive"
    assert r2[0][0] == 200 and json.loads(r2[0][2])["symbol"] == "GOOG"
    # ...then three pipelined in one write: answered in order.
    sock.sendall(b"GET /symbols/MSFT HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                 b"HEAD /symbols/AAPL HTTP/1.1\r\nHost: x\r\n\r\n")
    rs, rest = read_responses(sock, 2)
    assert [r[0] for r in rs] == [200, 404], rs
    assert json.loads(rs[0][2])["symbol"] == "MSFT"
    # HEAD: the GET's headers, no body.
    sock.settimeout(5)
    while b"\r\n\r\n" not in rest:
        rest += sock.recv(65536)
    head, _, body = rest.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    assert length == len(s.http_get("/symbols/AAPL")[2]) and body == b"", (length, body)
    # Many pipelined requests in one go, all answered in order.
    n = 200
    sock.sendall(b"".join(b"GET /symbols/%s HTTP/1.1\r\nHost: x\r\n\r\n" %
                          (b"AAPL" if i % 2 else b"GOOG") for i in range(n)))
    rs, _ = read_responses(sock, n)
    assert len(rs) == n and all(r[0] == 200 for r in rs)
    assert [json.loads(r[2])["symbol"] for r in rs] == ["AAPL" if i % 2 else "GOOG" for i in range(n)]
    # Connection: close is honoured.
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs, _ = read_responses(sock, 1)
    assert rs[0][1]["connection"] == "close" and is_closed(sock, 5)
    sock.close()
    # HTTP/1.0 without keep-alive: answered, then closed.
    out = raw(s, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b'{"status":"ok"}'), out


def sanitized():
    """True when slotd is an ASan build: its allocator quarantine makes RSS
    say nothing about what the server holds."""
    try:
        out = subprocess.run(["ldd", os.environ.get("SLOTD_BIN", "")], capture_output=True).stdout
        return b"libasan" in out
    except OSError:
        return False


def check_pipeline_backpressure(s, world):
    """A client pipelining far more answers than it reads: the server stops
    parsing at its high-water mark instead of queueing them all, resumes
    when the client reads, and every answer arrives in order."""
    import threading
    one = len(s.http_get("/symbols/AAPL/trades")[2])
    n = min(20000, (60 << 20) // one)          # ~60 MB of answers
    paths = [b"/symbols/AAPL/trades" if i % 3 else b"/symbols/MSFT/trades?limit=5" for i in range(n)]
    total = sum(one if i % 3 else 1000 for i in range(n))
    sock = socket.create_connection(("127.0.0.1", s.http_port), timeout=30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    data = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in paths)
    sender = threading.Thread(target=sock.sendall, args=(data,))
    rss0 = s.rss_bytes()
    sender.start()
    time.sleep(2)                        # the client reads nothing meanwhile
    grew = s.rss_bytes() - rss0
    print("  rss grew %d KiB with %d KiB of answers pending" % (grew >> 10, total >> 10))
    if not sanitized():
        assert grew < min(total // 3, 32 << 20), "RSS grew by %d with %d bytes of answers unread" % (
            grew, total)
    rs, _ = read_responses(sock, n, timeout=60)
    sender.join()
    sock.close()
    assert len(rs) == n and all(r[0] == 200 for r in rs), len(rs)
    counts = [json.loads(r[2])["count"] for r in rs]
    want = [len(world.of("AAPL")) if i % 3 else 5 for i in range(n)]
    assert counts == want


def check_slow_client(s, world):
    """A client trickling a request byte by byte is cut off; ingest carries on."""
    c = s.connect(name="during-slowloris")
    slow = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 100
    t0 = time.time()
    closed_at = None
    got = b""
    seq = 0
    worst_ack = 0.0
    for i, byte in enumerate(req):
        try:
            slow.send(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            closed_at = time.time()
            break
        seq += 1
        t = time.time()
        c.send_batch(seq, [{"sym": "SLOWTEST", "ts": TS0 + i, "px": "1.5", "qty": 1}])
        r = c.recv()
        assert r == ["ACK", seq, 1], r
        worst_ack = max(worst_ack, time.time() - t)
        r, _, _ = select.select([slow], [], [], 1.0)
        if r:
            try:
                chunk = slow.recv(65536)
            except ConnectionResetError:
                chunk = b""
            got += chunk
            if not chunk:
                closed_at = time.time()
                break
        if time.time() - t0 > 30:
            break
    slow.close()
    assert closed_at is not None, "slow client was never closed"
    assert closed_at - t0 < 20, closed_at - t0
    assert got == b"" or got.startswith(b"HTTP/1.1 408 "), got[:200]
    assert worst_ack < 1.0, worst_ack
    assert seq >= 5
    c.close()
    for i in range(seq):
        world.add({"sym": "SLOWTEST", "ts": TS0 + i, "px": "1.5", "qty": 1})
    world.batches += seq


def check_connection_limit(s, world):
    socks = []
    try:
        # One at a time, each answered before the next connects: the server
        # has then accepted all 256 in order. Connecting them in a burst can
        # overflow the listen backlog when the server is slow (valgrind), and
        # the kernel then completes the handshakes out of order, so the extra
        # connection below could be accepted inside the budget.
        for _ in range(256):
            k = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
            socks.append(k)
            k.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = b""
            while b'{"status":"ok"}' not in head:
                chunk = k.recv(4096)
                assert chunk, head
                head += chunk
        # One more: answered 503 and closed straight away, without a request
        # (sending one could race the close into a reset).
        extra = socket.create_connection(("127.0.0.1", s.http_port), timeout=10)
        out = b""
        try:
            while True:
                chunk = extra.recv(65536)
                if not chunk:
                    break
                out += chunk
        except ConnectionResetError:
            pass
        extra.close()
        assert out.startswith(b"HTTP/1.1 503 ") and b"TOO_MANY_CONNECTIONS" in out, out[:200]
    finally:
        for k in socks:
            k.close()
    deadline = time.time() + 10
    while True:
        try:
            if get_json(s, "/healthz") == {"status": "ok"}:
                break
        except (AssertionError, OSError):
            pass
        assert time.time() < deadline, "server did not recover after the connection flood"
        time.sleep(0.1)


def check_replay(s, world):
    """Restart over a journal big enough to take a moment to replay: while it
    runs, /readyz says so, /stats and /metrics answer without the store,
    queries get 503 NOT_READY; afterwards every figure is back."""
    import msgpack
    c = s.connect(name="bulk")
    nb, per, syms = 400, 5000, 50
    # One batch body packed once and sent under many seqs (array wire form).
    body = msgpack.packb([["BULK%02d" % (i % syms), TS0 + i, "10.5", 2, "B", i]
                          for i in range(per)])
    for b in range(nb):
        c.send_raw(b"\x93" + msgpack.packb("T") + msgpack.packb(b + 1) + body)
        if b >= 16:
            r = c.recv()
            assert r == ["ACK", b - 15, per], r
    for b in range(nb - 16, nb):
        r = c.recv()
        assert r == ["ACK", b + 1, per], r
    c.close()
    world.bulk_trades += nb * per
    world.bulk_symbols += syms
    world.batches += nb
    s.stop()
    s.start(wait_ready=False)
    world.restarted = True
    seen = {"readyz": 0, "stats": 0, "query": 0, "metrics": 0}
    deadline = time.time() + 120
    while True:
        status, _, body = s.http_get("/readyz")
        doc = json.loads(body)
        if status == 200:
            assert doc["status"] == "ready"
            break
        assert status == 503 and doc["status"] == "not_ready", (status, doc)
        if doc["reason"] == "replaying the journal":
            seen["readyz"] += 1
            st = get_json(s, "/stats")
            if st["replay"]["in_progress"]:
                assert st["store"] is None and st["trades"] is None and st["ready"] is False, st
                seen["stats"] += 1
            status, _, body = s.http_get("/symbols/AAPL")
            if status == 503:
                assert json.loads(body)["error"] == "NOT_READY", body
                seen["query"] += 1
            status, _, body = s.http_get("/metrics")
            assert status == 200
            if b"slotd_replay_in_progress 1" in body:
                promtool_check(body)
                seen["metrics"] += 1
        assert time.time() < deadline, "replay did not finish"
    print("  during replay: %s" % seen)
    check_symbols(s, world)
    check_stats(s, world)
    check_metrics(s, world)


def main():
    res = Results()
    world = World()
    with Slotd() as s:
        ingest(s, world)
        for fn in (check_health, check_schema, check_symbols, check_same_over_tcp, check_top,
                   check_trades, check_bars, check_stats, check_metrics, check_bad_params,
                   check_not_found, check_method_and_limits, check_keepalive_pipelining,
                   check_pipeline_backpressure,
                   check_slow_client, check_connection_limit):
            res.run(fn, s, world)
        # Figures still agree after all the abuse (the slow-loris run added SLOWTEST).
        res.run(check_stats, s, world)
        res.run(check_metrics, s, world)
        res.run(check_replay, s, world)
    res.finish()


if __name__ == "__main__":
    main()
