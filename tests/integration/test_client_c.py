"""The C client (libslotd-client, driven by tests/client/client_drive.c)
against a real slotd on loopback: the delivery contract of docs/clients.md.

  - slotd SIGKILLed and restarted three times under a 1M-trade pipelined
    stream: every trade stored exactly once; flush returned 0 with all acked
  - the producer SIGKILLed mid-stream (slotd stopped, so batches wait in the
    spool) and restarted on its spool, resuming at slotd_sender_sealed():
    exactly once
  - one bad trade: typed error (BAD_VALUE, seq, index, field); every other
    batch stored; the same in non-blocking mode
  - STORE_FULL until DELETE frees room, NOT_READY during a journal replay:
    completes within the retry budget; a tiny budget gives SLOTD_ETIMEDOUT
    naming the obstacle
  - a wrong token: typed UNAUTHORIZED, one connection attempt (no retry storm)
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Results, Slotd, wait_for  # noqa: E402

BUILD = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "build")
# scripts/memcheck.sh runs the driver under valgrind through a wrapper.
DRIVE = os.environ.get("SLOTD_CLIENT_DRIVE") or os.path.join(BUILD, "tests", "client_drive")
SCALE = float(os.environ.get("SLOTD_TEST_SCALE") or 1)
TS0 = 1767225600000000000
ETIMEDOUT, EBATCH, EUNAUTHORIZED = -5004, -5005, -5006


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drive_args(port, client, **kw):
    args = [DRIVE, "--port", str(port), "--client", client]
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        args += [flag] if v is True else [flag, str(v)]
    return args


def parse(lines):
    """The driver's final JSON line and its on_error lines."""
    result, errors = None, []
    for line in lines:
        if line.startswith("error "):
            errors.append(json.loads(line[6:]))
        elif line.startswith("{"):
            result = json.loads(line)
    assert result is not None, "no result from the driver:\n" + "".join(lines)
    return result, errors


def drive(port, client, timeout=600, **kw):
    p = subprocess.run(drive_args(port, client, **kw), stdout=subprocess.PIPE, text=True,
                       timeout=timeout)
    assert p.returncode == 0, (p.returncode, p.stdout)
    return parse(p.stdout.splitlines(True))


def stats(s):
    return s.http_json("/stats")[1]


def stored_ids(s, sym):
    ids, cursor = [], 0
    while cursor is not None:
        status, body = s.http_json("/symbols/%s/trades?limit=10000&cursor=%d" % (sym, cursor))
        if status == 404:
            return ids
        assert status == 200, (status, body)
        ids.extend(t["id"] for t in body["trades"])
        cursor = body["next_cursor"]
    return ids


def exactly_once(s, syms, expected):
    """The store holds exactly the trade ids `expected` across syms, each once."""
    ids, counts = [], 0
    for sym in syms:
        ids.extend(stored_ids(s, sym))
        status, body = s.http_json("/symbols/" + sym)
        counts += body["count"] if status == 200 else 0
    want = sorted(expected)
    assert counts == len(want), "stored %d trades, expected %d" % (counts, len(want))
    ids.sort()
    if ids != want:
        dup = sum(1 for a, b in zip(ids, ids[1:]) if a == b)
        raise AssertionError("ids differ: %d stored, %d expected, %d duplicates, %d missing"
                             % (len(ids), len(want), dup, len(set(want) - set(ids))))


