"""Ingest path end to end: a real slotd, real sockets, msgpack from python3-msgpack.

Covers: pipelined streaming over several connections with exact aggregates,
every protocol error code (with proof nothing else was lost), hostile
input (garbage, truncation, huge declared lengths, deep nesting), a client
that never reads its acks, duplicate/resume semantics, graceful SIGTERM.
"""
import os
import random
import socket
import struct
import sys
import threading
import time
from decimal import Decimal, ROUND_HALF_UP

sys.path.insert(0, os.path.dirname(__file__))
import msgpack  # noqa: E402
from harness import Client, Results, Slotd  # noqa: E402

SCALE = 10 ** 8
TS0 = 1767225600 * 10 ** 9


class Book:
    """What the client believes it stored: exact aggregates per symbol."""

    def __init__(self):
        self.s = {}

    def add(self, sym, ts, px, qty):
        a = self.s.setdefault(sym, {"count": 0, "volume": 0, "notional": 0, "high": None,
                                    "low": None, "first": None, "last": None})
        a["count"] += 1
        a["volume"] += qty
        a["notional"] += px * qty
        a["high"] = px if a["high"] is None else max(a["high"], px)
        a["low"] = px if a["low"] is None else min(a["low"], px)
        if a["first"] is None or ts < a["first"][0]:
            a["first"] = (ts, px)
        if a["last"] is None or ts >= a["last"][0]:
            a["last"] = (ts, px)

    def check(self, client, sym):
        a = self.s[sym]
        r = client.query(9, {"op": "symbol", "sym": sym})
        assert r[0] == "R", r
        got = r[2]
        assert got["count"] == a["count"], (sym, got["count"], a["count"])
        assert Decimal(got["volume_s"]) * SCALE == a["volume"], (sym, got["volume_s"], a["volume"])
        assert Decimal(got["high_s"]) * SCALE == a["high"]
        assert Decimal(got["low_s"]) * SCALE == a["low"]
        assert Decimal(got["open_s"]) * SCALE == a["first"][1]
        assert Decimal(got["close_s"]) * SCALE == a["last"][1]
        vwap = (Decimal(a["notional"]) / Decimal(a["volume"])).quantize(Decimal(1), ROUND_HALF_UP)
        assert Decimal(got["vwap_s"]) * SCALE == vwap, (sym, got["vwap_s"], vwap)


def fix(units):
    """Fixed-point int (1e-8) as an exact decimal string."""
    return str(Decimal(units) / SCALE)


