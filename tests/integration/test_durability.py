"""Durability end to end: SIGKILL at random moments, torn and corrupt
journals, a full disk — against a real slotd and its real journal files.

    CRASH_ROUNDS=50 /usr/bin/python3 tests/integration/test_durability.py

runs the long crash loop (CI runs 6 rounds).
"""
import glob
import os
import random
import resource
import sys
import threading
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(__file__))
from harness import Results, Slotd, nearly_full_disk, send_batches, stream_until_dead  # noqa: E402

TS0 = 1767225600 * 10 ** 9
SYMS = ["CRA", "CRB", "CRC", "CRD"]
BATCH = 200


def batch_for(seq):
    """Deterministic batch `seq`: ids seq*BATCH .. seq*BATCH+BATCH-1."""
    rng = random.Random(seq)
    out = []
    for i in range(BATCH):
        tid = seq * BATCH + i
        out.append({"sym": SYMS[tid % len(SYMS)], "ts": TS0 + tid * 1000,
                    "px": "%d.%02d" % (rng.randint(90, 110), rng.randint(0, 99)),
                    "qty": rng.randint(1, 1000), "side": "B" if tid & 1 else "S", "id": tid})
    return out


def all_trades(c, sym):
    """Every stored trade of sym, paged through the cursor."""
    out, cursor = [], 0
    while True:
        r = c.query(1, {"op": "trades", "sym": sym, "limit": 10000, "cursor": cursor})
        assert r[0] == "R", r
        out += r[2]["trades"]
        cursor = r[2]["next_cursor"]
        if cursor is None:
            return out


def check_exact(s, last_seq):
    """The store holds each trade of batches 1..last_seq exactly once."""
    c = s.connect("checker-%d" % random.randrange(1 << 30))
    expected = {}
    for seq in range(1, last_seq + 1):
        for t in batch_for(seq):
            expected[t["id"]] = t
    seen = {}
    for sym in SYMS:
        for t in all_trades(c, sym):
            assert t["id"] not in seen, "trade %d stored twice" % t["id"]
            seen[t["id"]] = t
            e = expected.get(t["id"])
            assert e is not None, "trade %d was never acknowledged nor sent" % t["id"]
            assert e["sym"] == sym and t["ts"] == e["ts"], (t, e)
            assert Decimal(t["px_s"]) == Decimal(e["px"]) and Decimal(t["qty_s"]) == e["qty"], (t, e)
    missing = set(expected) - set(seen)
    assert not missing, "%d acknowledged trades lost, e.g. %s" % (len(missing), sorted(missing)[:5])
    st = c.query(2, {"op": "stats"})[2]
    assert st["trades"] == len(expected), (st["trades"], len(expected))


def test_crash_loop():
    rounds = int(os.environ.get("CRASH_ROUNDS", "6"))
    rng = random.Random(int(os.environ.get("CRASH_SEED", "42")))
    with Slotd() as s:
        last = 0
        for rnd in range(rounds):
            acked = []
            t = threading.Thread(target=stream_until_dead,
                                 args=(s, "crasher", last + 1, acked, batch_for, BATCH))
            t.start()
            time.sleep(rng.uniform(0.05, 0.6))
            s.kill()
            t.join(30)
            s.start()
            c = s.connect("crasher")
            resumed = c.welcome[1]["last_seq"]
            c.close()
            # Everything acknowledged survived; nothing beyond what was sent exists.
            top_acked = acked[-1] if acked else last
            assert resumed >= top_acked, (rnd, resumed, top_acked)
            last = resumed
        check_exact(s, last)
        assert last > 0


def journal_files(d):
    return sorted(glob.glob(os.path.join(d, "journal-*.log")))


def ingest(s, name, first, n):
    send_batches(s, name, first, n, batch_for)


def test_torn_tail():
    with Slotd() as s:
        ingest(s, "crasher", 1, 10)
        s.stop()
        seg = [f for f in journal_files(s.data_dir) if os.path.getsize(f) > 0][-1]
        size = os.path.getsize(seg)
        with open(seg, "r+b") as f:
            f.truncate(size - 7)  # inside the last record
        s.start()
        assert "torn tail" in s.logs(), s.logs()
        c = s.connect("crasher")
        assert c.welcome[1]["last_seq"] == 9, c.welcome
        c.close()
        check_exact(s, 9)
        # And the journal keeps working after the repair.
        ingest(s, "crasher", 10, 2)
        s.restart()
        check_exact(s, 11)


def test_corrupt_middle():
    with Slotd() as s:
        ingest(s, "crasher", 1, 10)
        s.stop()
        seg = [f for f in journal_files(s.data_dir) if os.path.getsize(f) > 0][-1]
        with open(seg, "r+b") as f:
            f.seek(os.path.getsize(seg) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0xFF]))
        rc = s.start(expect_exit=True)
        assert rc == 1, rc
        assert "replay_failed" in s.logs() and "offset" in s.logs(), s.logs()
        s.start(["--salvage"])
        assert "skipped" in s.logs(), s.logs()
        c = s.connect("crasher")
        st = c.query(1, {"op": "stats"})[2]
        assert st["trades"] == 9 * BATCH, st  # exactly the one damaged batch is gone


def fill_until_journal_error(c, first):
    """Stream until a batch fails; return (failed seq, the ERR reply)."""
    seq = first
    while seq < first + 5000:
        c.send_batch(seq, batch_for(seq))
        r = c.recv()
        if r[0] == "ERR":
            return seq, r
        assert r == ["ACK", seq, BATCH], r
        seq += 1
    raise AssertionError("the journal never failed")


def test_file_size_limit():
    """RLIMIT_FSIZE: writes fail with EFBIG; ERR JOURNAL, nothing stored, no crash."""
    limit = 1 << 20

    def cap_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    with Slotd(preexec=cap_file_size) as s:
        c = s.connect("filler")
        seq, r = fill_until_journal_error(c, 1)
        assert r[1] == seq and r[2] == "JOURNAL", r
        st = c.query(1, {"op": "stats"})[2]
        assert st["trades"] == (seq - 1) * BATCH, st
        c.send_batch(seq, batch_for(seq))  # still failing, still answered
        assert c.recv()[2] == "JOURNAL"
        assert s.http_get("/healthz")[0] == 200
        c.close()
        assert s.stop() == 0
        s.preexec = None
        s.start()
        check_exact(s, seq - 1)


def test_disk_full_recovers():
    """A full file system (a small tmpfs): ERR JOURNAL, then ACKs once space returns."""
    with nearly_full_disk() as disk:
        if disk is None:
            return
        data, filler = disk
        with Slotd(data_dir=data) as s:
            c = s.connect("filler")
            seq, r = fill_until_journal_error(c, 1)
            assert r[2] == "JOURNAL" and "space" in r[3].lower(), r
            assert c.query(1, {"op": "stats"})[2]["trades"] == (seq - 1) * BATCH
            os.unlink(filler)  # space returns
            c.send_batch(seq, batch_for(seq))
            assert c.recv() == ["ACK", seq, BATCH]
            c.close()
            s.restart()
            check_exact(s, seq)


def main():
    res = Results()
    res.run(test_crash_loop)
    res.run(test_torn_tail)
    res.run(test_corrupt_middle)
    res.run(test_file_size_limit)
    res.run(test_disk_full_recovers)
    res.finish()


if __name__ == "__main__":
    main()
