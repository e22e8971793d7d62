"""Hostile clients against a real slotd: resource exhaustion and limits.

Each check proves three things: the attacker gets a clear ERR code or a
close; the server stays up with bounded memory (RSS from /proc); and an
honest client streaming at the same time (test_ingest.Background) loses
nothing: every ack arrives and every acknowledged trade is stored. After
each attack slotd still stops cleanly on SIGTERM (exit 0).

Covers: 10,000 idle connections; slotd's own fd limit (RLIMIT_NOFILE 256,
400 connections: served or closed, logged, no busy loop, recovers); a
byte-a-second sender (cut by the per-message deadline, IDLE_TIMEOUT);
HELLO floods; batches at and just past --max-batch, --max-message and
--max-depth; a symbol storm past --max-symbols; query abuse (huge limit,
1 ns bars, huge top) over TCP and HTTP.

Deterministic (fixed seeds, no timing assertions beyond generous timeouts);
under a minute on 2 cores.
"""
import os
import resource
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import msgpack  # noqa: E402
from harness import Client, Results, Slotd, wait_for  # noqa: E402
from test_ingest import TS0, Background, expect_err, stats  # noqa: E402

MiB = 1 << 20
DROPPED = (EOFError, ConnectionResetError, BrokenPipeError)  # a close; a hang is a failure


