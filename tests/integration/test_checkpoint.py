"""Checkpoints and retention end to end, against a real slotd and its files:
snapshots appear and the journal segments they cover go; SIGKILL (also
mid-checkpoint) and restart give exactly the acknowledged trades, the same
aggregates and each client's last_seq; a damaged newest snapshot falls back
to an older one or to a full replay, or start-up refuses clearly when data
would be lost; --retention drops old trades and queries follow;
--checkpoint-on-exit leaves nothing to replay; --plain-pages and compact
pages take over each other's files.

    CKPT_ROUNDS=20 /usr/bin/python3 tests/integration/test_checkpoint.py
"""
import glob
import os
import random
import sys
import threading
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(__file__))
from harness import Results, Slotd, random_decimal, send_batches, stream_until_dead, wait_for  # noqa: E402

TS0 = 1767225600 * 10 ** 9
SYMS = ["CKA", "CKB", "CKC", "CKD"]
BATCH = 200
CLIENTS = ["main", "early", "late"]


def batch(client, seq, step=1000):
    """Deterministic batch `seq` of a client: ids unique across clients,
    ts increasing with seq (step ns apart) for every client."""
    c = CLIENTS.index(client)
    rng = random.Random(c * 1000003 + seq)
    out = []
    for i in range(BATCH):
        n = seq * BATCH + i
        out.append({"sym": SYMS[(n + c) % len(SYMS)], "ts": TS0 + n * step + c,
                    "px": "%d.%02d" % (rng.randint(90, 110), rng.randint(0, 99)),
                    "qty": rng.randint(1, 1000), "side": "B" if n & 1 else "S",
                    "id": c * 10 ** 9 + n})
    return out


def expected_trades(last, step=1000):
    exp = {}
    for client, top in last.items():
        for seq in range(1, top + 1):
            for t in batch(client, seq, step):
                exp[t["id"]] = t
    return exp


def all_trades(c, sym):
    out, cursor = [], 0
    while True:
        r = c.query(1, {"op": "trades", "sym": sym, "limit": 10000, "cursor": cursor})
        if r[0] == "ERR" and r[2] == "NOT_FOUND":
            return out
        assert r[0] == "R", r
        out += r[2]["trades"]
        cursor = r[2]["next_cursor"]
        if cursor is None:
            return out


def check_aggregates(c, sym, trades):
    """The symbol's aggregates are those of exactly these trades (in order)."""
    r = c.query(2, {"op": "symbol", "sym": sym})
    if not trades:
        assert r[0] == "ERR" and r[2] == "NOT_FOUND", r
        return
    a = r[2]
    px = [Decimal(t["px_s"]) for t in trades]
    qty = [Decimal(t["qty_s"]) for t in trades]
    assert a["count"] == len(trades), (a, len(trades))
    assert Decimal(a["volume_s"]) == sum(qty), a
    assert Decimal(a["notional_s"]) == sum(p * q for p, q in zip(px, qty)), a
    assert Decimal(a["high_s"]) == max(px) and Decimal(a["low_s"]) == min(px), a
    first = min(range(len(trades)), key=lambda i: (trades[i]["ts"], i))
    last = max(range(len(trades)), key=lambda i: (trades[i]["ts"], i))
    assert a["first_ts"] == trades[first]["ts"] and Decimal(a["open_s"]) == px[first], a
    assert a["last_ts"] == trades[last]["ts"] and Decimal(a["close_s"]) == px[last], a


def stored(s):
    """{id: trade} of everything stored, checking ids are unique and the
    aggregates of every symbol."""
    c = s.connect("checker")
    seen = {}
    for sym in SYMS:
        trades = all_trades(c, sym)
        check_aggregates(c, sym, trades)
        for t in trades:
            assert t["id"] not in seen, "trade %d stored twice" % t["id"]
            t["sym"] = sym
            seen[t["id"]] = t
    st = c.query(3, {"op": "stats"})[2]
    assert st["trades"] == len(seen), (st["trades"], len(seen))
    c.close()
    return seen


