"""Start-up and recovery never lose or refuse what was acknowledged, against
a real slotd and its files: a journal segment missing or emptied (in the
middle, or the oldest without a checkpoint) and a missing snapshot refuse
start-up naming the file; --retention replays a journal larger than
--max-memory; a lower --max-batch / --max-message or dropping
--ignore-unknown-fields still replays what was acknowledged, and a lower
--max-symbols / --max-memory refuses naming the flag and the value needed
(which then works); --max-message cannot exceed what the journal can hold.

    /usr/bin/python3 tests/integration/test_recovery.py [test_name ...]
"""
import glob
import os
import random
import re
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Results, Slotd, random_decimal, send_batches  # noqa: E402

# An hour ago, so no wall-clock bound (--max-future) ever refuses them.
TS0 = (int(time.time()) - 3600) * 10 ** 9
SYMS = ["RCA", "RCB", "RCC", "RCD"]


def trades(seq, n, step=1000, syms=SYMS):
    """Deterministic batch `seq` of n trades in array form; ids seq*n+i,
    ts increasing with the id (step ns apart)."""
    out = []
    for i in range(n):
        tid = seq * n + i
        out.append([syms[tid % len(syms)], TS0 + tid * step,
                    "%d.%02d" % (90 + tid % 20, tid % 100), 1 + tid % 7, "B" if tid & 1 else "S",
                    tid])
    return out


def noisy_trades(seq, n, syms):
    """Batch `seq` of n trades whose prices, quantities and ids are random
    (8 decimals, 64 bits): pages that compact little."""
    rng = random.Random(seq)
    return [[syms[i % len(syms)], TS0 + (seq * n + i) * 1000,
             random_decimal(rng),
             random_decimal(rng),
             "B", rng.getrandbits(64)] for i in range(n)]


send = send_batches   # through the official Python sender


def wait_trades_at_most(s, n, timeout=60):
    """Until the store holds at most n trades (retention runs on a timer)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if s.http_json("/stats")[1]["trades"] <= n:
            return
        time.sleep(0.1)
    raise AssertionError("retention never got the store below %d trades: %s"
                         % (n, s.http_json("/stats")[1]["retention"]))


def summary(s, clients, syms=SYMS):
    """What a restart must reproduce exactly: every symbol's aggregates, the
    trade count and each client's last_seq."""
    c = s.connect("checker")
    out = {"stats": c.query(1, {"op": "stats"})[2]["trades"]}
    for sym in syms:
        r = c.query(2, {"op": "symbol", "sym": sym})
        out[sym] = r[2]
        if r[0] == "R":
            del out[sym]["pages"]  # layout, not data: a snapshot packs pages fuller
    c.close()
    for name in clients:
        cl = s.connect(name)
        out["last_seq:" + name] = cl.welcome[1]["last_seq"]
        cl.close()
    return out


def segments(s):
    return sorted(glob.glob(os.path.join(s.data_dir, "journal-*.log")))


def seg_path(s, no):
    return os.path.join(s.data_dir, "journal-%016x.log" % no)


def snap_path(s, no):
    return os.path.join(s.data_dir, "snapshot-%016x.snap" % no)


def seg_no(path):
    return int(os.path.basename(path).split("-")[1].split(".")[0], 16)


def refused(s, args, *needles):
    """Start must fail (exit 1) with a log naming every needle; returns the log."""
    rc = s.start(args, expect_exit=True)
    logs = s.logs()
    assert rc == 1, (rc, logs)
    for n in needles:
        assert n in logs, (n, logs)
    assert "Operation not permitted" not in logs, logs
    return logs


SEG = ["--journal-segment", "1M", "--checkpoint-bytes", "0"]


def fill_segments(s, n=4):
    """Ingest until the journal has at least n non-empty segments."""
    seq = 1
    while len([p for p in segments(s) if os.path.getsize(p) > 0]) < n:
        send(s, "feed", seq, 10, lambda q: trades(q, 2000))
        seq += 10
    return seq - 1


