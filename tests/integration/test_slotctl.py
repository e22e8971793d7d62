"""slotctl (issue #17): export, import, clients against real slotds.

- export N trades as CSV (and as JSONL) -> import into a fresh slotd ->
  every symbol's aggregates and every trade equal (the migration path
  across a record-layout change), option trades and negative prices too
- slotctl SIGKILLed mid-import, then rerun: every trade stored exactly once
  (the client library's spool and slotd_sender_sealed); a finished import
  rerun sends nothing
- slotctl clients: each client name with the last seq WELCOME reports;
  GET /clients the same as JSON
- errors: an unknown symbol exits 1 naming the HTTP status
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Results, Slotd, random_decimal, wait_for  # noqa: E402

BUILD = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
SLOTCTL = os.path.join(BUILD, "load", "slotctl")
SLOTLOAD = os.path.join(BUILD, "load", "slotload")
TS0 = 1767225600 * 10 ** 9
N = 200000


def slotctl(s, *args, check=True, **kw):
    cmd = [SLOTCTL, "--port", str(s.tcp_port), "--http-port", str(s.http_port)] + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check:
        assert r.returncode == 0, (cmd, r.returncode, r.stderr)
    return r


def fill(s):
    subprocess.run([SLOTLOAD, "--port", str(s.tcp_port), "--http-port", "0", "--trades", str(N),
                    "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    rng = random.Random(7)
    with s.sender("extra") as snd:
        for i in range(300):
            snd.trade("NEG", TS0 + i, "-" + random_decimal(rng), random_decimal(rng),
                      side="BS"[i % 2], id=2 ** 64 - 1 - i)
        for i in range(200):
            snd.send({"sym": "OPT C", "ts": TS0 + i, "px": random_decimal(rng), "qty": 1,
                      "strike": "-12.5", "expiry": TS0 + 10 ** 12, "right": "CP"[i % 2]},
                     kind="option_trade")
        snd.flush()


def symbols(s):
    status, doc = s.http_json("/symbols?top=1000")
    assert status == 200
    return sorted(x["symbol"] for x in doc["symbols"])


def state(s):
    """Every symbol's aggregates, and every trade (the JSONL export)."""
    from urllib.parse import quote
    aggs = {}
    for sym in symbols(s):
        status, doc = s.http_json("/symbols/" + quote(sym, safe=""))
        assert status == 200
        doc.pop("pages")  # storage layout, not data: it depends on how batches arrived
        aggs[sym] = doc
    status, _, body = s.http_get("/export?syms=*&format=jsonl")
    assert status == 200
    by = {}
    for line in body.decode().splitlines():
        rec = json.loads(line)
        by.setdefault(rec["symbol"], []).append(line)
    return aggs, by


def test_round_trip(src, want, tmp):
    for fmt in ("csv", "jsonl"):
        path = os.path.join(tmp, "all." + fmt)
        slotctl(src, "export", "--format", fmt, "-o", path)
        with Slotd() as dst:
            r = slotctl(dst, "import", path)
            assert "%d records stored" % (N + 500) in r.stderr, r.stderr
            got = state(dst)
            assert sorted(got[0]) == sorted(want[0]), fmt
            for sym in want[0]:
                assert got[0][sym] == want[0][sym], (fmt, sym, got[0][sym], want[0][sym])
                assert got[1][sym] == want[1][sym], (fmt, sym)  # every trade, in order
            # a rerun of a finished import sends nothing
            r = slotctl(dst, "import", path)
            assert "(0 sent now" in r.stderr, r.stderr
            assert dst.http_json("/stats")[1]["trades"] == N + 500


def test_kill_and_resume(src, want, tmp):
    path = os.path.join(tmp, "kill.csv")
    slotctl(src, "export", "-o", path)
    with Slotd() as dst:
        kills = 0
        for _ in range(3):  # kill it mid-way, up to three times
            p = subprocess.Popen([SLOTCTL, "--port", str(dst.tcp_port), "import", path],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            start = dst.http_json("/stats")[1]["trades"]
            deadline = time.time() + 60
            while time.time() < deadline and p.poll() is None:
                if dst.http_json("/stats")[1]["trades"] > start + 20000:
                    break
                time.sleep(0.01)
            if p.poll() is not None:
                break
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
        assert kills >= 1, "the import finished before it could be killed"
        r = slotctl(dst, "import", path)
        got = state(dst)
        assert dst.http_json("/stats")[1]["trades"] == N + 500, r.stderr
        assert got == want, "not exactly once after %d kills" % kills
        print("    %d kills; %s" % (kills, r.stderr.strip()))


def test_clients(src, want, tmp):
    r = slotctl(src, "clients")
    rows = dict(line.split("\t") for line in r.stdout.splitlines())
    status, doc = src.http_json("/clients")
    assert status == 200 and doc["count"] == len(doc["clients"]) == len(rows), (doc, rows)
    for c in doc["clients"]:
        assert rows[c["name"]] == str(c["last_seq"])
        w = src.connect(c["name"])
        assert w.welcome[1]["last_seq"] == c["last_seq"] > 0, (w.welcome, c)
        w.close()
    assert "extra" in rows
    status, _, body = src.http_get("/clients?x=1")
    assert status == 400 and json.loads(body)["error"] == "BAD_QUERY"


def test_errors(src, want, tmp):
    r = slotctl(src, "export", "--syms", "NOPE", "-o", os.path.join(tmp, "e"), check=False)
    assert r.returncode == 1 and "HTTP 404" in r.stderr, r.stderr
    r = slotctl(src, "export", "--format", "xml", check=False)
    assert r.returncode == 1 and "HTTP 400" in r.stderr and "BAD_QUERY" in r.stdout, r
    r = slotctl(src, "frobnicate", check=False)
    assert r.returncode == 2
    bad = os.path.join(tmp, "bad.csv")
    with open(bad, "w") as f:
        f.write("symbol,kind,ts,px,qty\nAAPL,trade,1,notanumber,1\n")
    with Slotd() as dst:
        r = slotctl(dst, "import", bad, check=False)
        assert r.returncode == 1 and "BAD_VALUE" in r.stderr, r.stderr


def main():
    r = Results()
    tmp = tempfile.mkdtemp(prefix="slotctl-test-")
    try:
        with Slotd() as src:
            fill(src)
            want = state(src)
            assert sum(len(v) for v in want[1].values()) == N + 500
            for t in (test_round_trip, test_kill_and_resume, test_clients, test_errors):
                r.run(t, src, want, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r.finish()


if __name__ == "__main__":
    main()