def check_exact(s, last, step=1000):
    exp = expected_trades(last, step)
    seen = stored(s)
    for tid, t in seen.items():
        e = exp.get(tid)
        assert e is not None, "trade %d was never sent" % tid
        assert e["sym"] == t["sym"] and e["ts"] == t["ts"], (t, e)
        assert Decimal(t["px_s"]) == Decimal(e["px"]) and Decimal(t["qty_s"]) == e["qty"], (t, e)
    missing = set(exp) - set(seen)
    assert not missing, "%d acknowledged trades lost, e.g. %s" % (len(missing), sorted(missing)[:5])


def send(s, client, first, n, step=1000, window=8):
    send_batches(s, client, first, n, lambda seq: batch(client, seq, step), window)


def last_seq(s, client):
    c = s.connect(client)
    n = c.welcome[1]["last_seq"]
    c.close()
    return n


def files(s, pattern):
    return sorted(glob.glob(os.path.join(s.data_dir, pattern)))


def seg_no(path):
    return int(os.path.basename(path).split("-")[1].split(".")[0], 16)


def ckpt(s):
    return s.http_json("/stats")[1]["checkpoint"]


def wait_checkpoints(s, n, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        ck = ckpt(s)
        if ck["checkpoints"] >= n and not ck["in_progress"]:
            return ck
        time.sleep(0.05)
    raise AssertionError("no %d checkpoints: %s" % (n, ckpt(s)))


def settle(s, quiet=0.8, timeout=60):
    """Once ingest has stopped: wait until no checkpoint runs and none has
    started for `quiet` seconds (several trigger ticks), so files are still."""
    deadline = time.time() + timeout
    last, since = None, time.time()
    while time.time() < deadline:
        ck = ckpt(s)
        key = (ck["checkpoints"], ck["failures"], ck["in_progress"])
        if key != last:
            last, since = key, time.time()
        elif not ck["in_progress"] and time.time() - since >= quiet:
            return ck
        time.sleep(0.05)
    raise AssertionError("checkpoints never settled: %s" % ckpt(s))


def check_files(s, ck):
    """One snapshot (the newest), no temp file, and only segments after it."""
    snaps = files(s, "snapshot-*.snap")
    assert [seg_no(p) for p in snaps] == [ck["segment"]], (snaps, ck)
    assert not files(s, "snapshot-*.tmp")
    segs = [seg_no(p) for p in files(s, "journal-*.log")]
    assert segs and min(segs) == ck["segment"] + 1, (segs, ck)


SMALL = ["--journal-segment", "1M", "--checkpoint-bytes", "1M"]


def test_checkpoint_and_restart():
    with Slotd(SMALL) as s:
        send(s, "early", 1, 40)          # only in segments a checkpoint removes
        send(s, "main", 1, 150)
        wait_checkpoints(s, 1)
        send(s, "main", 151, 150)
        wait_checkpoints(s, 2)
        ck = settle(s)
        assert ck["failures"] == 0 and ck["last_bytes"] > 0 and ck["segments_removed"] >= 1, ck
        check_files(s, ck)
        s.kill()
        s.start()
        assert "snapshot_loaded" in s.logs(), s.logs()
        doc = s.http_json("/stats")[1]
        assert doc["checkpoint"]["segment"] == ck["segment"] and doc["checkpoint"]["loaded_trades"] > 0
        assert doc["replay"]["records"] < 340, doc["replay"]  # only what came after
        assert last_seq(s, "early") == 40 and last_seq(s, "main") == 300
        check_exact(s, {"early": 40, "main": 300})
        # And it goes on: more data, another checkpoint, a clean restart.
        send(s, "late", 1, 150)
        wait_checkpoints(s, 1)
        s.restart()
        check_exact(s, {"early": 40, "main": 300, "late": 150})
        status, _, body = s.http_get("/metrics")
        text = body.decode()
        assert status == 200 and "slotd_checkpoints_total" in text and "slotd_checkpoint_seconds" in text


def test_crash_loop_with_checkpoints():
    """SIGKILL under a stream, checkpoints every ~256 KiB of journal. Rounds
    take turns: a kill at a random moment (before the round's first
    checkpoint, most likely), one as soon as a checkpoint is seen running
    (the child writing), one once a checkpoint has completed. The moments
    are chosen by what /stats shows, not by the clock, so a slow machine
    (TSan) still gets every kind."""
    rounds = int(os.environ.get("CKPT_ROUNDS", "6"))
    rng = random.Random(int(os.environ.get("CKPT_SEED", "7")))

    def running_or_done():
        ck = ckpt(s)
        return ck["in_progress"] or ck["checkpoints"] >= 1

    def done():
        ck = ckpt(s)
        return ck["checkpoints"] >= 1 and not ck["in_progress"]

    with Slotd(["--journal-segment", "1M", "--checkpoint-bytes", "256K"]) as s:
        last = 0
        for rnd in range(rounds):
            acked = []
            t = threading.Thread(target=stream_until_dead,
                                 args=(s, "main", last + 1, acked, lambda q: batch("main", q), BATCH))
            t.start()
            if rnd % 3 == 0:
                time.sleep(rng.uniform(0.2, 0.8))
            else:
                wait_for(running_or_done if rnd % 3 == 1 else done, timeout=120,
                         what="a checkpoint in round %d" % rnd)
            s.kill()
            t.join(30)
            s.start()
            resumed = last_seq(s, "main")
            assert resumed >= (acked[-1] if acked else last), (rnd, resumed, acked[-1:])
            last = resumed
        assert files(s, "snapshot-*.snap"), "no checkpoint in %d rounds" % rounds
        check_exact(s, {"main": last})


def corrupt(path, where=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(int(size * where))
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x5A]))