def test_segment_missing_or_emptied():
    with Slotd(SEG) as s:
        last = fill_segments(s)
        want = summary(s, ["feed"])
        assert want["last_seq:feed"] == last
        s.stop()
        seg2 = seg_path(s, 2)
        aside = os.path.join(s.data_dir, "aside")
        shutil.move(seg2, aside)
        logs = refused(s, SEG, "replay_failed", "journal-0000000000000002.log missing",
                       "restore")
        assert "err=segment_missing" in logs, logs
        shutil.copy(aside, seg2)          # put back: nothing was touched meanwhile
        s.start(SEG)
        assert summary(s, ["feed"]) == want
        s.stop()
        open(seg2, "w").close()           # emptied
        refused(s, SEG, "journal-0000000000000002.log is empty")
        shutil.copy(aside, seg2)
        s.start(SEG)
        assert summary(s, ["feed"]) == want
        s.stop()
        # The oldest segment, and no checkpoint covering it.
        seg1 = seg_path(s, 1)
        shutil.move(seg1, aside + "1")
        refused(s, SEG, "start_refused", "journal-0000000000000001.log")
        shutil.move(aside + "1", seg1)
        # --salvage accepts the loss, and says so.
        os.unlink(seg2)
        s.start(SEG + ["--salvage"])
        assert "replay_repaired" in s.logs() and "journal-0000000000000002.log" in s.logs()
        got = summary(s, ["feed"])
        assert 0 < got["stats"] < want["stats"], (got, want)


def test_snapshot_missing():
    args = ["--journal-segment", "1M", "--checkpoint-on-exit"]
    with Slotd(args) as s:
        send(s, "feed", 1, 30, lambda q: trades(q, 2000))
        want = summary(s, ["feed"])
        assert s.stop() == 0
        snaps = glob.glob(os.path.join(s.data_dir, "snapshot-*.snap"))
        assert len(snaps) == 1, snaps
        n = seg_no(snaps[0])
        assert n >= 2 and [seg_no(p) for p in segments(s)] == [n + 1], (n, segments(s))
        aside = os.path.join(s.data_dir, "aside")
        shutil.move(snaps[0], aside)
        logs = refused(s, args, "start_refused", "snapshot-%016x.snap" % n)
        assert "ready records=" not in logs, logs
        shutil.move(aside, snaps[0])
        # The snapshot, but not the segment its checkpoint left behind.
        shutil.move(seg_path(s, n + 1), aside)
        refused(s, args, "journal-%016x.log" % (n + 1))
        shutil.move(aside, seg_path(s, n + 1))
        s.start(args)
        got = summary(s, ["feed"])
        assert got == want, (got, want)
        assert s.stop() == 0
        # --salvage starts without it, from what the journal holds, and says so.
        for p in glob.glob(os.path.join(s.data_dir, "snapshot-*.snap")):
            os.unlink(p)
        s.start(["--salvage"])
        assert "start_salvaged" in s.logs() and "start_refused" not in s.logs(), s.logs()
        assert summary(s, ["feed"])["last_seq:feed"] == 0


def test_retention_replays_more_than_max_memory():
    """Live, retention keeps the store small under --max-memory 16M (ingest
    waits for it every 150k trades); the journal holds far more than 16 MiB
    of trades. Restart must work, and keep what retention keeps."""
    step = 10 ** 6  # 1 ms of exchange time per trade
    n, per = 120, 10000  # 1.2M trades, 1200 s; the store could hold ~450k
    args = ["--max-memory", "16M", "--retention", "60s", "--checkpoint-bytes", "0",
            "--journal-segment", "16M"]
    with Slotd(args) as s:
        for first in range(1, n + 1, 15):
            send(s, "feed", first, 15, lambda q: trades(q, per, step), window=2)
            wait_trades_at_most(s, 80000)  # 60 s of trades, plus what shares a page
        assert s.http_json("/stats")[1]["errors"]["STORE_FULL"] == 0
        s.stop()
        s.start(args)
        got = summary(s, ["feed"])
        assert got["last_seq:feed"] == n, got
        newest = TS0 + ((n + 1) * per - 1) * step
        cutoff = newest - 60 * 10 ** 9
        # Every trade at or after the cutoff is there (older ones may share a page).
        c = s.connect("checker")
        for sym in SYMS:
            count, cursor = 0, 0
            while cursor is not None:
                r = c.query(1, {"op": "trades", "sym": sym, "from": cutoff, "limit": 10000,
                                "cursor": cursor})
                assert r[0] == "R", r
                count += len(r[2]["trades"])
                cursor = r[2]["next_cursor"]
            want = len([t for t in range(per, (n + 1) * per)
                        if t % len(SYMS) == SYMS.index(sym) and TS0 + t * step >= cutoff])
            assert count == want, (sym, count, want)
        c.close()


