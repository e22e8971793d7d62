"""Live subscriptions (PROTOCOL.md §10) against a real slotd.

- A subscriber to "*" while trades stream in over 4 connections receives
  exactly the stored trades, in each symbol's order, with resume positions
  that are the symbols' arrival counts.
- slotd SIGKILLed and restarted mid-stream (snapshots and journal): the
  subscriber resumes from its last cursor and still gets every trade once.
- A subscriber that never reads: ingest completes, RSS stays bounded, the
  subscriber is dropped ("stalled") and the metric says so.
- Retention passing a subscriber's position: CURSOR_GONE, or GAP + the rest
  when it asked for gaps.
- Bad SUB / UNSUB inputs: each a clear code and message; the open
  subscription and ingest are not disturbed.

SLOTD_TEST_SCALE shrinks the trade counts (ASan, TSan, valgrind).
"""
import os
import socket
import threading
import time
from decimal import Decimal

import msgpack

from harness import Client, Results, Slotd, wait_for

SCALE = float(os.environ.get("SLOTD_TEST_SCALE") or 1)
T0 = 1767225600000000000
BATCH = 1000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trade(i, nsym):
    """Trade number i: symbol S<i mod nsym>, id i, exact decimals."""
    return ["S%02d" % (i % nsym), T0 + i, "%d.%08d" % (100 + i % 7, i % 99991), "%d.5" % (i % 13),
            "B" if i % 2 else "S", i]


def send_all(port, name, trades, window=16):
    """Send `trades` in batches of BATCH under client `name`, pipelined,
    reconnecting (and resuming at last_seq + 1) whenever the connection
    dies, until every batch is acknowledged."""
    batches = [trades[i:i + BATCH] for i in range(0, len(trades), BATCH)]
    packed = [msgpack.packb(["T", k + 1, b], use_bin_type=True) for k, b in enumerate(batches)]
    while True:
        try:
            c = Client(port, name)
        except (OSError, EOFError, AssertionError):  # down, or NOT_READY while replaying
            time.sleep(0.05)
            continue
        seq, pending = c.welcome[1]["last_seq"] + 1, []
        try:
            while seq <= len(packed) or pending:
                while seq <= len(packed) and len(pending) < window:
                    c.send_raw(packed[seq - 1])
                    pending.append(seq)
                    seq += 1
                r = c.recv()
                assert r[0] == "ACK" and r[1] == pending[0], r
                pending.pop(0)
            c.close()
            return
        except (EOFError, OSError):
            c.close()
            time.sleep(0.05)


class Subscriber:
    """A raw subscription: the trades received per symbol and the cursor
    (SUBOK's positions updated by every S)."""

    def __init__(self, port, sid, syms, frm, name="sub", **opts):
        self.c = Client(port, name)
        req = {"syms": syms, "from": frm}
        req.update(opts)
        self.c.send(["SUB", sid, req])
        ok = self.c.recv()
        assert ok[0] == "SUBOK" and ok[1] == sid, ok
        self.sid = sid
        self.cursor = dict(ok[2])
        self.got = {}
        self.n = 0
        self.other = []

    def pump(self, until=None, timeout=120):
        """Read pushes until self.n >= until (or EOF: returns False)."""
        deadline = time.time() + timeout
        while until is None or self.n < until:
            assert time.time() < deadline, "timed out at %d of %s trades" % (self.n, until)
            try:
                m = self.c.recv()
            except (EOFError, OSError):
                return False
            if m[0] != "S":
                self.other.append(m)
                if until is None:
                    return True
                continue
            _, sid, sym, kind, nxt, trades = m
            assert sid == self.sid and kind == "trade", m
            assert nxt > self.cursor.get(sym, 0) or not trades, (m[:5], self.cursor.get(sym))
            self.got.setdefault(sym, []).extend(trades)
            self.cursor[sym] = nxt
            self.n += len(trades)
        return True


def norm(t):
    """A trade as values: exact decimals compared as numbers ("1.50" == "1.5")."""
    return [t[0], Decimal(t[1]), Decimal(t[2]), t[3], t[4]]


def expected(trades):
    want = {}
    for t in trades:
        want.setdefault(t[0], []).append(norm(t[1:]))
    return want