def test_damaged_snapshot():
    with Slotd(SMALL) as s:
        send(s, "main", 1, 150)
        wait_checkpoints(s, 1)
        s.stop()
        # More journal after the snapshot, no more checkpoints: segments N+1..
        s.start(["--journal-segment", "1M", "--checkpoint-bytes", "0"])
        send(s, "late", 1, 150)
        s.stop()
        snaps = files(s, "snapshot-*.snap")
        assert len(snaps) == 1, snaps
        n = seg_no(snaps[0])
        segs = [seg_no(p) for p in files(s, "journal-*.log")]
        assert min(segs) == n + 1 and max(segs) >= n + 2, (n, segs)
        good = os.path.join(s.data_dir, "snapshot-%016x.snap" % n)
        # A newer snapshot that is damaged: logged, and the older one used.
        bad = os.path.join(s.data_dir, "snapshot-%016x.snap" % (n + 1))
        with open(good, "rb") as f, open(bad, "wb") as g:
            g.write(f.read())
        corrupt(bad)
        s.start(SMALL[:2] + ["--checkpoint-bytes", "0"])
        logs = s.logs()
        assert "snapshot_invalid" in logs and "snapshot-%016x" % (n + 1) in logs, logs
        assert "snapshot_loaded file=%s" % good in logs, logs
        check_exact(s, {"main": 150, "late": 150})
        s.stop()
        # Truncated instead of flipped: the same.
        with open(good, "rb") as f, open(bad, "wb") as g:
            g.write(f.read()[:-100])
        s.start(SMALL[:2] + ["--checkpoint-bytes", "0"])
        assert "snapshot_loaded file=%s" % good in s.logs()
        s.stop()
        # Without the good one, the segments it covered are gone: refuse.
        os.unlink(good)
        rc = s.start(expect_exit=True)
        assert rc == 1, rc
        logs = s.logs()
        assert "start_refused" in logs and "would lose data" in logs, logs


def test_damaged_snapshot_full_replay():
    """The journal still starts at segment 1: a bad snapshot costs a full replay."""
    with Slotd() as s:
        send(s, "main", 1, 30)
        s.stop()
        with open(os.path.join(s.data_dir, "snapshot-%016x.snap" % 1), "wb") as f:
            f.write(b"SLOTSNAP" + os.urandom(500))
        s.start()
        logs = s.logs()
        assert "snapshot_invalid" in logs and "action=full_replay" in logs, logs
        check_exact(s, {"main": 30})