# -- slotd killed under a stream ---------------------------------------------
def test_slotd_killed_under_1m_trades():
    n, nsym = int(1_000_000 * SCALE), 50
    syms = ["K%d" % i for i in range(nsym)]
    port = free_port()
    with Slotd(extra_args=["--listen", "127.0.0.1:%d" % port]) as s:
        p = subprocess.Popen(drive_args(port, "stream", n=n, syms=nsym, prefix="K", batch=1000,
                                        window=32, retry_timeout=120000, backoff_max=500),
                             stdout=subprocess.PIPE, text=True)
        try:
            for at in (n * 15 // 100, n * 40 // 100, n * 70 // 100):
                wait_for(lambda: stats(s)["trades"] >= at or p.poll() is not None, timeout=120,
                         what="%d trades stored" % at)
                assert p.poll() is None, "the driver finished before slotd was killed"
                s.kill()
                time.sleep(0.2)   # the sender meets a refused connection
                s.start()
            lines = []
            for line in p.stdout:
                lines.append(line)
                if line.startswith("{"):
                    # flush returned: everything must be stored right now.
                    at_flush = stats(s)["trades"]
        finally:
            p.stdout.close()
            assert p.wait(300) == 0
        res, errors = parse(lines)
        st = res["stats"]
        print("  %d trades, 3 kills: %s" % (n, st))
        assert res["rc"] == 0 and not errors, res
        assert at_flush == n, at_flush
        assert st["acked_trades"] == n and st["cb_acked_trades"] == n, st
        assert st["queued_batches"] == 0 and st["reconnects"] >= 3 and st["resent_batches"] > 0, st
        exactly_once(s, syms, range(n))


# -- the producer killed, restarted on its spool -----------------------------
def run_producer(port, spool, n, kill_at=None, before_kill=None):
    """Runs the driver on the spool (resuming at sealed); SIGKILLs it once it
    has sealed kill_at trades and had some acknowledged (after before_kill()). Returns where it started
    and the final result (None when killed)."""
    p = subprocess.Popen(drive_args(port, "producer", n=n, syms=7, prefix="P", batch=500,
                                    spool=spool, resume=True, progress=True, pace_us=200,
                                    max_buffered=1 << 20),
                         stdout=subprocess.PIPE, text=True)
    start, lines = None, []
    try:
        for line in p.stdout:
            lines.append(line)
            w = line.split()
            if w[0] == "start":
                start = int(w[1])
            # Killed once connected (a fresh spool learns its seqs from the
            # first WELCOME) and past kill_at.
            elif w[0] == "sealed" and kill_at is not None and int(w[1]) >= kill_at \
                    and int(w[3]) > 0:
                if before_kill:
                    before_kill()
                p.kill()
                break
    finally:
        p.stdout.close()
        rc = p.wait(120)
    if kill_at is not None:
        assert rc == -signal.SIGKILL, rc
        return start, None
    assert rc == 0, (rc, lines)
    return start, parse(lines)[0]


def test_producer_killed_resumes_from_spool():
    n, syms = int(250_000 * max(SCALE, 0.4)), ["P%d" % i for i in range(7)]
    with Slotd() as s:
        spool = os.path.join(s.data_dir, "producer.spool")
        # slotd paused before the kill: batches sealed from then on stay
        # unacknowledged, so the restart must resend them from the spool.
        try:
            start1, _ = run_producer(s.tcp_port, spool, n, kill_at=n // 5, before_kill=s.pause)
        finally:
            s.resume()
        acked_before = stats(s)["trades"]
        start2, _ = run_producer(s.tcp_port, spool, n, kill_at=n * 3 // 5)
        start3, res = run_producer(s.tcp_port, spool, n)
        print("  restarts resumed at %d (%d stored before) and %d" % (start2, acked_before, start3))
        assert start1 == 0 and n // 5 <= start2 < start3 < n, (start1, start2, start3)
        # The spool held sealed batches slotd had not acknowledged: the
        # restart resent them (else the resend path went untested).
        assert acked_before < start2, (acked_before, start2)
        assert res["rc"] == 0 and res["stats"]["sealed"] == n, res
        exactly_once(s, syms, range(n))


# -- a bad trade ---------------------------------------------------------------
def check_bad_trade(nonblocking):
    with Slotd() as s:
        kw = {"nonblocking": True, "max_buffered": 20000} if nonblocking else {}
        # linger 1h: batches are sealed at 100 trades only, never by the
        # clock (under TSan one was sealed at 69 and the counts moved).
        res, errors = drive(s.tcp_port, "bad", n=4000, syms=1, prefix="BAD", batch=100,
                            window=32, bad_at=742, linger=3_600_000, **kw)
        err = res["err"]
        assert res["rc"] == EBATCH, res
        assert len(errors) == 1 and errors[0] == err, errors
        assert (err["wire_code"], err["index"], err["field"]) == ("BAD_VALUE", 42, "qty"), err
        assert err["seq"] > 0 and "negative" in err["message"], err
        st = res["stats"]
        assert st["failed_batches"] == 1 and st["acked_trades"] == 3900, st
        if not nonblocking:
            # The window was full: later batches came back BLOCKED and were
            # resent after the empty batch that settled the bad one.
            assert st["resent_batches"] > 0, st
        else:
            assert st["eagain"] > 0, st
        exactly_once(s, ["BAD0"], [i for i in range(4000) if not 700 <= i < 800])


def test_bad_trade_gives_up_one_batch():
    check_bad_trade(False)


def test_bad_trade_nonblocking():
    check_bad_trade(True)


# -- STORE_FULL and NOT_READY --------------------------------------------------
def test_store_full_then_room():
    with Slotd(extra_args=["--max-memory", "16M"]) as s:
        res, _ = drive(s.tcp_port, "ballast", n=5_000_000, syms=1, prefix="BALLAST",
                       retry_timeout=500, backoff_max=100, max_buffered=1 << 20)
        assert res["rc"] == ETIMEDOUT, res
        msg = res["err"]["message"]
        assert "retry budget" in msg and "STORE_FULL" in msg, msg
        print("  tiny budget: %s" % msg)
        full_before = stats(s)["errors"]["STORE_FULL"]
        p = subprocess.Popen(drive_args(s.tcp_port, "real", n=50_000, syms=1, prefix="REAL",
                                        backoff_max=200),
                             stdout=subprocess.PIPE, text=True)
        try:
            wait_for(lambda: stats(s)["errors"]["STORE_FULL"] > full_before + 3,
                     what="the sender meeting STORE_FULL")
            assert p.poll() is None, "the sender finished against a full store"
            req = ("DELETE /symbols/BALLAST0/trades?from=0&to=%d HTTP/1.1\r\nHost: x\r\n"
                   "Connection: close\r\n\r\n" % (TS0 + 10 ** 12)).encode()
            # Deleting ~4M trades takes over 10 s under valgrind.
            assert b" 200 " in s.http_raw(req, timeout=180).split(b"\r\n")[0]
            out = p.stdout.read()
        finally:
            p.stdout.close()
            assert p.wait(120) == 0
        res, errors = parse(out.splitlines(True))
        assert res["rc"] == 0 and not errors, res
        assert res["stats"]["resent_batches"] > 0, res
        exactly_once(s, ["REAL0"], range(50_000))


def test_not_ready_during_replay():
    with Slotd() as s:
        # A journal of 4M trades: a replay that takes a while.
        res, _ = drive(s.tcp_port, "bulk", n=4_000_000, syms=50, prefix="BULK", batch=5000)
        assert res["rc"] == 0, res
        s.stop()
        s.start(wait_ready=False)
        patient = subprocess.Popen(drive_args(s.tcp_port, "patient", n=10_000, syms=1,
                                              prefix="NR", backoff_max=100),
                                   stdout=subprocess.PIPE, text=True)
        try:
            # A tiny retry budget runs out during the replay, naming NOT_READY.
            # Under valgrind the first HELLO may not even be answered within
            # 100 ms ("no reply"): then a larger budget, still far below the
            # replay's length there.
            for budget in (100, 500, 2000, 5000):
                res, _ = drive(s.tcp_port, "hasty", n=1, syms=1, prefix="NRH",
                               retry_timeout=budget, backoff_max=20)
                assert res["rc"] == ETIMEDOUT, res
                if "NOT_READY" in res["err"]["message"]:
                    break
            assert "NOT_READY" in res["err"]["message"], res
            print("  tiny budget: %s" % res["err"]["message"])
            out = patient.stdout.read()
        finally:
            patient.stdout.close()
            assert patient.wait(120) == 0
        res, errors = parse(out.splitlines(True))
        st = res["stats"]
        assert res["rc"] == 0 and not errors, res
        assert st["reconnects"] >= 1 and st["acked_trades"] == 10_000, st
        assert stats(s)["errors"]["NOT_READY"] >= 1
        exactly_once(s, ["NR0"], range(10_000))


def test_timeout_names_refused_connection():
    res, _ = drive(free_port(), "nobody", n=1, retry_timeout=300)
    assert res["rc"] == ETIMEDOUT, res
    assert "connect" in res["err"]["message"] and "refused" in res["err"]["message"], res


# -- token ---------------------------------------------------------------------
def test_wrong_token():
    with Slotd(extra_args=["--token", "s3cret"]) as s:
        before = stats_auth(s)
        res, errors = drive(s.tcp_port, "intruder", n=100, token="wrong", backoff_max=10)
        assert res["rc"] == EUNAUTHORIZED, res
        assert res["err"]["wire_code"] == "UNAUTHORIZED", res
        assert len(errors) == 1 and errors[0]["code"] == EUNAUTHORIZED, errors
        time.sleep(0.5)   # a retry storm would show by now
        assert stats_auth(s) == before + 1, (before, stats_auth(s))
        res, _ = drive(s.tcp_port, "friend", n=100, token="s3cret")
        assert res["rc"] == 0 and res["stats"]["acked_trades"] == 100, res


def stats_auth(s):
    status, _, body = s.http_get("/stats", {"Authorization": "Bearer s3cret"})
    assert status == 200, status
    return json.loads(body)["connections_accepted"]


if __name__ == "__main__":
    r = Results()
    r.run(test_bad_trade_gives_up_one_batch)
    r.run(test_bad_trade_nonblocking)
    r.run(test_wrong_token)
    r.run(test_timeout_names_refused_connection)
    r.run(test_store_full_then_room)
    r.run(test_not_ready_during_replay)
    r.run(test_producer_killed_resumes_from_spool)
    r.run(test_slotd_killed_under_1m_trades)
    r.finish()
