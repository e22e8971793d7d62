"""The Python client's spool (proto/python/slotd/_spool.py), the file format
docs/clients.md fixes for both client libraries:

  - the bytes on disk are exactly the documented format (parsed here by hand)
  - ACKED records: acknowledged batches are not pending after a restart
  - a torn tail (half a record, a torn header, zeros, a bad checksum on the
    last record) is cut at the last whole record; a sender resends the rest
  - damage elsewhere refuses to open, naming the file and the offset
  - the lock: a second holder (same process or another) gets SpoolLocked
  - compaction: an all-acknowledged spool shrinks to its STATE, and a new
    sender continues its seqs and `sealed` (slotd stores what follows)
  - one spool, two libraries: a spool the Python sender left is finished by
    the C library (tests/client/client_drive) and the other way round
"""
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(HERE, "..", "..", "proto", "python")
sys.path.insert(0, PYDIR)
sys.path.insert(0, HERE)

import msgpack  # noqa: E402

import slotd  # noqa: E402
from harness import Results, Slotd  # noqa: E402
from slotd._spool import Spool  # noqa: E402

TS0 = 1767225600000000000
BUILD = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(HERE, "..", "..", "build")
DRIVE = os.path.join(BUILD, "tests", "client_drive")


def body(first, n, sym="SP"):
    return msgpack.packb([[sym, TS0 + i, "1.5", 1, "B", i] for i in range(first, first + n)])


def tmp_spool():
    d = tempfile.mkdtemp(prefix="slotd-spool-")
    return os.path.join(d, "feed.spool")


def records(path):
    """(offset, type, payload) of each record, parsed from the documented format."""
    data = open(path, "rb").read()
    assert data[:8] == b"SLOTDSP1", data[:8]
    out, off = [], 8
    while off < len(data):
        length, crc = struct.unpack_from("<II", data, off)
        rec = data[off + 8:off + 8 + length]
        assert len(rec) == length and zlib.crc32(rec) == crc, off
        out.append((off, rec[0], rec[1:]))
        off += 8 + length
    return out


def three_batches(path):
    sp = Spool(path)
    sp.append_batch(1, 3, 3, "", body(0, 3))
    sp.append_batch(2, 5, 2, "", body(3, 2))
    sp.append_batch(3, 9, 4, "", body(5, 4))
    sp.close()
    return [off for off, _, _ in records(path)]


def expect_spool_error(path, *words):
    try:
        Spool(path).close()
    except slotd.SpoolError as e:
        for w in (path,) + words:
            assert w in str(e), (w, str(e))
        return str(e)
    raise AssertionError("a damaged spool opened")


def test_format_on_disk():
    p = tmp_spool()
    sp = Spool(p)
    sp.append_batch(7, 3, 3, "", body(0, 3))
    sp.append_batch(8, 5, 2, "option_trade", b"\x92\x01\x02")
    sp.ack(7)
    sp.close()
    recs = records(p)
    assert [t for _, t, _ in recs] == [1, 1, 2], recs
    seq, sealed, n, klen = struct.unpack_from("<QQIB", recs[0][2])
    assert (seq, sealed, n, klen) == (7, 3, 3, 0) and recs[0][2][21:] == body(0, 3)
    seq, sealed, n, klen = struct.unpack_from("<QQIB", recs[1][2])
    assert (seq, sealed, n, klen) == (8, 5, 2, 12), (seq, sealed, n, klen)
    assert recs[1][2][21:33] == b"option_trade" and recs[1][2][33:] == b"\x92\x01\x02"
    assert recs[2][2] == struct.pack("<Q", 7)
    sp = Spool(p)
    try:
        assert (sp.history, sp.last_seq, sp.sealed, sp.acked) == (True, 8, 5, 7)
        assert [(b.seq, b.kind, b.body) for b in sp.pending] == [(8, "option_trade", b"\x92\x01\x02")]
    finally:
        sp.close()