RET_STEP = 20 * 10 ** 6  # 20 ms of exchange time per trade: a batch spans 4 s


def test_retention():
    args = ["--retention", "30s", "--checkpoint-interval", "1s", "--checkpoint-bytes", "0",
            "--journal-segment", "1M"]
    with Slotd(args) as s:
        send(s, "main", 1, 30, step=RET_STEP)  # 120 s of trades
        deadline, ret, prev = time.time() + 30, None, None
        while time.time() < deadline:  # dropped, and no more to drop
            ret = s.http_json("/stats")[1]["retention"]
            if ret["dropped_trades"] and ret == prev:
                break
            prev = ret
            time.sleep(1.2)  # the retention timer ticks every second
        assert ret["horizon_seconds"] == 30 and ret["dropped_trades"] > 0, ret
        cutoff = ret["cutoff_ts"]
        newest = TS0 + (31 * BATCH - 1) * RET_STEP
        assert cutoff == newest - 30 * 10 ** 9, (cutoff, newest)
        exp = expected_trades({"main": 30}, RET_STEP)
        kept = stored(s)
        keep_ids = {i for i, t in exp.items() if t["ts"] >= cutoff}
        assert keep_ids <= set(kept), "trades at or after the cutoff were dropped"
        assert set(kept) <= set(exp)
        assert len(exp) - len(kept) == ret["dropped_trades"], (len(exp), len(kept), ret)
        # Whole pages: what went is old; little old stays (< a page per symbol).
        assert all(exp[i]["ts"] < cutoff for i in set(exp) - set(kept))
        old_left = len(set(kept) - keep_ids)
        assert old_left < 70 * len(SYMS), old_left
        # A checkpoint follows the drop (--checkpoint-interval: the store
        # changed) and holds only what is kept; then disk has only that.
        deadline = time.time() + 30
        while time.time() < deadline:
            ck = ckpt(s)
            if ck["last_trades"] == len(kept) and not ck["in_progress"]:
                break
            time.sleep(0.1)
        assert ck["last_trades"] == len(kept), (ck, len(kept))
        s.kill()
        s.start()
        after = stored(s)
        assert keep_ids <= set(after) <= set(kept), (len(after), len(kept))


def test_checkpoint_on_exit():
    with Slotd(["--checkpoint-on-exit", "--journal-segment", "1M"]) as s:
        send(s, "main", 1, 60)
        send(s, "early", 1, 20)
        assert s.stop() == 0
        snaps = files(s, "snapshot-*.snap")
        assert len(snaps) == 1, snaps
        n = seg_no(snaps[0])
        assert all(seg_no(p) > n for p in files(s, "journal-*.log"))
        assert all(os.path.getsize(p) == 0 for p in files(s, "journal-*.log"))
        s.start()
        doc = s.http_json("/stats")[1]
        assert doc["replay"]["records"] == 0 and doc["checkpoint"]["loaded_trades"] == 80 * BATCH
        assert last_seq(s, "main") == 60 and last_seq(s, "early") == 20
        check_exact(s, {"main": 60, "early": 20})
        # Nothing new: a second stop writes no new snapshot.
        assert s.stop() == 0
        assert files(s, "snapshot-*.snap") == snaps


def test_plain_pages_both_ways():
    """--plain-pages (every page wide) and the default (full pages
    re-encoded compact) take over each other's snapshot and journal:
    restarts that flip the flag, one of them after SIGKILL, hold exactly
    the acknowledged trades, and /stats counts the compact pages."""
    def compact_pages():
        return s.http_json("/stats")[1]["store"]["pages_compact"]

    with Slotd(["--checkpoint-on-exit"]) as s:
        send(s, "main", 1, 100)  # 5,000 trades a symbol: dozens of full pages each
        compacted = compact_pages()
        assert compacted > 0
        assert s.stop() == 0
        s.start(["--checkpoint-on-exit", "--plain-pages"])
        check_exact(s, {"main": 100})
        # The snapshot's compact pages load as they are; new full pages stay wide.
        assert compact_pages() == compacted
        send(s, "main", 101, 100)
        assert compact_pages() == compacted
        check_exact(s, {"main": 200})
        s.kill()  # the second 100 batches come back from the journal
        s.start([])
        check_exact(s, {"main": 200})
        assert compact_pages() > compacted
        s.stop()
        s.start(["--plain-pages"])
        check_exact(s, {"main": 200})