def check_exact(got, trades):
    want = expected(trades)
    assert sorted(got) == sorted(want), (sorted(got)[:5], sorted(want)[:5])
    for sym in want:
        g = [norm(x) for x in got[sym]]
        if g != want[sym]:
            ids = [x[4] for x in got[sym]]
            raise AssertionError("%s: %d received, %d stored, %d distinct ids, first difference at %d"
                                 % (sym, len(g), len(want[sym]), len(set(ids)),
                                    next(i for i, (a, b) in enumerate(zip(g + [None] * len(want[sym]),
                                                                          want[sym])) if a != b)))


def drops(s, reason):
    _, _, body = s.http_get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith('slotd_subscriber_drops_total{reason="%s"} ' % reason):
            return float(line.split()[1])
    raise AssertionError("no drops metric for " + reason)


# ---------------------------------------------------------------------------
def test_star_exact_over_4_connections():
    n, nsym = int(1_000_000 * SCALE) // BATCH * BATCH, 40
    trades = [trade(i, nsym) for i in range(n)]
    with Slotd() as s:
        sub = Subscriber(s.tcp_port, 1, "*", "now")
        assert sub.cursor == {}
        # Connection k sends the symbols i mod 4 == k: per-symbol order is send order.
        parts = [[t for t in trades if int(t[0][1:]) % 4 == k] for k in range(4)]
        senders = [threading.Thread(target=send_all, args=(s.tcp_port, "feed-%d" % k, parts[k]))
                   for k in range(4)]
        for t in senders:
            t.start()
        sub.pump(until=n)
        for t in senders:
            t.join()
        check_exact(sub.got, trades)
        assert sub.other == []
        counts = {sym: len(v) for sym, v in expected(trades).items()}
        assert sub.cursor == counts, "positions are the symbols' arrival counts"
        assert s.http_json("/stats")[1]["trades"] == n
        assert s.metric("subscriber_trades_total") == n
        assert s.metric("subscribers") == 1
        # Resubscribing from the cursor gives nothing more; from "start", everything again.
        again = Subscriber(s.tcp_port, 2, "*", sub.cursor, name="sub2")
        again.c.send(["UNSUB", 2])
        assert again.pump() and again.other == [["UNSUBOK", 2]] and again.n == 0
        sub.c.close()
        wait_for(lambda: s.metric("subscribers") == 0, what="subscriber gone")