def raise_nofile():
    """Lift this process's soft RLIMIT_NOFILE to its hard limit; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_conns(s):
    status, doc = s.http_json("/stats")
    assert status == 200, doc
    return doc["connections"]


def trade(sym, i=0):
    return [sym, TS0 + i * 1000, "1.25", 1, "B", i]


def count(c, sym):
    r = c.query(90, {"op": "symbol", "sym": sym})
    assert r[0] == "R", r
    return r[2]["count"]


def not_found(c, sym):
    expect_err(c.query(91, {"op": "symbol", "sym": sym}), 91, "NOT_FOUND")


# ---------------------------------------------------------------------------


def test_idle_connections():
    """10,000 idle connections past HELLO (fewer if the fd limit says so): RSS bounded, all
    still served."""
    hard = raise_nofile()
    n = min(10000, hard - 300)  # slotd inherits the same limit and needs a few fds of its own
    with Slotd(["--max-connections", "20000", "--max-handshakes", "20000"]) as s:
        bg = Background(s)
        rss0 = s.rss_bytes()
        socks = []
        for i in range(n):
            sk = socket.create_connection(("127.0.0.1", s.tcp_port), timeout=30)
            sk.sendall(msgpack.packb(["HELLO", {"client": "idle-%d" % i}]))
            socks.append(sk)
        wait_for(lambda: server_conns(s) >= n + 1, what="%d connections" % n)
        for i in range(0, n):
            u = msgpack.Unpacker(raw=False)
            while True:
                u.feed(socks[i].recv(4096))
                msgs = list(u)
                if msgs:
                    assert msgs[0][0] == "WELCOME", msgs
                    break
        grown = s.rss_bytes() - rss0
        print("  %d idle connections: RSS +%.1f MiB" % (n, grown / MiB))
        assert grown < 512 * MiB, grown
        # Everything still works with all of them open.
        c = s.connect("beside-idle")
        c.send_batch(1, [trade("IDLE1")])
        assert c.recv() == ["ACK", 1, 1]
        assert s.http_get("/healthz")[0] == 200
        bg.finish(s)
        for sk in socks:
            sk.close()
        wait_for(lambda: server_conns(s) <= 3, what="idle connections to close")
        c.send_batch(2, [trade("IDLE1", 1)])
        assert c.recv() == ["ACK", 2, 1]
        assert s.stop() == 0


def test_fd_limit():
    """slotd at its own fd limit: served or closed, logged, no busy loop, recovers."""
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    with Slotd(["--max-connections", "20000"], preexec=low_nofile) as s:
        bg = Background(s)
        wait_for(lambda: bg.sent > 0, what="background stream")
        rss0 = s.rss_bytes()
        served, dropped = [], 0
        for i in range(400):
            try:
                served.append(Client(s.tcp_port, "fd-%d" % i, timeout=10))
            except DROPPED:
                dropped += 1
        print("  nofile 256, 400 connections: %d served, %d closed unanswered"
              % (len(served), dropped))
        assert dropped >= 400 - 256, dropped
        assert len(served) >= 100, len(served)
        # The honest stream carries on at the limit.
        sent = bg.sent
        wait_for(lambda: bg.sent > sent + 100 or bg.error, what="background progress")
        assert bg.error is None, bg.error
        # Served connections keep working at the limit.
        served[0].send_batch(1, [trade("FD1")])
        assert served[0].recv() == ["ACK", 1, 1]
        # No busy loop: with attempts still arriving, slotd sleeps (a spinning
        # accept loop would burn ~3 s of CPU here).
        bg.stop.set()
        bg.t.join(30)
        cpu0 = cpu_seconds(s.proc.pid)
        for _ in range(6):
            try:
                Client(s.tcp_port, "late", timeout=10).close()
            except DROPPED:
                pass
            time.sleep(0.5)
        cpu = cpu_seconds(s.proc.pid) - cpu0
        print("  CPU at the limit over 3 s: %.2f s" % cpu)
        assert cpu < 1.0, cpu
        # Free fds: new clients are served again.
        for c in served[1:151]:
            c.close()
        wait_for(lambda: server_conns(s) <= len(served) + 1 - 150, what="fds to free up")
        fresh = [s.connect("fresh-%d" % i) for i in range(50)]
        for i, c in enumerate(fresh):
            c.send_batch(1, [trade("FD2", i)])
            assert c.recv() == ["ACK", 1, 1]
        assert count(fresh[0], "FD2") == 50
        bg.finish(s)
        assert s.rss_bytes() - rss0 < 128 * MiB
        logs = s.logs()
        assert "WARN fd_limit nofile=" in logs, "no start-up warning about the fd limit"
        assert "WARN fd_limit_near" in logs, "no warning when the fd limit was reached"
        assert s.stop() == 0


def test_slow_drip():
    """A byte a second of a valid batch is cut by the per-message deadline; others are served."""
    with Slotd(["--idle-timeout", "3"]) as s:
        bg = Background(s)
        data = msgpack.packb(["T", 1, [trade("DRIP%d" % i, i) for i in range(3)]])
        c = s.connect("drip")
        stop = threading.Event()

        def drip():
            for b in data:
                if stop.is_set():
                    return
                try:
                    c.send_raw(bytes([b]))
                except OSError:
                    return
                time.sleep(1.0)

        # A message split over reads but complete within the timeout is served,
        # and so is a client sending a small message every second for longer
        # than the timeout.
        prompt_ok, chatty_ok = [], []

        def prompt():
            p = s.connect("prompt")
            msg = msgpack.packb(["T", 1, [trade("PROMPT")]])
            p.send_raw(msg[:10])
            time.sleep(1.0)
            p.send_raw(msg[10:])
            prompt_ok.append(p.recv() == ["ACK", 1, 1])

        def chatty():
            q = s.connect("chatty")
            for i in range(6):
                r = q.query(i, {"op": "stats"})
                if r[0] != "R":
                    return
                time.sleep(1.0)
            chatty_ok.append(True)

        threads = [threading.Thread(target=f, daemon=True) for f in (drip, prompt, chatty)]
        t0 = time.time()
        for t in threads:
            t.start()
        c.sock.settimeout(30)
        r = c.recv()
        cut = time.time() - t0
        stop.set()
        print("  drip of %d bytes cut after %.1f s" % (len(data), cut))
        expect_err(r, 0, "IDLE_TIMEOUT")
        assert cut < len(data) - 5, "the whole message got through: %.1f s" % cut
        assert c.closed()
        for t in threads:
            t.join(30)
        assert prompt_ok == [True], "a message split over 1 s was not served"
        assert chatty_ok == [True], "a client sending every second was cut"
        q = s.connect("drip-check")
        for i in range(3):
            not_found(q, "DRIP%d" % i)
        bg.finish(s)
        assert s.stop() == 0


def test_hello_flood():
    """2,000 short-lived HELLOs with distinct names, then 10,000 HELLOs on one connection."""
    with Slotd() as s:
        bg = Background(s)
        rss0 = s.rss_bytes()
        for i in range(2000):
            c = s.connect("flood-%05d" % i)
            if i % 2:  # half of them also create a per-client record
                c.send_batch(1, [])
                assert c.recv() == ["ACK", 1, 0]
            c.close()
        c = s.connect("repeat")
        again = msgpack.packb(["HELLO", {"client": "repeat"}])
        for _ in range(10):
            c.send_raw(again * 1000)
            for _ in range(1000):
                expect_err(c.recv(), 0, "BAD_MESSAGE")
        c.send_batch(1, [trade("HELLO1")])  # the connection stayed open and usable
        assert c.recv() == ["ACK", 1, 1]
        grown = s.rss_bytes() - rss0
        print("  HELLO flood: RSS +%.1f MiB" % (grown / MiB))
        assert grown < 64 * MiB, grown
        bg.finish(s)
        assert s.stop() == 0


def exact_batch(seq, size, letter):
    """A valid array-form batch of exactly `size` packed bytes (size >= 1000):
    trades [sym, ts, 1, 1] of 13 + len(sym) bytes, the symbol lengths tuned."""
    body = size - 7  # 93 a1 54 <seq fixint> dc <n:2>
    n = -(-body // 44)
    extra = body - 14 * n
    trades = []
    for i in range(n):
        add = min(30, extra)
        extra -= add
        trades.append([letter * (1 + add), TS0 + i, 1, 1])
    msg = msgpack.packb(["T", seq, trades], use_bin_type=True)
    assert len(msg) == size and seq < 128 and 16 <= n < 65536, (len(msg), size)
    per_sym = {}
    for t in trades:
        per_sym[t[0]] = per_sym.get(t[0], 0) + 1
    return msg, per_sym


def test_batch_and_depth_limits():
    """--max-batch 100: 100 ACK, 101 TOO_LARGE. --max-depth 6: at the limit framed (and judged
    on its content), one deeper TOO_LARGE and closed."""
    with Slotd(["--max-batch", "100", "--max-depth", "6"]) as s:
        bg = Background(s)
        c = s.connect("limits")
        c.send_batch(1, [trade("LIM", i) for i in range(100)])
        assert c.recv() == ["ACK", 1, 100]
        c.send_batch(2, [trade("LIM", i) for i in range(101)])
        r = c.recv()
        expect_err(r, 2, "TOO_LARGE")
        assert r[4] is None, r
        assert count(c, "LIM") == 100  # nothing of the 101
        # Depth exactly 6 (message, trades, trade, 3 levels in ts): framed, then
        # refused by the decoder for its type, not its depth; the connection stays.
        # (Seq 2 was refused, so it is reused until a batch under it is stored.)
        c.send_batch(2, [["DEEP", [[[1]]], 1, 1]])
        expect_err(c.recv(), 2, "WRONG_TYPE", 0)
        r = c.query(4, {"op": "stats", "pad": [[[1]]]})  # a query 5 deep: fine
        assert r[0] == "R" or r[2] == "BAD_QUERY", r
        c.send_batch(2, [trade("LIM", 200)])
        assert c.recv() == ["ACK", 2, 1]
        # One level deeper: TOO_LARGE, and the stream cannot continue.
        d = s.connect("deeper")
        d.send_batch(1, [["DEEP", [[[[1]]]], 1, 1]])
        expect_err(d.recv(), 0, "TOO_LARGE")
        assert d.closed()
        not_found(c, "DEEP")
        bg.finish(s)
        assert s.stop() == 0


def test_message_limit():
    """--max-message 64K: a 65,536-byte batch is stored; 65,537 bytes is TOO_LARGE and closes."""
    with Slotd(["--max-message", "64K"]) as s:
        bg = Background(s)
        rss0 = s.rss_bytes()
        c = s.connect("msg-limit")
        msg, per_sym = exact_batch(1, 65536, "M")
        n = sum(per_sym.values())
        c.send_raw(msg)
        assert c.recv() == ["ACK", 1, n]
        over, over_syms = exact_batch(2, 65537, "N")
        c.send_raw(over)
        expect_err(c.recv(), 0, "TOO_LARGE")
        assert c.closed()
        q = s.connect("msg-check")
        for sym, k in per_sym.items():
            assert count(q, sym) == k, sym
        for sym in over_syms:
            not_found(q, sym)
        # The exact limit again, sent in small pieces.
        msg, _ = exact_batch(3, 65536, "M")
        for i in range(0, len(msg), 1000):
            q.send_raw(msg[i:i + 1000])
        assert q.recv() == ["ACK", 3, n]
        assert s.rss_bytes() - rss0 < 64 * MiB
        bg.finish(s)
        assert s.stop() == 0


def test_symbol_storm():
    """--max-symbols 1000: new symbols past the limit get SYMBOL_LIMIT, the batch stores
    nothing; batches refused for any reason take none of the quota."""
    with Slotd(["--max-symbols", "1000"]) as s:
        bg = Background(s)
        wait_for(lambda: bg.sent >= 100, what="background stream")
        c = s.connect("storm")
        c.send_batch(1, [trade("OLD")])
        assert c.recv() == ["ACK", 1, 1]
        have = stats(c)["symbols"]  # the background's two, and OLD
        assert have == 3, have
        rss0 = s.rss_bytes()
        seq = 2
        # Batches of new symbols, as many as the limit allows, each failing at its
        # last trade (no qty): they create no symbol, so the quota stays whole.
        room = 1000 - have
        for i in range(100):
            syms = ["BL%03d-%04d" % (i, j) for j in range(room)]
            batch = [trade(x, j) for j, x in enumerate(syms)]
            batch[-1] = batch[-1][:3]
            c.send_batch(seq, batch)
            expect_err(c.recv(), seq, "MISSING_FIELD", room - 1)
            # a refused seq is reused until a batch under it is stored
        not_found(c, "BL000-0000")
        not_found(c, "BL099-0995")
        assert stats(c)["symbols"] == have
        made, failed_at = have, None
        while failed_at is None:
            syms = ["ST%05d" % (made + i) for i in range(100)]
            c.send_batch(seq, [trade(x, i) for i, x in enumerate(syms)])
            r = c.recv()
            if r[0] == "ACK":
                assert r == ["ACK", seq, 100], r
                made += 100
            else:
                expect_err(r, seq, "SYMBOL_LIMIT", 1000 - made)
                failed_at = syms
                continue
            seq += 1
        # The failing batch stored nothing, not even its symbols that fit...
        not_found(c, failed_at[0])
        not_found(c, failed_at[-1])
        # ...nor took their quota: new symbols up to the limit still go in.
        last = failed_at[:1000 - made]
        c.send_batch(seq, [trade(x, i) for i, x in enumerate(last)])
        assert c.recv() == ["ACK", seq, len(last)]
        made += len(last)
        seq += 1
        assert made == 1000 and stats(c)["symbols"] == 1000
        # Keep storming: every batch of new symbols is refused at its first trade.
        for i in range(100):
            syms = ["XS%03d-%04d" % (i, j) for j in range(1000)]
            c.send_batch(seq, [trade(x, j) for j, x in enumerate(syms)])
            expect_err(c.recv(), seq, "SYMBOL_LIMIT", 0)
        grown = s.rss_bytes() - rss0
        print("  symbol storm: RSS +%.1f MiB" % (grown / MiB))
        assert grown < 64 * MiB, grown
        # Existing symbols still take trades.
        c.send_batch(seq, [trade("OLD", 1), trade("ST00003", 1)])
        assert c.recv() == ["ACK", seq, 2]
        assert count(c, "OLD") == 2
        bg.finish(s)
        assert stats(c)["trades"] == bg.sent + 1 + (made - have) + 2
        assert s.stop() == 0


def test_query_abuse():
    """A huge limit is clamped (with a cursor to page on); 1 ns bars over a wide range is
    BAD_QUERY, not a hang; a huge top is clamped."""
    with Slotd() as s:
        bg = Background(s)
        c = s.connect("queries")
        for seq in range(1, 21):  # 20,000 trades of QSYM, 1 us apart
            b = [["QSYM", TS0 + ((seq - 1) * 1000 + i) * 1000, "2.5", 1] for i in range(1000)]
            c.send_batch(seq, b)
            assert c.recv() == ["ACK", seq, 1000]
        c.send_batch(21, [trade("TOP%04d" % i) for i in range(1500)])
        assert c.recv() == ["ACK", 21, 1500]
        # limit 10^9: at most 10,000 a call, and a cursor that pages through all.
        total, cursor, calls = 0, None, 0
        while True:
            req = {"op": "trades", "sym": "QSYM", "limit": 10 ** 9}
            if cursor is not None:
                req["cursor"] = cursor
            r = c.query(1, req)
            assert r[0] == "R", r
            got = len(r[2]["trades"])
            assert got <= 10000, got
            total += got
            calls += 1
            cursor = r[2]["next_cursor"]
            if cursor is None:
                break
            assert got > 0 and calls < 10, (got, calls)
        assert total == 20000 and calls >= 2, (total, calls)
        for limit in (2 ** 63 - 1, 2 ** 64 - 1):
            r = c.query(2, {"op": "trades", "sym": "QSYM", "limit": limit})
            assert (r[0] == "R" and len(r[2]["trades"]) <= 10000) or r[2] == "BAD_QUERY", r[:3]
        # 1 ns bars over 20 ms of trades: 2*10^7 bars asked, refused at once.
        r = c.query(3, {"op": "bars", "sym": "QSYM", "interval": 1})
        expect_err(r, 3, "BAD_QUERY")
        r = c.query(4, {"op": "bars", "sym": "QSYM", "interval": 1, "from": 0,
                        "to": 2 ** 63 - 1})
        expect_err(r, 4, "BAD_QUERY")
        r = c.query(5, {"op": "bars", "sym": "QSYM", "interval": 1, "from": TS0,
                        "to": TS0 + 5000})  # a narrow range is fine
        assert r[0] == "R" and len(r[2]["bars"]) == 5, r
        r = c.query(6, {"op": "top", "top": 10 ** 9, "by": "count"})
        assert r[0] == "R" and len(r[2]["symbols"]) == 1000, (r[0], len(r[2].get("symbols", ())))
        assert "QSYM" in [x["symbol"] for x in r[2]["symbols"]]
        # The same over HTTP.
        status, doc = s.http_json("/symbols/QSYM/trades?limit=1000000000")
        assert status == 200 and len(doc["trades"]) == 10000, status
        assert doc["next_cursor"] is not None, doc["next_cursor"]
        status, doc = s.http_json("/symbols/QSYM/bars?interval=1ns")
        assert status == 400, (status, doc)
        status, doc = s.http_json("/symbols?top=1000000000")
        assert status == 200 and len(doc["symbols"]) == 1000, status
        bg.finish(s)
        assert s.stop() == 0


def main():
    res = Results()
    res.run(test_idle_connections)
    res.run(test_fd_limit)
    res.run(test_slow_drip)
    res.run(test_hello_flood)
    res.run(test_batch_and_depth_limits)
    res.run(test_message_limit)
    res.run(test_symbol_storm)
    res.run(test_query_abuse)
    res.finish()


if __name__ == "__main__":
    main()