def test_child_error_reported_as_errno():
    """A checkpoint child failing with a system error logs that error, not a
    snapshot-format message: -ENOENT (2) once read as SNAPSHOT_EFORMAT (-2),
    -EINTR as "different record kinds", -EIO as "checksum mismatch". The
    temp file is a symlink into a missing directory, so the child's open()
    fails with ENOENT, every time."""
    with Slotd(["--checkpoint-bytes", "64K"]) as s:
        tmp = os.path.join(s.data_dir, "snapshot-%016x.tmp" % 1)
        os.symlink(os.path.join(s.data_dir, "missing", "x"), tmp)
        send(s, "main", 1, 20)
        wait_for_failure = time.time() + 60
        while ckpt(s)["failures"] < 1:
            assert time.time() < wait_for_failure, (ckpt(s), s.logs())
            time.sleep(0.05)
        logs = s.logs()
        assert 'checkpoint_failed segment=1 stage=open err="%s"' % os.strerror(2) in logs, logs
        assert "not a slotd snapshot" not in logs, logs
        assert not files(s, "snapshot-*.snap")


def test_large_snapshot_paced():
    """A snapshot of several pacing windows (checkpoint_file.c: every 8 MiB
    the child hands a window to writeback, waits for the one before and
    drops it from the cache): it is written whole and restores every trade
    and aggregate exactly."""
    # 1M trades with random 8-decimal prices and quantities and 64-bit ids:
    # compact pages keep ~22 bytes a trade, a ~21 MiB snapshot.
    n_batches, per = 200, 5000
    with Slotd(["--checkpoint-bytes", "8M", "--journal-segment", "4M"]) as s:
        c = s.connect("big")
        pending = []
        for seq in range(1, n_batches + 1):
            base, rng = (seq - 1) * per, random.Random(seq)
            c.send_batch(seq, [[SYMS[(base + i) % 4], TS0 + base + i,
                                random_decimal(rng),
                                random_decimal(rng),
                                "B", rng.getrandbits(64)]
                               for i in range(per)])
            pending.append(seq)
            if len(pending) == 8:
                assert c.recv() == ["ACK", pending.pop(0), per]
        for seq in pending:
            assert c.recv() == ["ACK", seq, per]
        c.close()
        ck = settle(s)
        assert ck["checkpoints"] >= 1 and ck["failures"] == 0, ck
        snap = files(s, "snapshot-*.snap")
        assert snap and os.path.getsize(snap[-1]) > 16 << 20, [(f, os.path.getsize(f)) for f in snap]  # two windows and more
        def aggregates():  # a restored store packs its pages anew: their count may differ
            return {sym: {k: v for k, v in s.connect().query(1, {"op": "symbol", "sym": sym})[2].items()
                          if k != "pages"} for sym in SYMS}
        before = aggregates()
        s.kill()
        s.start()
        doc = s.http_json("/stats")[1]
        assert doc["checkpoint"]["loaded_trades"] > 500000, doc["checkpoint"]
        after = aggregates()
        assert after == before, (before, after)
        assert sum(r["count"] for r in after.values()) == n_batches * per, after


def main():
    res = Results()
    res.run(test_checkpoint_and_restart)
    res.run(test_crash_loop_with_checkpoints)
    res.run(test_damaged_snapshot)
    res.run(test_damaged_snapshot_full_replay)
    res.run(test_retention)
    res.run(test_checkpoint_on_exit)
    res.run(test_plain_pages_both_ways)
    res.run(test_child_error_reported_as_errno)
    res.run(test_large_snapshot_paced)
    res.finish()


if __name__ == "__main__":
    main()