def test_torn_tail_is_cut():
    for name, cut in (("half a record", lambda size, offs: size - 5),
                      ("a torn header", lambda size, offs: offs[2] + 4)):
        p = tmp_spool()
        offs = three_batches(p)
        size = os.path.getsize(p)
        with open(p, "r+b") as f:
            f.truncate(cut(size, offs))
        sp = Spool(p)
        try:
            assert [b.seq for b in sp.pending] == [1, 2] and sp.sealed == 5, name
            assert os.path.getsize(p) == offs[2] == sp.size, name
        finally:
            sp.close()
    # zeros a crash left after the last record
    p = tmp_spool()
    offs = three_batches(p)
    size = os.path.getsize(p)
    with open(p, "ab") as f:
        f.write(b"\0" * 100)
    sp = Spool(p)
    assert [b.seq for b in sp.pending] == [1, 2, 3] and os.path.getsize(p) == size
    sp.close()
    # the last record whole but with a bad checksum: torn as well
    with open(p, "r+b") as f:
        f.seek(size - 1)
        last = f.read(1)
        f.seek(size - 1)
        f.write(bytes([last[0] ^ 0xFF]))
    sp = Spool(p)
    assert [b.seq for b in sp.pending] == [1, 2] and os.path.getsize(p) == offs[2]
    sp.close()


def test_damage_is_refused_with_offset():
    p = tmp_spool()
    offs = three_batches(p)
    with open(p, "r+b") as f:          # a flipped bit in the first record
        f.seek(offs[0] + 20)
        b = f.read(1)
        f.seek(offs[0] + 20)
        f.write(bytes([b[0] ^ 1]))
    before = open(p, "rb").read()
    expect_spool_error(p, "bad checksum", "offset %d" % offs[0])
    assert open(p, "rb").read() == before, "a refused spool was modified"
    p = tmp_spool()
    offs = three_batches(p)
    with open(p, "r+b") as f:
        f.write(b"SLOTDSP9")
    expect_spool_error(p, "not a spool", "offset 0")
    p = tmp_spool()                    # a whole record of an unknown type, mid-file
    three_batches(p)
    data = open(p, "rb").read()
    rec = bytes([9]) + b"x" * 4
    junk = struct.pack("<II", len(rec), zlib.crc32(rec)) + rec
    with open(p, "wb") as f:
        f.write(data[:8] + junk + data[8:])
    expect_spool_error(p, "unknown record (type 9", "offset 8")
    p = tmp_spool()                    # a zero length followed by data
    offs = three_batches(p)
    with open(p, "r+b") as f:
        f.seek(offs[1])
        f.write(b"\0\0\0\0")
    expect_spool_error(p, "length 0", "offset %d" % offs[1])


