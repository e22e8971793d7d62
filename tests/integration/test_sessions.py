"""Sessions against a real slotd: the sequence rules that make a literal
PROTOCOL.md client lossless, one writer per client name, bounded client
names, the before-HELLO budget, lingering close and log escaping
(issue #10 items 1, 10, 11, 12, 15, 16).

A "literal client" (LiteralClient) does exactly what PROTOCOL.md §5 says:
pipelines, resends a refused batch under the same seq (corrected when the
error was in the data), resends BLOCKED ones in order after it, and on
reconnect resumes from WELCOME's last_seq. Every test ends by counting what
the store holds against what the client was told is delivered.

Deterministic, seconds on 2 cores.
"""
import os
import random
import resource
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import msgpack  # noqa: E402
from harness import Client, Results, Slotd, nearly_full_disk, wait_for  # noqa: E402
from test_ingest import TS0, expect_err  # noqa: E402

MiB = 1 << 20
RETRYABLE = {"STORE_FULL", "JOURNAL", "NOT_READY", "BLOCKED"}


def trade(sym, i, px="1.25"):
    return [sym, TS0 + i, px, 1, "B", i]


def held_count(c, sym):
    r = c.query(90, {"op": "symbol", "sym": sym})
    if r[0] == "ERR":
        assert r[2] == "NOT_FOUND", r
        return 0
    return r[2]["count"]


class LiteralClient:
    """PROTOCOL.md §5 to the letter. batches: {seq: trades}; fix(seq, trades, err)
    returns the corrected trades for an error in the data."""

    def __init__(self, s, name, batches, fix, window=64):
        self.s, self.name, self.fix, self.window = s, name, fix, window
        self.todo = dict(batches)
        self.delivered = {}          # seq -> trades stored (ACK n > 0)
        self.errors = {}             # code -> count
        self.c = None

    def connect(self):
        self.c = self.s.connect(self.name)
        last = self.c.welcome[1]["last_seq"]
        for seq in [q for q in self.todo if q <= last]:
            self.delivered[seq] = self.todo.pop(seq)  # acknowledged before the reconnect
        return self.c

    def round(self, limit=None):
        """Pipeline up to `window` outstanding batches (seq order), read every reply."""
        order = sorted(self.todo)[:limit]
        sent = []
        for seq in order[:self.window]:
            b = self.todo[seq]
            if isinstance(b, tuple):   # (trades, kind)
                self.c.send_batch(seq, b[0], b[1])
            else:
                self.c.send_batch(seq, b)
            sent.append(seq)
        for seq in sent:
            r = self.c.recv()
            assert r[1] == seq, (r, seq)
            if r[0] == "ACK":
                b = self.todo[seq]
                assert r[2] in (0, len(b[0] if isinstance(b, tuple) else b)), r
                self.delivered[seq] = self.todo.pop(seq)
                continue
            self.errors[r[2]] = self.errors.get(r[2], 0) + 1
            if r[2] not in RETRYABLE:
                self.todo[seq] = self.fix(seq, self.todo[seq], r)

    def run(self, rounds=1000):
        for _ in range(rounds):
            if not self.todo:
                return
            self.round()
        raise AssertionError("not delivered: %r" % sorted(self.todo))


def bad_px(i, sym="LIT"):
    return [sym, TS0 + i, "1.123456789", 1, "B", i]  # 9 decimals: BAD_VALUE


def fix_px(seq, trades, err):
    assert err[2] == "BAD_VALUE" and err[4] is not None, err
    trades = list(trades)
    t = list(trades[err[4]])
    t[2] = "1.5"
    trades[err[4]] = t
    return trades


def make_batches(n, per, bad_share, rng, sym="LIT"):
    batches, ids = {}, 0
    for seq in range(1, n + 1):
        b = [trade(sym, ids + k) for k in range(per)]
        if rng.random() < bad_share:
            b[rng.randrange(per)] = bad_px(ids + rng.randrange(per), sym)
        ids += per
        batches[seq] = b
    return batches


def test_err_then_corrected_resend_pipelined(s):
    """30% of 60 pipelined batches carry one bad trade: a literal client delivers every
    trade exactly once (before: ACK n=0 for the corrected resend, 900 trades lost)."""
    rng = random.Random(1)
    batches = make_batches(60, 50, 0.3, rng)
    lc = LiteralClient(s, "literal", batches, fix_px)
    q = lc.connect()
    lc.run()
    assert held_count(q, "LIT") == 60 * 50, (held_count(q, "LIT"), lc.errors)
    assert lc.errors.get("BAD_VALUE", 0) > 0 and lc.errors.get("BLOCKED", 0) > 0, lc.errors