def test_lower_limits_replay():
    """Acknowledged under --ignore-unknown-fields and large batches; restart
    with a lower --max-batch / --max-message and without
    --ignore-unknown-fields replays every one of them."""
    args = ["--ignore-unknown-fields", "--max-batch", "50000"]
    with Slotd(args) as s:
        c = s.connect("feed")
        extra = [{"sym": "RCA", "ts": TS0 + i, "px": "10.5", "qty": 3, "venue": "XNAS"}
                 for i in range(500)]
        c.send_batch(1, extra)
        assert c.recv() == ["ACK", 1, 500]
        c.close()
        send(s, "feed", 2, 3, lambda q: trades(q, 40000))
        want = summary(s, ["feed"])
        s.stop()
        s.start(["--max-batch", "100", "--max-message", "8K"])
        assert summary(s, ["feed"]) == want
        # The live limits are the new ones (a refused seq may be reused).
        c = s.connect("feed")
        c.send_batch(5, trades(5, 101))
        assert c.recv()[2] == "TOO_LARGE"
        c.send_batch(5, extra[:1])
        assert c.recv()[2] == "UNKNOWN_FIELD"
        c.close()


def test_lower_symbols_or_memory_names_the_flag():
    """A lower --max-symbols or --max-memory cannot hold what was
    acknowledged: refused naming the flag and the value needed, which works."""
    syms = ["S%02d" % i for i in range(12)]
    with Slotd(["--checkpoint-bytes", "0"]) as s:
        # 800k trades of random values: ~25 bytes each even in compact pages.
        send(s, "feed", 1, 40, lambda q: noisy_trades(q, 20000, syms))
        want = summary(s, ["feed"], syms)
        s.stop()
        logs = refused(s, ["--max-symbols", "5"], "replay_failed", "--max-symbols")
        assert "salvage" not in logs, logs
        m = re.search(r"--max-symbols (\d+)", logs.split("replay_failed")[1])
        assert m and int(m.group(1)) == 12, logs
        s.start(["--max-symbols", m.group(1)])
        assert summary(s, ["feed"], syms) == want
        s.stop()
        logs = refused(s, ["--max-memory", "16M"], "replay_failed", "--max-memory")
        assert "salvage" not in logs, logs
        m = re.search(r"--max-memory (\d+)M", logs.split("replay_failed")[1])
        assert m and int(m.group(1)) > 16, logs
        s.start(["--max-memory", m.group(1) + "M"])
        assert summary(s, ["feed"], syms) == want


def test_lower_symbols_after_snapshot():
    """The same with a snapshot (3 symbols) and the journal after it (9 more):
    the value named counts both; a snapshot alone too large names it too."""
    few, more = ["F%d" % i for i in range(3)], ["M%d" % i for i in range(9)]
    args = ["--checkpoint-on-exit", "--checkpoint-bytes", "0"]
    with Slotd(args) as s:
        send(s, "feed", 1, 3, lambda q: trades(q, 1000, syms=few))
        assert s.stop() == 0
        s.start(["--checkpoint-bytes", "0"])
        send(s, "feed", 4, 3, lambda q: trades(q, 1000, syms=more))
        want = summary(s, ["feed"], few + more)
        s.stop()
        logs = refused(s, ["--max-symbols", "5"], "replay_failed", "--max-symbols 12 or more")
        s.start(["--max-symbols", "12"])
        assert summary(s, ["feed"], few + more) == want
        s.stop()
        s.start(args)
        assert s.stop() == 0                 # everything in the snapshot now
        logs = refused(s, ["--max-symbols", "5"], "start_refused", "--max-symbols 12 or more")
        assert "snapshot_invalid" in logs, logs


def test_max_message_within_journal():
    """--max-message above the journal's largest record is refused at start;
    a message of the largest size is acknowledged and replayed."""
    s = Slotd()
    try:
        rc = s.start(["--max-message", "65M"], expect_exit=True)
        logs = s.logs()
        assert rc == 2, (rc, logs)
        assert "--max-message" in logs and "67108864" in logs, logs
        big = ["--max-message", "64M", "--ignore-unknown-fields"]
        s.start(big)
        c = s.connect("feed")
        t = {"sym": "RCA", "ts": TS0, "px": "1", "qty": 1, "pad": "x" * ((64 << 20) - 200)}
        c.send_batch(1, [t])
        assert c.recv() == ["ACK", 1, 1]
        c.close()
        s.stop()
        s.start(["--max-message", "1K"])
        assert summary(s, ["feed"], ["RCA"])["last_seq:feed"] == 1
    finally:
        s.__exit__(None, None, None)


TESTS = [test_segment_missing_or_emptied, test_snapshot_missing,
         test_retention_replays_more_than_max_memory, test_lower_limits_replay,
         test_lower_symbols_or_memory_names_the_flag, test_lower_symbols_after_snapshot,
         test_max_message_within_journal]


def main():
    res = Results()
    only = set(sys.argv[1:])
    for t in TESTS:
        if not only or t.__name__ in only:
            res.run(t)
    res.finish()


if __name__ == "__main__":
    main()
