"""Issue #17 at full size: export 10M trades to CSV in bounded memory, import
them into a fresh slotd, and compare every symbol's aggregates and trades.

- slotload puts N W1 trades (1,000 symbols, Zipf 1.1) into slotd A;
- `slotctl export` writes A's CSV to a file while A's RSS is sampled every
  20 ms: its growth over the export is printed and must stay under 64 MiB
  (a memory bound: an export streams pieces, it does not hold the result);
- `slotctl import` sends the file into a fresh slotd B;
- every symbol's GET /symbols/{sym} (less "pages", storage layout) is equal
  on A and B, and B's full CSV export is byte for byte the file (SHA-256 of
  both, streamed: 10M lines are never held in Python).

N is 10,000,000. The sanitizer builds scale it down through the variables
scripts/test.sh already sets: under --sanitize (ASAN_OPTIONS set) and
--tsan (SLOTD_RSS_SCALE set) N is 1,000,000; SLOTD_TEST_SCALE, if set,
multiplies N too. scripts/memcheck.sh does not run this module (it runs
the modules it names). Time at 10M in the Debug build (load, export,
import, a second export): 52 s on a quiet machine, 122 s beside a build.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from urllib.parse import quote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Results, Slotd  # noqa: E402

BUILD = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
SLOTCTL = os.path.join(BUILD, "load", "slotctl")
SLOTLOAD = os.path.join(BUILD, "load", "slotload")
MiB = 1 << 20
RSS_BOUND = 64 * MiB


def trades_n():
    n = 10_000_000
    if os.environ.get("ASAN_OPTIONS") or os.environ.get("SLOTD_RSS_SCALE"):
        n = 1_000_000  # ASan / TSan: ~10x slower
    scale = float(os.environ.get("SLOTD_TEST_SCALE") or 1)
    return max(10_000, int(n * scale))


def slotctl(s, *args):
    return [SLOTCTL, "--port", str(s.tcp_port), "--http-port", str(s.http_port)] + list(args)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_export(s):
    """SHA-256 and size of `slotctl export` (CSV) read from its stdout."""
    p = subprocess.Popen(slotctl(s, "export"), stdout=subprocess.PIPE)
    h, size = hashlib.sha256(), 0
    for chunk in iter(lambda: p.stdout.read(1 << 20), b""):
        h.update(chunk)
        size += len(chunk)
    assert p.wait() == 0, "slotctl export failed"
    return h.hexdigest(), size


def aggregates(s):
    status, doc = s.http_json("/symbols?top=100000")
    assert status == 200, doc
    aggs = {}
    for sym in sorted(x["symbol"] for x in doc["symbols"]):
        status, a = s.http_json("/symbols/" + quote(sym, safe=""))
        assert status == 200, (sym, a)
        a.pop("pages")  # storage layout, not data: it depends on how batches arrived
        aggs[sym] = a
    return aggs


class RssSampler(threading.Thread):
    """The peak of s.rss_bytes() every 20 ms until stop()."""

    def __init__(self, s):
        super().__init__(daemon=True)
        self.s, self.peak, self.done = s, s.rss_bytes(), threading.Event()

    def run(self):
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.s.rss_bytes())

    def stop(self):
        self.done.set()
        self.join()
        self.peak = max(self.peak, self.s.rss_bytes())


def test_export_import_10m():
    n = trades_n()
    tmp = tempfile.mkdtemp(prefix="slotd-export-big-")
    path = os.path.join(tmp, "all.csv")
    try:
        with Slotd() as a:
            t0 = time.time()
            subprocess.run([SLOTLOAD, "--port", str(a.tcp_port), "--http-port", "0", "--trades",
                            str(n), "--no-progress"], check=True, stdout=subprocess.DEVNULL)
            assert a.http_json("/stats")[1]["trades"] == n
            t1 = time.time()
            before = a.rss_bytes()
            sampler = RssSampler(a)
            sampler.start()
            subprocess.run(slotctl(a, "export", "--format", "csv", "-o", path), check=True)
            sampler.stop()
            t2 = time.time()
            grown = sampler.peak - before
            size = os.path.getsize(path)
            print("    %d trades: load %.1f s; export %.1f s (%.0f trades/s, %.0f MB); "
                  "slotd A RSS %.1f MiB before, peak growth during the export %.2f MiB (%d KiB)"
                  % (n, t1 - t0, t2 - t1, n / (t2 - t1), size / 1e6, before / MiB, grown / MiB,
                     grown // 1024))
            assert grown < RSS_BOUND, "RSS grew by %.1f MiB exporting" % (grown / MiB)
            want_aggs = aggregates(a)
            assert len(want_aggs) > 1 and sum(x["count"] for x in want_aggs.values()) == n, \
                sorted(want_aggs.items())[:2]
        want_hash = sha256_file(path)
        with Slotd() as b:
            t3 = time.time()
            r = subprocess.run(slotctl(b, "import", path), capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            assert "%d records stored" % n in r.stderr, r.stderr
            t4 = time.time()
            assert b.http_json("/stats")[1]["trades"] == n
            got_aggs = aggregates(b)
            assert sorted(got_aggs) == sorted(want_aggs)
            for sym in want_aggs:
                assert got_aggs[sym] == want_aggs[sym], (sym, got_aggs[sym], want_aggs[sym])
            got_hash, got_size = sha256_export(b)
            print("    import %.1f s (%.0f trades/s); %d symbols' aggregates equal; "
                  "B's export %d bytes, sha256 %s" % (t4 - t3, n / (t4 - t3), len(want_aggs),
                                                      got_size, got_hash[:16]))
            assert (got_hash, got_size) == (want_hash, size), "B's export differs from A's"
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


if __name__ == "__main__":
    r = Results()
    r.run(test_export_import_10m)
    r.finish()