def test_resume_after_sigkill_exactly_once():
    """As above, one subscriber's trades carried across the restarts."""
    n, nsym = int(300_000 * SCALE) // BATCH * BATCH, 16
    trades = [trade(i, nsym) for i in range(n)]
    tcp, http = free_port(), free_port()
    args = ["--listen", "127.0.0.1:%d" % tcp, "--http", "127.0.0.1:%d" % http,
            "--checkpoint-bytes", "256K"]
    with Slotd(extra_args=args) as s:
        sub = Subscriber(tcp, 1, "*", "start")
        got, total = sub.got, 0
        sender = threading.Thread(target=send_all, args=(tcp, "feed", trades))
        sender.start()
        for frac in (3, 2):
            sub.pump(until=sub.n + max(1, (n - total - sub.n) // frac))
            s.kill()
            assert sub.pump(until=n) is False
            total += sub.n
            s.start()
            cursor = sub.cursor
            sub = Subscriber(tcp, 1, "*", cursor)
            assert all(sub.cursor.get(k, 0) == v for k, v in cursor.items()), "starts at the cursor"
            sub.got = got
        sub.pump(until=n - total)
        sender.join()
        check_exact(got, trades)
        assert s.http_json("/stats")[1]["trades"] == n


def test_never_reading_subscriber_is_dropped():
    # At least ~7 MB of pushes whatever the scale: more than the kernel's
    # socket buffers (4 MB on loopback) hold, so the write really stalls.
    n, nsym = max(int(400_000 * SCALE), 250_000) // BATCH * BATCH, 8
    trades = [trade(i, nsym) for i in range(n)]
    with Slotd(extra_args=["--sub-stall-timeout", "1s"]) as s:
        rss0 = s.rss_bytes()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", s.tcp_port))
        sock.sendall(msgpack.packb(["HELLO", {"client": "sleepy"}]) +
                     msgpack.packb(["SUB", 1, {"syms": "*", "from": "now"}]))
        wait_for(lambda: s.metric("subscribers") == 1, what="subscribed")
        send_all(s.tcp_port, "feed", trades)  # ingest completes, whatever the subscriber does
        assert s.http_json("/stats")[1]["trades"] == n
        wait_for(lambda: drops(s, "stalled") == 1, what="the stalled subscriber dropped")
        assert s.metric("subscribers") == 0
        assert drops(s, "gone") == 0
        grown = s.rss_bytes() - rss0
        store = s.metric("store_bytes_reserved")
        print("  rss grew %.1f MiB for %d trades (store reserved %.1f MiB)"
              % (grown / 2**20, n, store / 2**20))
        assert grown < store + (64 << 20), (grown, store)
        assert "reason=stalled" in s.logs()
        sock.settimeout(10)
        try:
            while sock.recv(1 << 16):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        sock.close()
        # Others still subscribe and read.
        sub = Subscriber(s.tcp_port, 1, ["S01"], "start")
        sub.pump(until=n // nsym)
        assert [t[4] for t in sub.got["S01"]] == [i for i in range(n) if i % nsym == 1]


def test_retention_gone_and_gap():
    nold = int(20_000 * SCALE) // BATCH * BATCH or BATCH
    old = [["OLD", T0 + i, "1.5", "1", "B", i] for i in range(nold)]
    new = [["OLD", T0 + 3_600_000_000_000 + i, "2.5", "1", "S", nold + i] for i in range(BATCH)]
    with Slotd(extra_args=["--retention", "10m"]) as s:
        send_all(s.tcp_port, "feed", old + new)
        wait_for(lambda: s.http_json("/stats")[1]["trades"] < nold + BATCH, what="retention")
        kept = s.http_json("/symbols/OLD")[1]["count"]
        first = nold + BATCH - kept
        c = Client(s.tcp_port, "sub")
        c.send(["SUB", 7, {"syms": ["OLD"], "from": {"OLD": 0}}])
        assert c.recv() == ["SUBOK", 7, {"OLD": 0}]
        r = c.recv()
        assert r[:3] == ["ERR", 7, "CURSOR_GONE"], r
        assert "from position 0 to %d" % first in r[3], r
        assert drops(s, "gone") == 1
        c.send(["SUB", 7, {"syms": ["OLD"], "from": {"OLD": 0}, "gaps": True}])
        assert c.recv() == ["SUBOK", 7, {"OLD": 0}]
        assert c.recv() == ["GAP", 7, "OLD", 0, first]
        got = []
        while len(got) < kept:
            m = c.recv()
            assert m[0] == "S", m
            got.extend(t[4] for t in m[5])
        assert got == list(range(first, nold + BATCH))


def test_bad_inputs():
    with Slotd() as s:
        c = Client(s.tcp_port, "sub")
        c.send(["SUB", 1, {"syms": ["AAPL"], "from": "now"}])
        assert c.recv() == ["SUBOK", 1, {}]
        bad = [
            (["SUB", 2, {"syms": 5}], 2, "BAD_SUB", "syms: must be"),
            (["SUB", 2, {"syms": []}], 2, "BAD_SUB", "syms: must be"),
            (["SUB", 2, {"syms": [1]}], 2, "BAD_SUB", "each symbol must be a string"),
            (["SUB", 2, {"syms": ["A", "A"]}], 2, "BAD_SUB", "'A' is named twice"),
            (["SUB", 2, {"syms": {"A": 1}}], 2, "BAD_SUB", "syms: must be"),
            (["SUB", 2, {"from": "now"}], 2, "BAD_SUB", "syms is required"),
            (["SUB", 2, {"syms": "*", "from": "yesterday"}], 2, "BAD_SUB", "from: must be"),
            (["SUB", 2, {"syms": "*", "from": 5}], 2, "BAD_SUB", "from: must be"),
            (["SUB", 2, {"syms": "*", "from": {"A": -1}}], 2, "BAD_SUB",
             "position of 'A' must be a non-negative integer"),
            (["SUB", 2, {"syms": "*", "from": {"A": "3"}}], 2, "BAD_SUB", "non-negative integer"),
            (["SUB", 2, {"syms": ["B"], "from": {"A": 3}}], 2, "BAD_SUB", "'A' is not in syms"),
            (["SUB", 2, {"syms": "*", "gaps": "yes"}], 2, "BAD_SUB", "gaps: must be true or false"),
            (["SUB", 2, {"syms": "*", "limit": 5}], 2, "BAD_SUB", "unknown key 'limit'"),
            (["SUB", 1, {"syms": "*"}], 1, "BAD_SUB", "id 1 is already open"),
            (["SUB", "x", {"syms": "*"}], 0, "BAD_MESSAGE", "id a non-negative integer"),
            (["SUB", 2, ["*"]], 2, "BAD_MESSAGE", "third element of SUB must be a map"),
            (["UNSUB", 99], 99, "BAD_SUB", "no subscription with id 99"),
            (["UNSUB", -1], 0, "BAD_MESSAGE", "[\"UNSUB\", id]"),
        ]
        for msg, rid, code, text in bad:
            c.send(msg)
            r = c.recv()
            assert r[:3] == ["ERR", rid, code] and text in r[3], (msg, r)
        # Nothing else was affected: ingest works, subscription 1 still delivers.
        send_all(s.tcp_port, "feed", [["AAPL", T0 + i, "1", "1", "B", i] for i in range(BATCH)])
        got = []
        while len(got) < BATCH:
            m = c.recv()
            assert m[:4] == ["S", 1, "AAPL", "trade"], m
            got.extend(t[4] for t in m[5])
        assert got == list(range(BATCH))
        assert s.http_json("/stats")[1]["errors"]["BAD_SUB"] == 15
        c.send(["UNSUB", 1])
        assert c.recv() == ["UNSUBOK", 1]
        assert s.metric("subscribers") == 0


def test_subscribe_perm():
    import hashlib
    d = Slotd()
    path = os.path.join(d.data_dir, "auth")
    with open(path, "w") as f:
        for name, perms in (("reader", "query"), ("watcher", "subscribe")):
            h = hashlib.sha256(b"salt" + b"pw-" + name.encode()).hexdigest()
            f.write("%s:salt:%s:%s\n" % (name, h, perms))
    d.extra_args = ["--auth-file", path]
    with d as s:
        c = Client(s.tcp_port, "reader", token="pw-reader")
        c.send(["SUB", 1, {"syms": "*"}])
        r = c.recv()
        assert r[:3] == ["ERR", 1, "UNAUTHORIZED"] and "may not subscribe" in r[3], r
        assert c.closed()
        c = Client(s.tcp_port, "watcher", token="pw-watcher")
        c.send(["SUB", 1, {"syms": "*"}])
        assert c.recv() == ["SUBOK", 1, {}]


def test_python_client_subscribe():
    import slotd
    n, nsym = 6 * BATCH, 3
    trades = [trade(i, nsym) for i in range(n)]
    with Slotd() as s:
        send_all(s.tcp_port, "feed", trades[:n // 2])
        seen = []
        with slotd.Client(port=s.tcp_port) as c:
            sub = c.subscribe(["S00", "S01"], from_="start")
            for t in sub:
                seen.append(t)
                if len(seen) == 1500:
                    break
            cursor = dict(sub.cursor)
        assert all(t["pos"] is not None for t in seen)
        t = seen[0]
        assert t == {"sym": "S00", "kind": "trade", "ts": T0, "px": "100", "qty": "0.5",
                     "side": "S", "id": 0, "pos": 0}, t
        send_all(s.tcp_port, "feed", trades)  # resumes at seq n/2/BATCH + 1
        want = [t for t in trades if t[0] in ("S00", "S01")]
        with slotd.Client(port=s.tcp_port) as c:
            sub = c.subscribe(["S00", "S01"], from_=cursor)
            for t in sub:
                seen.append(t)
                if len(seen) == len(want):
                    break
            sub.close()
            got = sorted((t["sym"], t["pos"], t["id"]) for t in seen)
            assert [g[2] for g in got] == [t[5] for t in sorted(want)], "exactly once, in order"
            assert len(set((g[0], g[1]) for g in got)) == len(want)
            assert got[-1][:2] == ("S01", n // nsym - 1)
            try:
                c.subscribe("*", from_="yesterday")
                raise AssertionError("accepted a bad from_")
            except slotd.SubscribeError as e:
                assert e.code == "BAD_SUB" and "from: must be" in e.message, e
            everything = c.subscribe("*", from_="start")
            ids = [t["id"] for _, t in zip(range(n), everything)]
            assert sorted(ids) == list(range(n))
            everything.close()


if __name__ == "__main__":
    r = Results()
    r.run(test_bad_inputs)
    r.run(test_subscribe_perm)
    r.run(test_star_exact_over_4_connections)
    r.run(test_resume_after_sigkill_exactly_once)
    r.run(test_never_reading_subscriber_is_dropped)
    r.run(test_retention_gone_and_gap)
    r.run(test_python_client_subscribe)
    r.finish()