def gen_batch(rng, syms, n, id0, ts0, book=None, form="map"):
    out = []
    for i in range(n):
        sym = rng.choice(syms)
        px = rng.randint(1, 20000) * 10 ** 6        # 0.01 .. 200.00
        qty = rng.randint(1, 10000) * SCALE
        ts = ts0 + i * 1000
        if book is not None:
            book.add(sym, ts, px, qty)
        side = "B" if i & 1 else "S"
        if form == "map":
            out.append({"sym": sym, "ts": ts, "px": fix(px), "qty": qty // SCALE,
                        "side": side, "id": id0 + i})
        else:
            out.append([sym, ts, fix(px), qty // SCALE, side, id0 + i])
    return out


def stream(client, batches, inflight=16, first_seq=1):
    """Send batches with up to `inflight` unacknowledged; check acks in order."""
    acks = []
    sent = 0
    seq = first_seq
    pending = []
    for b in batches:
        client.send_batch(seq, b)
        pending.append((seq, len(b)))
        seq += 1
        sent += 1
        if len(pending) >= inflight:
            r = client.recv()
            s, n = pending.pop(0)
            assert r == ["ACK", s, n], (r, s, n)
            acks.append(s)
    while pending:
        r = client.recv()
        s, n = pending.pop(0)
        assert r == ["ACK", s, n], (r, s, n)
        acks.append(s)
    return acks


def stats(client):
    r = client.query(1, {"op": "stats"})
    assert r[0] == "R", r
    return r[2]


class Background:
    """A second client streaming all the time; at the end it must have lost nothing."""

    count = 0

    def __init__(self, s):
        Background.count += 1
        self.syms = ("BG%d-1" % Background.count, "BG%d-2" % Background.count)
        self.c = s.connect("background-%d" % Background.count)
        self.stop = threading.Event()
        self.sent = 0
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        rng = random.Random(7)
        seq = 1
        try:
            while not self.stop.is_set():
                b = gen_batch(rng, list(self.syms), 50, seq * 100, TS0 + seq * 10 ** 6)
                self.c.send_batch(seq, b)
                r = self.c.recv()
                assert r == ["ACK", seq, 50], r
                self.sent += 50
                seq += 1
                time.sleep(0.002)
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self, s):
        self.stop.set()
        self.t.join(30)
        assert self.error is None, self.error
        q = s.connect("bg-check")
        total = sum(q.query(2, {"op": "symbol", "sym": sym})[2]["count"] for sym in self.syms)
        assert total == self.sent, (total, self.sent)
        assert self.sent > 0


# ---------------------------------------------------------------------------


def test_million_pipelined(s):
    """1M trades over 4 connections, 16+ batches in flight each, exact aggregates."""
    syms = ["SYM%04d" % i for i in range(200)]
    books = [Book() for _ in range(4)]
    errors = []
    # SLOTD_TEST_SCALE (e.g. 0.1 under valgrind) shrinks it; a whole number of batches.
    per_conn = max(1, int(250 * float(os.environ.get("SLOTD_TEST_SCALE", "1")))) * 1000
    batch = 1000

    def worker(k):
        try:
            rng = random.Random(k)
            c = s.connect("pipe-%d" % k)
            batches = [gen_batch(rng, syms, batch, k * 10 ** 7 + i * batch, TS0 + i * 10 ** 6,
                                 books[k], form="map" if k % 2 == 0 else "array")
                       for i in range(per_conn // batch)]
            acks = stream(c, batches, inflight=32)
            assert acks == list(range(1, len(batches) + 1))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    merged = Book()
    for b in books:
        for sym, a in b.s.items():
            m = merged.s.setdefault(sym, {"count": 0, "volume": 0, "notional": 0, "high": None,
                                          "low": None, "first": None, "last": None})
            m["count"] += a["count"]
            m["volume"] += a["volume"]
            m["notional"] += a["notional"]
            m["high"] = a["high"] if m["high"] is None else max(m["high"], a["high"])
            m["low"] = a["low"] if m["low"] is None else min(m["low"], a["low"])
    c = s.connect("checker")
    st = stats(c)
    assert st["trades"] == 4 * per_conn, st
    for sym in syms[:50]:
        got = c.query(3, {"op": "symbol", "sym": sym})[2]
        m = merged.s[sym]
        assert got["count"] == m["count"]
        assert Decimal(got["volume_s"]) * SCALE == m["volume"]
        vwap = (Decimal(m["notional"]) / Decimal(m["volume"])).quantize(Decimal(1), ROUND_HALF_UP)
        assert Decimal(got["vwap_s"]) * SCALE == vwap
        assert Decimal(got["high_s"]) * SCALE == m["high"]
        assert Decimal(got["low_s"]) * SCALE == m["low"]


def expect_err(reply, seq, code, index=None, words=()):
    assert reply[0] == "ERR", reply
    assert reply[1] == seq, reply
    assert reply[2] == code, reply
    if index is not None:
        assert reply[4] == index, reply
    for w in words:
        assert w in reply[3], (w, reply)


def test_batch_errors(s):
    """Each batch-level error code: the documented ERR, nothing of the batch stored."""
    bg = Background(s)
    c = s.connect("errs")
    good = {"sym": "ERRS", "ts": TS0, "px": "1.5", "qty": 2}
    seq = [0]
    acked = [0]

    def send(trades, kind=None):
        # A refused seq holds the client back until it is resent (PROTOCOL.md 5):
        # each batch reuses the seq after the last acknowledged one.
        seq[0] = acked[0] + 1
        c.send_batch(seq[0], trades, kind)
        r = c.recv()
        if r[0] == "ACK":
            acked[0] = seq[0]
        return r

    cases = [
        ([good, dict(good, venue="X")], None, "UNKNOWN_FIELD", 1, ["venue"]),
        ([good, {"sym": "ERRS", "ts": TS0, "px": "1"}], None, "MISSING_FIELD", 1, ["qty"]),
        ([good, dict(good, px=[1])], None, "WRONG_TYPE", 1, ["px"]),
        ([good, dict(good, px="1.123456789")], None, "BAD_VALUE", 1, ["px"]),
        ([good, dict(good, qty="-1")], None, "BAD_VALUE", 1, ["qty"]),  # prices may be < 0
        ([good, dict(good, qty=float("nan"))], None, "BAD_VALUE", 1, ["qty"]),
        ([good, dict(good, side="X")], None, "BAD_VALUE", 1, ["side"]),
        ([good, dict(good, sym="")], None, "BAD_SYMBOL", 1, []),
        ([good, dict(good, sym="X" * 32)], None, "BAD_SYMBOL", 1, []),
        ([good, dict(good, sym="A\x01")], None, "BAD_SYMBOL", 1, []),
        ([good], "no_such_kind", "UNKNOWN_KIND", None, ["no_such_kind"]),
    ]
    for trades, kind, code, index, words in cases:
        r = send(trades, kind)
        expect_err(r, seq[0], code, index, words)
    # Kind mismatch: OPT1 becomes an option_trade symbol, then plain trades for it fail.
    opt = {"sym": "OPT1", "ts": TS0, "px": "2.5", "qty": 1, "strike": "100", "expiry": TS0 * 2,
           "right": "C"}
    r = send([opt], "option_trade")
    assert r == ["ACK", seq[0], 1], r
    r = send([good, {"sym": "OPT1", "ts": TS0, "px": "1", "qty": 1}], "trade")
    expect_err(r, seq[0], "KIND_MISMATCH", 1, [])
    # A failed batch fixes no kind (PROTOCOL.md 3.1): NEWSYM's option_trade batch is
    # refused (a trade without its strike), so a plain trade batch for NEWSYM goes in.
    nopt = dict(opt, sym="NEWSYM")
    r = send([nopt, {k: v for k, v in nopt.items() if k != "strike"}], "option_trade")
    expect_err(r, seq[0], "MISSING_FIELD", 1, ["strike"])
    expect_err(c.query(4, {"op": "symbol", "sym": "NEWSYM"}), 4, "NOT_FOUND")
    r = send([{"sym": "NEWSYM", "ts": TS0, "px": "1", "qty": 1}])
    assert r == ["ACK", seq[0], 1], r
    assert c.query(4, {"op": "symbol", "sym": "NEWSYM"})[2]["count"] == 1
    # Too many trades in one batch (server runs with --max-batch 1000).
    r = send([dict(good, id=i) for i in range(1001)])
    expect_err(r, seq[0], "TOO_LARGE")
    # Nothing from the failed batches is stored: ERRS holds no trade at all.
    r = c.query(5, {"op": "symbol", "sym": "ERRS"})
    expect_err(r, 5, "NOT_FOUND")
    # Bad queries.
    expect_err(c.query(6, {"op": "nope"}), 6, "BAD_QUERY")
    expect_err(c.query(7, {"op": "trades", "sym": "OPT1", "limit": "abc"}), 7, "BAD_QUERY")
    # The connection is still usable after every one of those.
    r = send([good])
    assert r == ["ACK", seq[0], 1], r
    assert c.query(8, {"op": "symbol", "sym": "ERRS"})[2]["count"] == 1
    bg.finish(s)


def test_connection_errors(s):
    """Errors that close the connection; the server and other clients carry on."""
    bg = Background(s)
    # NOT_HELLO
    c = s.connect(hello=False)
    c.send(["T", 1, []])
    expect_err(c.recv(), 0, "NOT_HELLO")
    assert c.closed()
    # BAD_MESSAGE keeps the connection
    c = s.connect("bm")
    c.send(["WHAT", 1])
    expect_err(c.recv(), 0, "BAD_MESSAGE")
    c.send(["T", 1, [{"sym": "BM", "ts": 1, "px": 1, "qty": 1}]])
    assert c.recv() == ["ACK", 1, 1]
    # MALFORMED: 0xc1 is never valid msgpack
    c = s.connect("mal")
    c.send_raw(b"\xc1\x00\x00")
    expect_err(c.recv(), 0, "MALFORMED")
    assert c.closed()
    # Random garbage on many connections: each gets an ERR or is closed.
    rng = random.Random(3)
    for i in range(50):
        g = s.connect("garbage-%d" % i)
        g.send_raw(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
        g.sock.shutdown(socket.SHUT_WR)
        g.closed()
    # Declared 4 GiB string: refused at once, no allocation.
    rss0 = s.rss_bytes()
    c = s.connect("huge")
    c.send_raw(b"\x93\xa1T\x01\xdb" + struct.pack(">I", 0xFFFFFFF0) + b"abc")
    expect_err(c.recv(), 0, "TOO_LARGE")
    assert c.closed()
    # Declared 4G-element array
    c = s.connect("huge2")
    c.send_raw(b"\x93\xa1T\x01\xdd" + struct.pack(">I", 0xFFFFFFF0))
    expect_err(c.recv(), 0, "TOO_LARGE")
    assert c.closed()
    # Nesting deeper than the limit.
    c = s.connect("deep")
    c.send_raw(b"\x91" * 100 + b"\xc0")
    expect_err(c.recv(), 0, "TOO_LARGE")
    assert c.closed()
    assert s.rss_bytes() - rss0 < 64 << 20
    # Truncated message then close: nothing stored, nothing replied.
    c = s.connect("trunc")
    data = msgpack.packb(["T", 1, [{"sym": "TRUNC", "ts": 1, "px": 1, "qty": 1}]])
    c.send_raw(data[:-3])
    c.sock.shutdown(socket.SHUT_WR)
    assert c.closed()
    q = s.connect("q")
    expect_err(q.query(1, {"op": "symbol", "sym": "TRUNC"}), 1, "NOT_FOUND")
    bg.finish(s)


def test_auth_and_limits():
    with Slotd(["--token", "s3cret", "--max-connections", "3", "--idle-timeout", "1"]) as s:
        c = Client(s.tcp_port, "a", hello=False)
        c.send(["HELLO", {"client": "a", "token": "wrong"}])
        expect_err(c.recv(), 0, "UNAUTHORIZED")
        assert c.closed()
        c = Client(s.tcp_port, "a", hello=False)
        c.send(["HELLO", {"client": "a"}])
        expect_err(c.recv(), 0, "UNAUTHORIZED")
        assert c.closed()
        ok = [s.connect("ok%d" % i, token="s3cret") for i in range(3)]
        extra = Client(s.tcp_port, hello=False)
        extra.send(["HELLO", {"client": "extra", "token": "s3cret"}])
        expect_err(extra.recv(), 0, "TOO_MANY_CONNECTIONS")
        assert extra.closed()
        # Idle: a silent connection is told and closed after ~1 s.
        expect_err(ok[0].recv(), 0, "IDLE_TIMEOUT")
        assert ok[0].closed()


def test_symbol_limit_and_store_full():
    with Slotd(["--max-symbols", "10", "--max-memory", "16M"]) as s:
        c = s.connect("lim")
        trades = [{"sym": "S%d" % i, "ts": 1, "px": 1, "qty": 1} for i in range(11)]
        c.send_batch(1, trades)
        expect_err(c.recv(), 1, "SYMBOL_LIMIT", 10)
        # Fill the store until STORE_FULL; everything acknowledged stays. (Seq 1 was
        # refused, so the client resends under it: PROTOCOL.md 5.)
        seq, stored, full = 1, 0, False
        while seq < 2000:
            b = [{"sym": "S%d" % (i % 10), "ts": TS0 + i, "px": "1.25", "qty": 1} for i in range(5000)]
            c.send_batch(seq, b)
            r = c.recv()
            if r[0] == "ERR":
                expect_err(r, seq, "STORE_FULL")
                full = True
                break
            assert r == ["ACK", seq, 5000], r
            stored += 5000
            seq += 1
        assert full
        st = stats(c)
        assert st["trades"] == stored, (st, stored)
        status, _, _ = s.http_get("/healthz")
        assert status == 200
        # Queries still answered at the cap.
        assert c.query(3, {"op": "symbol", "sym": "S0"})[0] == "R"


def test_duplicates_and_resume(s):
    c = s.connect("resumer")
    t = [{"sym": "RES", "ts": TS0, "px": 1, "qty": 1}]
    c.send_batch(1, t)
    assert c.recv() == ["ACK", 1, 1]
    c.send_batch(2, t)
    assert c.recv() == ["ACK", 2, 1]
    c.send_batch(2, t)  # resend: acknowledged, not stored
    assert c.recv() == ["ACK", 2, 0]
    c.close()
    c = s.connect("resumer")
    assert c.welcome[1]["last_seq"] == 2, c.welcome
    c.send_batch(3, t)
    assert c.recv() == ["ACK", 3, 1]
    assert c.query(1, {"op": "symbol", "sym": "RES"})[2]["count"] == 3
    # Another client's seq space is separate.
    d = s.connect("other")
    assert d.welcome[1]["last_seq"] == 0
    # The same seq twice in one write: the second arrives while the first is
    # still being journaled, so it is refused (NOT_READY), never stored twice.
    d.send_raw(msgpack.packb(["T", 1, t]) + msgpack.packb(["T", 1, t]))
    assert d.recv() == ["ACK", 1, 1]
    expect_err(d.recv(), 1, "NOT_READY", None, ["still being journaled"])
    d.send_batch(1, t)
    assert d.recv() == ["ACK", 1, 0]


def test_slow_reader(s):
    """A client that never reads its acks: server memory stays bounded."""
    bg = Background(s)
    rss0 = s.rss_bytes()
    c = s.connect("never-reads")
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sock.settimeout(0.5)
    payload = msgpack.packb(["Q", 1, {"op": "schema"}])  # big replies, tiny requests
    sent = 0
    blocked = False
    try:
        for _ in range(200000):
            c.sock.sendall(payload * 100)
            sent += 100
    except socket.timeout:
        blocked = True  # the server stopped reading us: backpressure
    grown = s.rss_bytes() - rss0
    assert blocked, "server kept reading a client that never reads"
    assert grown < 64 << 20, grown
    bg.finish(s)
    c.close()


def test_graceful_sigterm():
    with Slotd() as s:
        c = s.connect("term")
        rng = random.Random(1)
        batches = [gen_batch(rng, ["TERM"], 500, i * 500, TS0) for i in range(1, 41)]
        for i, b in enumerate(batches, 1):
            c.send_batch(i, b)
        time.sleep(0.05)
        rc = s.stop()
        assert rc == 0, rc
        acked = 0
        while True:
            try:
                r = c.recv()
            except (EOFError, ConnectionResetError):
                break
            assert r == ["ACK", acked + 1, 500], r
            acked += 1
        # Everything acknowledged survives the restart.
        s.start()
        q = s.connect("term")
        assert q.welcome[1]["last_seq"] == acked
        if acked:
            assert q.query(1, {"op": "symbol", "sym": "TERM"})[2]["count"] == acked * 500


def main():
    res = Results()
    with Slotd(["--max-batch", "1000"]) as s:
        res.run(test_batch_errors, s)
        res.run(test_connection_errors, s)
        res.run(test_duplicates_and_resume, s)
        res.run(test_slow_reader, s)
    with Slotd() as s:
        res.run(test_million_pipelined, s)
    res.run(test_auth_and_limits)
    res.run(test_symbol_limit_and_store_full)
    res.run(test_graceful_sigterm)
    res.finish()


if __name__ == "__main__":
    main()