def test_blocked_is_exact(s):
    """After ERR on seq N, a later seq is BLOCKED (stores nothing) until N is resent;
    an empty batch gives N up; a seq below N is still taken."""
    c = s.connect("blocked")
    c.send_batch(5, [bad_px(0)])
    c.send_batch(6, [trade("BLK", 1)])
    c.send_batch(3, [trade("BLK", 2)])          # below the refused seq: fine
    expect_err(c.recv(), 5, "BAD_VALUE", 0)
    expect_err(c.recv(), 6, "BLOCKED", None, ["batch 5"])
    assert c.recv() == ["ACK", 3, 1]
    assert held_count(c, "BLK") == 1
    c.send_batch(5, [])                           # give 5 up
    assert c.recv() == ["ACK", 5, 0]
    c.send_batch(6, [trade("BLK", 1)])
    assert c.recv() == ["ACK", 6, 1]
    c.send_batch(5, [trade("BLK", 9)])            # 5 is stored (empty): a resend is a duplicate
    assert c.recv() == ["ACK", 5, 0]
    assert held_count(c, "BLK") == 2


def test_store_full_blocks_later_seqs():
    """STORE_FULL on seq N: a smaller seq N+1 pipelined behind it is BLOCKED, not stored
    (before: stored, so N resent after memory freed up was ACK 0 and lost)."""
    with Slotd(["--max-memory", "16M"]) as s:
        c = s.connect("full")
        seq = 1
        big = [trade("F%d" % (i % 50), i) for i in range(20000)]
        while True:
            c.send_batch(seq, big)
            c.send_batch(seq + 1, [trade("SMALL", 0)])
            r1, r2 = c.recv(), c.recv()
            if r1[0] == "ACK":
                assert r2 == ["ACK", seq + 1, 1], r2
                seq += 2
                continue
            expect_err(r1, seq, "STORE_FULL")
            expect_err(r2, seq + 1, "BLOCKED")
            break
        assert held_count(c, "SMALL") == (seq - 1) // 2
        # The literal client keeps retrying N: still STORE_FULL, N+1 still blocked.
        c.send_batch(seq, [trade("SMALL", 1)])       # a corrected (smaller) N fits
        assert c.recv() == ["ACK", seq, 1]
        c.send_batch(seq + 1, [trade("SMALL", 2)])
        assert c.recv() == ["ACK", seq + 1, 1]


def test_journal_error_pipelined():
    """ERR JOURNAL under pipelining: every later seq is refused until the failed one is
    resent; once the disk has room the literal client delivers everything exactly once."""
    with nearly_full_disk() as disk:
        if disk is None:
            return
        data, filler = disk
        with Slotd(["--journal-segment", "1M"], data_dir=data) as s:
            rng = random.Random(2)
            batches = make_batches(100, 1000, 0.0, rng)
            lc = LiteralClient(s, "journal", batches, fix_px, window=40)
            q = lc.connect()
            for _ in range(3):
                lc.round()
            assert lc.errors.get("JOURNAL", 0) > 0, lc.errors
            assert lc.todo, "the disk never filled"
            stored = held_count(q, "LIT")
            assert stored == sum(len(b) for b in lc.delivered.values()), stored
            os.unlink(filler)  # space returns
            lc.run()
            assert held_count(q, "LIT") == 100 * 1000
            lc.c.close()
            q.close()
            s.restart()
            assert held_count(s.connect("check"), "LIT") == 100 * 1000


# Each data error a batch can carry, and how a client corrects it (array form:
# [sym, ts, px, qty, side, id]). Corrected batches hold exactly the planned trades.
def spoil(code, trades, rng):
    t = list(trades)
    k = rng.randrange(len(t))
    good = t[k]
    if code == "UNKNOWN_FIELD":
        t[k] = {"sym": good[0], "ts": good[1], "px": good[2], "qty": good[3], "side": good[4],
                "id": good[5], "venue": "X"}
    elif code == "MISSING_FIELD":
        t[k] = good[:3]
    elif code == "WRONG_TYPE":
        t[k] = [good[0], good[1], [1], good[3], good[4], good[5]]
    elif code == "BAD_VALUE":
        t[k] = [good[0], good[1], "1.123456789", good[3], good[4], good[5]]
    elif code == "BAD_SYMBOL":
        t[k] = ["X" * 40] + good[1:]
    elif code == "UNKNOWN_KIND":
        return (t, "no_such_kind"), trades
    elif code == "KIND_MISMATCH":   # whole option_trade records for a trade symbol
        return ([list(x) + ["100", TS0 * 2, "C"] for x in t], "option_trade"), trades
    elif code == "TOO_LARGE":
        t = t + [good] * (101 - len(t))
    return t, trades