def test_lock():
    p = tmp_spool()
    held = Spool(p)
    try:
        for open_again in (lambda: Spool(p), lambda: slotd.Sender(port=1, client="x", spool=p)):
            try:
                open_again().close()
                raise AssertionError("a held spool opened twice")
            except slotd.SpoolLocked as e:
                assert p in str(e) and "locked by another sender" in str(e), str(e)
    finally:
        held.close()
    # another process holding it
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from slotd._spool import Spool; "
            "s = Spool(sys.argv[2]); print('held', flush=True); sys.stdin.read()")
    child = subprocess.Popen([sys.executable, "-c", code, PYDIR, p], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        try:
            Spool(p).close()
            raise AssertionError("a spool held by another process opened")
        except slotd.SpoolLocked:
            pass
    finally:
        child.stdin.close()
        child.wait(30)
    Spool(p).close()                   # released with the process


def test_sender_resends_whole_batches_of_torn_spool():
    p = tmp_spool()
    offs = three_batches(p)
    with open(p, "r+b") as f:
        f.truncate(offs[2] + 30)       # batch 3 torn: it was never sent
    with Slotd() as s:
        with slotd.Sender(port=s.tcp_port, client="torn", spool=p) as snd:
            assert snd.sealed == 5 and snd.pending == 2, (snd.sealed, snd.pending)
            # the application resumes its source at `sealed`: trades 5..8
            for i in range(snd.sealed, 9):
                snd.trade("SP", TS0 + i, "1.5", 1, "B", i)
        with slotd.Client(port=s.tcp_port) as c:
            assert [t["id"] for t in c.trades("SP")] == list(range(9))


def test_compaction_and_continuation():
    p = tmp_spool()
    n = 60_000                         # ~2 MB of batches: past the 1 MiB compaction size
    with Slotd() as s:
        with slotd.Sender(port=s.tcp_port, client="cmp", spool=p) as snd:
            for i in range(n):
                snd.trade("CMP", TS0 + i, "7.25", 1, "S", i)
            snd.flush()
            last = snd._next_seq - 1
            size = os.path.getsize(p)
        assert size < 1 << 20, size
        recs = records(p)
        assert recs[0][1] == 3 and struct.unpack("<QQ", recs[0][2]) == (last, n), recs[0]
        sp = Spool(p)
        assert (sp.history, sp.last_seq, sp.sealed, sp.pending) == (True, last, n, [])
        sp.close()
        # A new sender continues the seqs and the count: slotd stores what follows
        # (a seq at or below last_seq would be acknowledged with nothing stored).
        with slotd.Sender(port=s.tcp_port, client="cmp", spool=p) as snd:
            assert snd.sealed == n
            for i in range(n, n + 100):
                snd.trade("CMP", TS0 + i, "7.25", 1, "S", i)
        with slotd.Client(port=s.tcp_port) as c:
            assert c.symbol("CMP")["count"] == n + 100
        recs = records(p)
        assert [t for _, t, _ in recs][-2:] == [1, 2], recs
        assert struct.unpack_from("<Q", recs[-2][2])[0] == last + 1


def stored(s, sym):
    with slotd.Client(port=s.tcp_port, client="reader") as c:
        return sorted(t["id"] for t in c.trades(sym))


def drive(port, client, spool, n, sym_prefix, popen=False, **extra):
    """client_drive: trade i is <prefix>0, ts TS0 + i, id i; --resume starts
    at the spool's sealed count."""
    args = [DRIVE, "--port", str(port), "--client", client, "--spool", spool, "--resume",
            "--n", str(n), "--prefix", sym_prefix, "--syms", "1", "--batch", "100"]
    for k, v in extra.items():
        args += ["--" + k.replace("_", "-")] + ([] if v is True else [str(v)])
    if popen:
        return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    p = subprocess.run(args, stdout=subprocess.PIPE, text=True, timeout=300)
    assert p.returncode == 0, p.stdout
    return p.stdout


def test_spool_shared_with_the_c_library():
    assert os.access(DRIVE, os.X_OK), "build tests/client_drive first (%s)" % DRIVE
    with Slotd() as s:
        # Python leaves batches unacknowledged in its spool; C finishes them.
        p = tmp_spool()
        snd = slotd.Sender(port=s.tcp_port, client="py-then-c", spool=p, batch_size=100)
        snd.trade("M0", TS0, "100", 1, "B", 0)
        snd.flush()
        s.proc.send_signal(signal.SIGSTOP)   # nothing is acknowledged from here on
        try:
            for i in range(1, 5001):
                snd.trade("M0", TS0 + i, "100", 1, "S", i)
            assert snd.pending == 50, snd.pending
            snd.close(flush=False)
        finally:
            s.proc.send_signal(signal.SIGCONT)
        out = drive(s.tcp_port, "py-then-c", p, 8000, "M")
        assert "start 5001" in out and '"rc": 0' in out, out
        assert stored(s, "M0") == list(range(8000))

        # C is killed with batches unacknowledged in its spool; Python finishes.
        q = tmp_spool()
        # A first run to the end leaves C's STATE record; with the seqs known
        # from it, the second run spools each batch as it seals (a new spool
        # waits for the first WELCOME, which the C sender reads late).
        assert '"rc": 0' in drive(s.tcp_port, "c-then-py", q, 1000, "N")
        n = 100_000                    # paced: about a second, never done before the kill
        c = drive(s.tcp_port, "c-then-py", q, n, "N", popen=True, progress=True, pace_us=1000)
        try:
            for line in c.stdout:
                # Batches reach the spool once their seqs are known (WELCOME):
                # wait for some, so the spool holds C's work.
                if line.startswith("sealed") and os.path.getsize(q) > 20_000:
                    s.proc.send_signal(signal.SIGSTOP)
                    time.sleep(0.1)
                    c.kill()
                    break
        finally:
            c.stdout.close()
            c.wait(60)
            s.proc.send_signal(signal.SIGCONT)
        with slotd.Sender(port=s.tcp_port, client="c-then-py", spool=q, batch_size=100) as snd:
            start = snd.sealed
            print("  C's spool: resumed at %d with %d batches pending" % (start, snd.pending))
            assert 1000 < start < n and snd.pending > 0, (start, snd.pending)
            for i in range(start, n):
                snd.trade("N0", TS0 + i, "100", 1, "S", i)
        assert stored(s, "N0") == list(range(n))


def main():
    res = Results()
    for fn in (test_format_on_disk, test_torn_tail_is_cut, test_damage_is_refused_with_offset,
               test_lock, test_sender_resends_whole_batches_of_torn_spool,
               test_compaction_and_continuation, test_spool_shared_with_the_c_library):
        res.run(fn)
    res.finish()


if __name__ == "__main__":
    main()