def test_every_error_code_pipelined():
    """Every batch error code, pipelined, over several connections of one name (each
    new one fencing the last): a literal client delivers every planned trade exactly
    once; a lost ACK or a doubled batch would change the count."""
    codes = ["UNKNOWN_FIELD", "MISSING_FIELD", "WRONG_TYPE", "BAD_VALUE", "BAD_SYMBOL",
             "UNKNOWN_KIND", "KIND_MISMATCH", "TOO_LARGE"]
    rng = random.Random(5)
    with Slotd(["--max-batch", "100"]) as s:
        q = s.connect("setup")   # EVERY is a plain trade symbol: option_trade mismatches
        q.send_batch(1, [trade("EVERY", 10 ** 9)])
        assert q.recv() == ["ACK", 1, 1]
        planned, spoiled, ids = {}, {}, 0
        for seq in range(1, 121):
            b = [trade("EVERY", ids + k) for k in range(40)]
            ids += 40
            if seq % 3 == 0:
                code = codes[(seq // 3) % len(codes)]
                bad, good = spoil(code, b, rng)
                spoiled[seq] = (code, good)
                planned[seq] = bad
            else:
                planned[seq] = b

        def fix(seq, batch, err):
            code, good = spoiled[seq]
            assert err[2] == code, (seq, err)
            return good
        lc = LiteralClient(s, "every", planned, fix, window=30)
        lc.connect()
        for _ in range(200):
            if not lc.todo:
                break
            lc.round()
            old = lc.c
            lc.connect()                       # fence, resume from last_seq
            expect_err(old.recv(), 0, "FENCED")
        assert not lc.todo, sorted(lc.todo)
        assert held_count(q, "EVERY") == 1 + 120 * 40
        assert set(lc.errors) >= set(codes) | {"BLOCKED"}, lc.errors


def test_fencing_and_resume(s):
    """Several connections of one name, one after another, each pipelining with errors:
    a new HELLO fences the old connection (FENCED, closed); nothing lost or doubled."""
    rng = random.Random(3)
    batches = make_batches(90, 20, 0.2, rng, "FEN")
    lc = LiteralClient(s, "fenced", batches, fix_px, window=15)
    lc.connect()
    olds = []
    while lc.todo:
        lc.round()
        old = lc.c
        olds.append(old)
        lc.connect()              # a new connection under the same name
        r = old.recv()
        expect_err(r, 0, "FENCED")
        assert old.closed()
        if len(olds) > 20:
            break
    lc.run()
    assert held_count(lc.c, "FEN") == 90 * 20


def test_hello_memory_bound():
    """With --token, 64 connections sending 15 MiB of one unfinished HELLO: each is cut at
    the small before-HELLO limit; RSS stays low (before: +962 MiB)."""
    with Slotd(["--token", "s3cret"]) as s:
        rss0 = s.rss_bytes()
        head = b"\x92\xa5HELLO\x81\xa6client\xdb" + (15 * MiB).to_bytes(4, "big")
        socks = []
        for _ in range(64):
            sk = socket.create_connection(("127.0.0.1", s.tcp_port), timeout=30)
            sk.sendall(head + b"x" * 65536)
            socks.append(sk)
        for sk in socks:
            u = msgpack.Unpacker(raw=False)
            u.feed(sk.recv(4096))
            r = next(u)
            assert r[0] == "ERR" and r[2] == "TOO_LARGE", r
            sk.close()
        grown = s.rss_bytes() - rss0
        print("  64 x 15 MiB HELLO: RSS +%.1f MiB" % (grown / MiB))
        assert grown < 32 * MiB, grown
        c = s.connect("after", token="s3cret")
        c.send_batch(1, [trade("HM", 0)])
        assert c.recv() == ["ACK", 1, 1]


def test_buffered_bound():
    """Authenticated clients each holding a 12 MiB message unfinished: --max-buffered
    bounds what they pin together; a small client is still served; each message still
    completes once others finish."""
    # --idle-timeout 1h: a paused message must arrive within the idle timeout
    # of its first byte, and under TSan the eight decodes can take minutes.
    with Slotd(["--max-buffered", "24M", "--max-message", "16M", "--max-batch", "1000000",
                "--idle-timeout", "1h"]) as s:
        rss0 = s.rss_bytes()
        big = msgpack.packb(["T", 1, [trade("BIG%d" % (i % 3), i) for i in range(520000)]],
                            use_bin_type=True)
        assert len(big) > 12 * MiB
        cs = [s.connect("big-%d" % i) for i in range(8)]
        for c in cs:
            # A sender waits in sendall while slotd decodes the messages
            # before its own, which under TSan takes minutes: with the
            # harness's 30 s timeout one gave up half-way, and its half
            # message held the one overdraft until --idle-timeout.
            c.sock.settimeout(900)
        go = threading.Event()
        errors = []

        def send(c):
            try:
                c.send_raw(big[:len(big) - 10])      # blocks while slotd is not reading
                go.wait(60)
                c.send_raw(big[len(big) - 10:])
            except Exception as e:
                errors.append(e)
        ts = [threading.Thread(target=send, args=(c,), daemon=True) for c in cs]
        for t in ts:
            t.start()
        time.sleep(1.0)
        grown = s.rss_bytes() - rss0
        print("  8 x %.1f MiB unfinished: RSS +%.1f MiB" % (len(big) / MiB, grown / MiB))
        assert grown < 64 * MiB, grown
        small = s.connect("small")
        small.send_batch(1, [trade("SM", 0)])
        assert small.recv() == ["ACK", 1, 1]
        go.set()
        for c in cs:
            # The eight 520k-trade batches are decoded one after another, at
            # most two buffered at a time: under TSan or valgrind the last
            # ACK can be minutes away. The timeout only guards against a hang.
            try:
                r = c.recv()
            except OSError as e:
                raise AssertionError("no ACK (%s); sender errors: %r" % (e, errors))
            assert r == ["ACK", 1, 520000], r
        for t in ts:
            t.join(30)
        assert not errors, errors


def test_read_ahead_bounded():
    """Clients streaming large batches get reads of several messages (fewer messages
    split across two reads), but that read-ahead only ever takes the first half of
    --max-buffered: the rest stays for messages that must be finished."""
    per, batches, conns = 2500, 6, 4
    with Slotd(["--max-buffered", "2M"]) as s:
        cs = [s.connect("ra-%d" % k) for k in range(conns)]
        for k, c in enumerate(cs):     # all sent before any ACK is read
            for q in range(1, batches + 1):
                c.send_batch(q, [trade("RA%d" % k, q * per + i) for i in range(per)])
        size = len(msgpack.packb(["T", 1, [trade("RA0", i) for i in range(per)]]))
        assert size > 48 << 10, size
        for c in cs:
            for q in range(1, batches + 1):
                assert c.recv() == ["ACK", q, per]
        held = s.http_json("/stats")[1]["sessions"]["read_buffer_bytes"]
        print("  %d connections streaming %d KiB batches: read buffers %d KiB over base"
              % (conns, size >> 10, held >> 10))
        # Read-ahead happened, within half the budget; past it a connection
        # refused read-ahead may still grow by one read (64 KiB) to 256 KiB.
        assert 0 < held <= 1 * MiB + conns * 128 * 1024, held
        for k, c in enumerate(cs):
            assert held_count(c, "RA%d" % k) == per * batches


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = want if hard == resource.RLIM_INFINITY else min(want, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))
    return n


def test_silent_sockets_do_not_lock_out():
    """1,100 sockets that never send HELLO at --max-connections 1024: an authenticated
    client is served at once (before: TOO_MANY_CONNECTIONS for 300 s); silent sockets
    are closed after --hello-timeout."""
    n = raise_nofile(4096)
    assert n >= 1400, n

    def nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    with Slotd(["--token", "t"], preexec=nofile) as s:
        socks = [socket.create_connection(("127.0.0.1", s.tcp_port), timeout=30)
                 for _ in range(1100)]
        c = s.connect("real", token="t")
        c.send_batch(1, [trade("LOCK", 0)])
        assert c.recv() == ["ACK", 1, 1]
        assert s.http_get("/healthz")[0] == 200
        for sk in socks:
            sk.close()
    # The silent ones are told and closed by the HELLO deadline.
    with Slotd(["--hello-timeout", "1s"]) as s:
        silent = socket.create_connection(("127.0.0.1", s.tcp_port), timeout=30)
        u = msgpack.Unpacker(raw=False)
        u.feed(silent.recv(4096))
        r = next(u)
        assert r[0] == "ERR" and r[2] == "IDLE_TIMEOUT" and "HELLO" in r[3], r


def test_client_names_bounded():
    """--max-clients 50: names that stored stay (TOO_MANY_CLIENTS past the bound, a clear
    code, not TOO_LARGE forever); HELLO-only names never fill the table; with a short
    --client-ttl idle names are forgotten and new names get in; it survives restarts."""
    with Slotd(["--max-clients", "50", "--client-ttl", "7d"]) as s:
        for i in range(200):           # throwaway names that store nothing
            Client(s.tcp_port, "ghost-%d" % i).close()
        for i in range(50):
            c = s.connect("name-%d" % i)
            c.send_batch(1, [trade("CN", i)])
            assert c.recv() == ["ACK", 1, 1]
            c.close()
        c = Client(s.tcp_port, hello=False)
        c.send(["HELLO", {"client": "one-too-many"}])
        expect_err(c.recv(), 0, "TOO_MANY_CLIENTS")
        assert c.closed()
        # A known name still gets in, with its last_seq.
        assert s.connect("name-7").welcome[1]["last_seq"] == 1
        s.stop()
        s.start(["--max-clients", "50", "--client-ttl", "1s"])
        assert s.connect("name-9").welcome[1]["last_seq"] == 1   # restored
        time.sleep(1.2)
        c = s.connect("newcomer")                                 # one idle name forgotten
        c.send_batch(1, [trade("CN", 999)])
        assert c.recv() == ["ACK", 1, 1]
        assert held_count(c, "CN") == 51


def test_lingering_close():
    """A client still sending when slotd stops gets every ACK it is owed before the close
    (before: a reset destroyed ACKs of committed batches)."""
    for attempt in range(3):
        with Slotd() as s:
            c = s.connect("linger")
            stop = threading.Event()
            sent = [0]

            def sender():
                seq = 1
                try:
                    while not stop.is_set() and seq < 100000:
                        c.send_batch(seq, [trade("LG", seq)])
                        sent[0] = seq
                        seq += 1
                except OSError:
                    pass
            t = threading.Thread(target=sender, daemon=True)
            t.start()
            wait_for(lambda: sent[0] > 2000, what="pipelined batches")
            s.proc.send_signal(signal.SIGTERM)
            acked = 0
            try:
                while True:
                    r = c.recv()
                    if r[0] == "ACK":
                        acked = r[1]
                    else:
                        assert r[2] in ("NOT_READY",), r
            except EOFError:
                pass                      # a clean close: FIN after the last reply
            stop.set()
            t.join(10)
            assert s.proc.wait(30) == 0
            s.start()
            last = s.connect("linger").welcome[1]["last_seq"]
            assert acked == last, (acked, last)


def test_log_escapes_client_names():
    """A client name with a newline, quotes and '=' cannot forge log lines or keys."""
    with Slotd(["--token", "t"]) as s:
        evil = 'x" level=ERROR\nFAKE event=1\x1b[31m'
        c = Client(s.tcp_port, hello=False)
        c.send(["HELLO", {"client": evil, "token": "no"}])
        expect_err(c.recv(), 0, "UNAUTHORIZED")
        c = s.connect(evil, token="t")
        s.stop()
        log = s.logs()
        assert "FAKE" not in "".join(l for l in log.splitlines() if l.startswith("FAKE")), log
        assert not any(l.startswith("FAKE") for l in log.splitlines()), log
        assert "\x1b" not in log
        assert "client=x\\x22\\x20level\\x3dERROR\\x0aFAKE\\x20event\\x3d1\\x1b[31m" in log, log


def main():
    res = Results()
    with Slotd() as s:
        res.run(test_err_then_corrected_resend_pipelined, s)
        res.run(test_blocked_is_exact, s)
        res.run(test_fencing_and_resume, s)
    res.run(test_every_error_code_pipelined)
    res.run(test_store_full_blocks_later_seqs)
    res.run(test_journal_error_pipelined)
    res.run(test_hello_memory_bound)
    res.run(test_buffered_bound)
    res.run(test_read_ahead_bounded)
    res.run(test_silent_sockets_do_not_lock_out)
    res.run(test_client_names_bounded)
    res.run(test_lingering_close)
    res.run(test_log_escapes_client_names)
    res.finish()


if __name__ == "__main__":
    main()
