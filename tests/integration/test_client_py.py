"""The Python client (proto/python/slotd) against a real slotd on loopback:
the delivery contract of docs/clients.md (issue #12) and the query client.

  - slotd SIGKILLed and restarted three times under a 1M-trade stream:
    every trade stored exactly once, flush returns only once all are stored
  - the producer SIGKILLed mid-stream and restarted on its spool (resuming
    its source at sender.sealed): exactly once
  - one bad trade: BatchError (code, seq, index, field); every other batch stored
  - STORE_FULL until DELETE frees room, NOT_READY during a journal replay:
    completes within the budget; a tiny budget gives Timeout naming the obstacle
  - a wrong token: Unauthorized, one connection and no retry storm
  - the non-blocking mode driven by a selector, WouldBlock at max_buffered
  - values (Decimal, datetime, float, bool), the context manager
  - slotd.Client: every query, NotFound/QueryError, trades() across cursors
"""
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
PYDIR = os.path.join(HERE, "..", "..", "proto", "python")
sys.path.insert(0, PYDIR)
sys.path.insert(0, HERE)

import selectors  # noqa: E402

import slotd  # noqa: E402
from harness import Results, Slotd, random_decimal, wait_for  # noqa: E402

TS0 = 1767225600000000000  # 2026-01-01T00:00:00Z


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stored_ids(c, syms):
    """Every stored trade's id across `syms`, paging with the cursors."""
    ids = []
    for sym in syms:
        try:
            ids.extend(t["id"] for t in c.trades(sym))
        except slotd.NotFound:
            pass
    return ids


def server_stats(s):
    return s.http_json("/stats")[1]


def exactly_once(s, syms, n, name="check"):
    """The store holds trades 0..n-1 once each (ids), and nothing else."""
    with slotd.Client(port=s.tcp_port, client=name) as c:
        total = 0
        for sym in syms:
            try:
                total += c.symbol(sym)["count"]
            except slotd.NotFound:
                pass
        ids = stored_ids(c, syms)
    assert total == n, "stored %d trades, expected %d" % (total, n)
    assert len(ids) == n, (len(ids), n)
    ids.sort()
    if ids != list(range(n)):
        dup = sum(1 for a, b in zip(ids, ids[1:]) if a == b)
        raise AssertionError("ids are not 0..%d once each: %d duplicates, %d missing"
                             % (n - 1, dup, n - len(set(ids))))


# -- slotd killed under a stream ---------------------------------------------
SCALE = float(os.environ.get("SLOTD_TEST_SCALE") or 1)   # scripts/memcheck.sh shrinks it


def test_slotd_killed_under_1m_trades():
    n, nsym = int(1_000_000 * SCALE), 50
    syms = ["K%02d" % i for i in range(nsym)]
    port = free_port()
    with Slotd(extra_args=["--listen", "127.0.0.1:%d" % port]) as s:
        out = {}
        # The trades are handed over in four parts; part k+1 waits for the
        # k-th kill, so every kill lands before the sender can have flushed.
        # While it waits the sender is driven by process(): it has no thread
        # of its own, and the kill waits for trades only it can deliver.
        # Each kill comes once the sender is connected and half of part k is handed over: slotd is
        # stopped (SIGSTOP), the sender goes on sending the other half into
        # a server that acknowledges nothing, and the SIGKILL comes once
        # batches are in flight, so every kill has batches to resend (a kill
        # timed by the store's count alone found, on a loaded machine, every
        # batch of the part already acknowledged).
        parts = [n * k // 4 for k in range(5)]
        gates = [threading.Event() for _ in range(3)]
        halves = [threading.Event() for _ in range(3)]

        def stream():
            try:
                t0 = time.time()
                snd = slotd.Sender(port=port, client="stream", batch_size=1000, window=32,
                                   retry_timeout=120)
                out["snd"] = snd
                for k in range(4):
                    while k and not gates[k - 1].wait(0.005):
                        snd.process()
                    half = (parts[k] + parts[k + 1]) // 2
                    for i in range(parts[k], parts[k + 1]):
                        if i == half and k < 3:
                            halves[k].set()
                        snd.trade(syms[i % nsym], TS0 + i, "187.25", 1 + i % 7, "B", i)
                out["handed"] = time.time() - t0
                snd.flush()
                out["flushed"] = time.time() - t0
                # flush returned: every trade must be in the store right now.
                with slotd.Client(port=port, client="at-flush") as c:
                    out["at_flush"] = c.stats()["trades"]
                out["stats"] = snd.stats
                snd.close()
            except BaseException as e:  # reported by the main thread
                out["error"] = e

        t = threading.Thread(target=stream)
        t.start()
        kills = []
        for k in range(3):
            # Stopped only once the sender is welcomed again: stopped
            # before that, slotd would never answer its HELLO.
            wait_for(lambda: (halves[k].is_set() and out["snd"].stats["connected"]
                              and out["snd"].stats["welcomes"] > k) or "error" in out,
                     timeout=120, what="half of part %d handed over, sender connected" % k)
            s.proc.send_signal(signal.SIGSTOP)
            wait_for(lambda: ("snd" in out and out["snd"].stats["inflight"] > 0) or "error" in out,
                     timeout=120, what="batches in flight to a stopped slotd")
            assert "error" not in out and "flushed" not in out, out
            s.kill()
            kills.append(k)
            time.sleep(0.2)   # the sender meets a refused connection
            s.start()
            gates[k].set()
        t.join(300)
        assert not t.is_alive(), "sender did not finish"
        if "error" in out:
            raise out["error"]
        st = out["stats"]
        print("  %d trades, %d kills: handed over in %.1fs, flushed at %.1fs; %s"
              % (n, len(kills), out["handed"], out["flushed"],
                 {k: st[k] for k in ("welcomes", "batches_sent", "batches_resent", "retries")}))
        assert out["at_flush"] == n, out["at_flush"]
        assert st["welcomes"] >= 4 and st["batches_resent"] > 0, st
        assert st["trades_acked"] == n and st["queued_batches"] == 0, st
        exactly_once(s, syms, n)


# -- the producer killed, restarted on its spool -----------------------------
PRODUCER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import slotd
port, spool, n, ts0 = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s = slotd.Sender(port=port, client="producer", spool=spool, max_buffered=1 << 20)
start = s.sealed                     # what the spool owns: resume the source here
print("start", start, s.pending, flush=True)
for i in range(start, n):
    s.trade("P" + str(i % 7), ts0 + i, "2.5", 1, "S", i)
    if i % 2000 == 0:
        print("at", i, flush=True)
s.flush()
print("done", s.sealed, flush=True)
s.close()
"""


def run_producer(port, spool, n, kill_at=None, before_kill=None):
    """Runs the producer; SIGKILLs it once it reports trade kill_at (after
    before_kill()). Returns (start sealed, pending batches at start, done)."""
    p = subprocess.Popen([sys.executable, "-c", PRODUCER, PYDIR, str(port), spool, str(n), str(TS0)],
                         stdout=subprocess.PIPE, text=True)
    start = pending = None
    done = False
    try:
        for line in p.stdout:
            w = line.split()
            if w[0] == "start":
                start, pending = int(w[1]), int(w[2])
            elif w[0] == "at" and kill_at is not None and int(w[1]) >= kill_at:
                if before_kill:
                    before_kill()
                p.kill()
                break
            elif w[0] == "done":
                assert int(w[1]) == n, line
                done = True
    finally:
        p.stdout.close()
        rc = p.wait(120)
    assert done == (kill_at is None) and (rc == 0) == done, (rc, done)
    return start, pending


def test_producer_killed_resumes_from_spool():
    n, syms = 250_000, ["P%d" % i for i in range(7)]
    with Slotd() as s:
        spool = os.path.join(s.data_dir, "producer.spool")
        # slotd paused before the kill: batches sealed from then on stay
        # unacknowledged, so the restart must resend them from the spool.
        try:
            start1, _ = run_producer(s.tcp_port, spool, n, kill_at=50_000, before_kill=s.pause)
        finally:
            s.resume()
        start2, pending2 = run_producer(s.tcp_port, spool, n, kill_at=150_000)
        start3, pending3 = run_producer(s.tcp_port, spool, n)
        print("  restarts resumed at %d (%d batches spooled) and %d (%d)"
              % (start2, pending2, start3, pending3))
        assert start1 == 0 and 50_000 <= start2 < start3 < n, (start1, start2, start3)
        assert pending2 > 0, "nothing was pending in the spool: the resend path went untested"
        exactly_once(s, syms, n)


# -- a bad trade ---------------------------------------------------------------
def test_bad_trade_gives_up_one_batch():
    with Slotd() as s:
        # linger 1h: batches are sealed at 100 trades only, never by the
        # clock (a slow machine sealed one early and moved the bad trade).
        snd = slotd.Sender(port=s.tcp_port, client="bad", batch_size=100, window=32,
                           linger=3600)
        for b in range(40):
            for j in range(100):
                px = "1.123456789" if (b, j) == (7, 42) else "1.5"
                snd.trade("BAD", TS0 + b * 100 + j, px, 1, id=b * 100 + j)
        try:
            snd.flush()
        except slotd.BatchError as e:
            err = e
        else:
            raise AssertionError("flush did not raise BatchError")
        first = snd.errors[0].seq
        assert (err.code, err.index, err.field) == ("BAD_VALUE", 42, "px"), vars(err)
        assert err.seq == first and "more than 8 decimal" in err.message, vars(err)
        assert len(snd.errors) == 1
        st = snd.stats
        # The 32-batch window was full: the later batches came back BLOCKED
        # and were resent after the empty batch that settled the bad one.
        assert st["batches_resent"] > 0 and st["batches_given_up"] == 1, st
        snd.trade("BAD", TS0 + 9999, "2", 1, id=9999)
        snd.flush()                # the error was reported once; the sender goes on
        snd.close()
        with slotd.Client(port=s.tcp_port) as c:
            ids = sorted(t["id"] for t in c.trades("BAD"))
        assert ids == [i for i in range(4000) if not 700 <= i < 800] + [9999], len(ids)


# -- STORE_FULL and NOT_READY --------------------------------------------------
def fill_until_full(s):
    """Stores BALLAST until STORE_FULL; returns its count. The tiny budget's
    Timeout names the obstacle."""
    snd = slotd.Sender(port=s.tcp_port, client="ballast", retry_timeout=0.5, backoff=(0.05, 0.1))
    try:
        # Random prices, quantities and ids: compact pages keep ~20 bytes a
        # trade (constant values would take ~2, and 16 MiB would not fill).
        rng = random.Random(1)
        for i in range(5_000_000):
            snd.trade("BALLAST", TS0 + i, random_decimal(rng),
                      1 + rng.randrange(10 ** 9), "B", rng.getrandbits(64))
        raise AssertionError("the store never filled")
    except slotd.Timeout as e:
        msg = str(e)
        assert "retry budget of 0.5s spent" in msg and "STORE_FULL" in msg, msg
        print("  tiny budget: %s" % msg)
    finally:
        snd.close(flush=False)
    return server_stats(s)["trades"]


def test_store_full_then_room():
    with Slotd(extra_args=["--max-memory", "16M"]) as s:
        fill_until_full(s)
        full_before = server_stats(s)["errors"]["STORE_FULL"]
        out = {}

        def stream():
            try:
                with slotd.Sender(port=s.tcp_port, client="real") as snd:
                    for i in range(50_000):
                        snd.trade("REAL", TS0 + i, "9.5", 2, "S", i)
                    snd.flush()
                    out["stats"] = snd.stats
            except BaseException as e:
                out["error"] = e

        t = threading.Thread(target=stream)
        t.start()
        wait_for(lambda: server_stats(s)["errors"]["STORE_FULL"] > full_before + 3,
                 what="the sender meeting STORE_FULL")
        assert t.is_alive() and "stats" not in out
        with slotd.Client(port=s.tcp_port, client="admin") as c:
            deleted = c.delete("BALLAST", 0, TS0 + 10**12)["deleted"]
        assert deleted > 0
        t.join(120)
        if "error" in out:
            raise out["error"]
        assert out["stats"]["retries"] > 0, out["stats"]
        exactly_once(s, ["REAL"], 50_000)


def test_not_ready_during_replay():
    import msgpack
    with Slotd() as s:
        c = s.connect("bulk")
        per, nb = 5000, 800          # 4M trades: a replay of a good half second here
        body = msgpack.packb([["BULK%02d" % (i % 50), TS0 + i, "10.5", 2, "B", i]
                              for i in range(per)])
        for b in range(nb):
            c.send_raw(b"\x93\xa1T" + msgpack.packb(b + 1) + body)
            if b >= 16:
                assert c.recv()[0] == "ACK"
        for _ in range(16):
            assert c.recv()[0] == "ACK"
        c.close()
        s.stop()
        s.start(wait_ready=False)
        patient = slotd.Sender(port=s.tcp_port, client="patient")
        for i in range(10_000):
            patient.trade("NR", TS0 + i, "1", 1, id=i)
        # A tiny retry budget runs out during the replay, naming NOT_READY;
        # on a slow machine the first HELLO may not be answered within it
        # ("no reply"): then a larger budget, still below the replay.
        for budget in (0.1, 0.5, 2.0):
            hasty = slotd.Sender(port=s.tcp_port, client="hasty", retry_timeout=budget)
            hasty.trade("NR2", TS0, "1", 1)
            try:
                hasty.flush()
                raise AssertionError("flush completed during the replay: make the journal bigger")
            except slotd.Timeout as e:
                err = str(e)
            hasty.close(flush=False)
            if "NOT_READY" in err:
                break
        assert "NOT_READY" in err, err
        print("  tiny budget: %s" % err)
        patient.flush()
        st = patient.stats
        patient.close()
        assert st["disconnects"] >= 1 and st["trades_acked"] == 10_000, st
        assert server_stats(s)["errors"]["NOT_READY"] >= 1
        exactly_once(s, ["NR"], 10_000)


def test_timeout_names_refused_connection():
    snd = slotd.Sender(port=free_port(), client="nobody", retry_timeout=0.3)
    snd.trade("X", TS0, "1", 1)
    try:
        snd.flush()
        raise AssertionError("flush to nothing completed")
    except slotd.Timeout as e:
        assert "cannot connect" in str(e) and "1 batch(es), 1 trades" in str(e), str(e)
    snd.close(flush=False)


# -- token ---------------------------------------------------------------------
def metric(s, name):
    for line in s.http_get("/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError("no metric " + name)


def test_wrong_token_is_fatal_without_storm():
    with Slotd(extra_args=["--token", "right"]) as s:
        snd = slotd.Sender(port=s.tcp_port, client="tok", token="wrong", backoff=(0.01, 0.02))
        snd.trade("T", TS0, "1", 1)
        try:
            snd.flush()
            raise AssertionError("flush with a wrong token completed")
        except slotd.Unauthorized as e:
            assert e.code == "UNAUTHORIZED"
        time.sleep(0.5)            # 25+ back-off periods: a retry loop would show
        for call in (lambda: snd.trade("T", TS0, "1", 1), snd.flush, snd.process):
            try:
                call()
                raise AssertionError("a call after UNAUTHORIZED succeeded")
            except slotd.Unauthorized:
                pass
        snd.close()
        assert metric(s, "slotd_connections_accepted_total") == 1
        assert server_stats_auth(s)["errors"]["UNAUTHORIZED"] == 1
        try:
            slotd.Client(port=s.tcp_port, token="wrong")
            raise AssertionError("a query client with a wrong token connected")
        except slotd.Unauthorized:
            pass
        with slotd.Sender(port=s.tcp_port, client="tok", token="right") as ok:
            ok.trade("T", TS0, "1", 1)


def server_stats_auth(s):
    import json
    return json.loads(s.http_get("/stats", {"Authorization": "Bearer right"})[2])


# -- non-blocking --------------------------------------------------------------
def test_nonblocking_with_selector():
    n = 60_000
    with Slotd() as s:
        snd = slotd.Sender(port=s.tcp_port, client="nb", blocking=False, batch_size=500,
                           max_buffered=64 << 10)
        sel = selectors.DefaultSelector()
        would_block, i, registered = 0, 0, None

        def pump(timeout):
            nonlocal registered
            fd, ev = snd.fileno(), snd.events()
            if registered is not None and registered != (fd, ev):
                sel.unregister(registered[0])
                registered = None
            if fd >= 0 and registered is None:
                sel.register(fd, ev)
                registered = (fd, ev)
            t = snd.next_timeout()
            sel.select(timeout if t is None else min(t, timeout))
            snd.process()

        # slotd paused until the first WouldBlock: nothing is acknowledged,
        # so max_buffered must push back however fast slotd reads once it
        # runs (it used to depend on slotd being slower than this loop).
        s.pause()
        while i < n:
            try:
                snd.trade("NB", TS0 + i, "4.5", 3, "B", i)
                i += 1
            except slotd.WouldBlock:
                if would_block == 0:
                    s.resume()
                would_block += 1
                pump(1.0)
        if would_block == 0:
            s.resume()
        while snd.pending or snd.stats["open_records"]:
            pump(1.0)             # the open batch seals by linger in process()
        assert would_block > 0, "max_buffered never pushed back"
        snd.close()
        exactly_once(s, ["NB"], n)


# -- values and the context manager -------------------------------------------
def test_values_and_context_manager():
    with Slotd() as s:
        with slotd.Sender(port=s.tcp_port, client="vals") as snd:
            snd.trade("V", datetime(2026, 1, 1, 0, 0, 0, 5), Decimal("0.00000001"), Decimal("1E+2"))
            snd.trade("V", datetime(2026, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1))),
                      187.25, 3, side="S", id=2)
            snd.trade("V", TS0 + 7, "-37.63", Decimal("2.50"), id=3)
            snd.send({"sym": "OPT1", "ts": TS0, "px": Decimal("2.5"), "qty": 1, "strike": "190",
                      "expiry": datetime(2026, 1, 16, tzinfo=timezone.utc), "right": "C"},
                     kind="option_trade")
            for bad in (True, None, [1]):
                try:
                    snd.trade("V", TS0, bad, 1)
                    raise AssertionError("px %r accepted" % (bad,))
                except TypeError:
                    pass
        with slotd.Client(port=s.tcp_port) as c:
            v = list(c.trades("V"))
            opt = list(c.trades("OPT1"))
        assert [(t["ts"], t["px_s"], t["qty_s"]) for t in v] == [
            (TS0 + 5000, "0.00000001", "100"), (TS0, "187.25", "3"), (TS0 + 7, "-37.63", "2.5")], v
        assert opt[0]["expiry"] == TS0 + 15 * 86400 * 10**9 and opt[0]["strike_s"] == "190", opt

        # An exception inside the block propagates; the sender is closed.
        try:
            with slotd.Sender(port=s.tcp_port, client="ctx") as snd:
                snd.trade("CTX", TS0, "1", 1)
                raise KeyError("mine")
        except KeyError as e:
            assert e.args == ("mine",)
        try:
            snd.trade("CTX", TS0, "1", 1)
            raise AssertionError("a closed sender took a trade")
        except slotd.Closed:
            pass


def test_linger_seals_on_the_next_call():
    with Slotd() as s:
        with slotd.Sender(port=s.tcp_port, client="linger", linger=0.05) as snd:
            snd.trade("L", TS0, "1", 1)
            snd.trade("L", TS0 + 1, "1", 1)
            assert snd.sealed == 0, "sealed before batch_size or linger"
            time.sleep(0.1)
            snd.trade("L", TS0 + 2, "1", 1)   # linger passed: the first two seal now
            assert snd.sealed == 2 and snd.stats["open_records"] == 1, snd.stats
            time.sleep(0.1)
            snd.process()                      # and in process() (either mode)
            assert snd.sealed == 3, snd.stats


# -- queries -------------------------------------------------------------------
def test_default_client_names_do_not_fence():
    """Two Clients open at once with the default name: both keep working."""
    with Slotd() as s:
        with slotd.Client(port=s.tcp_port) as a, slotd.Client(port=s.tcp_port) as b:
            assert a.stats()["trades"] == 0
            assert b.stats()["trades"] == 0
            assert a.stats()["trades"] == 0   # a was not fenced by b's HELLO


def test_client_queries():
    with Slotd() as s:
        with slotd.Sender(port=s.tcp_port, client="q") as snd:
            for i in range(2500):
                snd.trade("QA", TS0 + i * 10**9, str(100 + i % 10), 1 + i % 3, "B", i)
            for i in range(30):
                snd.trade("QB", TS0 + i, "5", 1, id=i)
        with slotd.Client(port=s.tcp_port, client="reader") as c:
            assert c.stats()["trades"] == 2530
            a = c.symbol("QA")
            assert a["count"] == 2500 and a["first_ts"] == TS0, a
            # paging: many small pages, every trade once, in arrival order
            got = [t["id"] for t in c.trades("QA", page=7)]
            assert got == list(range(2500)), len(got)
            assert [t["id"] for t in c.trades("QA", limit=1234, page=500)] == list(range(1234))
            # bounds as int ns, datetime and RFC 3339
            start = datetime(2026, 1, 1, 0, 0, 10, tzinfo=timezone.utc)
            assert [t["id"] for t in c.trades("QA", start, TS0 + 20 * 10**9)] == list(range(10, 20))
            assert [t["id"] for t in c.trades("QA", "2026-01-01T00:00:10Z",
                                              "2026-01-01T00:00:12Z")] == [10, 11]
            bars = c.bars("QA", "1m", start=TS0, end=TS0 + 120 * 10**9)["bars"]
            assert [b["count"] for b in bars] == [60, 60], bars
            assert c.bars("QA", timedelta(seconds=30), end=TS0 + 60 * 10**9)["bars"][1]["count"] == 30
            top = c.top(1, by="count")["symbols"]
            assert [t["symbol"] for t in top] == ["QA"], top
            kinds = [k["name"] for k in c.schema()["kinds"]]
            assert "trade" in kinds and "option_trade" in kinds, kinds
            for call in (lambda: c.symbol("NOPE"), lambda: c.trades("NOPE")):
                try:
                    call()
                    raise AssertionError("unknown symbol answered")
                except slotd.NotFound as e:
                    assert e.code == "NOT_FOUND"
            try:
                c.top(3, by="mood")
                raise AssertionError("bad query answered")
            except slotd.QueryError as e:
                assert e.code == "BAD_QUERY" and not isinstance(e, slotd.NotFound)
            assert c.delete("QB", TS0, TS0 + 10)["deleted"] == 10
            assert c.symbol("QB")["count"] == 20


def test_readme_quickstart():
    """The README's "Stream your first trades" code runs as printed (port aside)."""
    import contextlib
    import io
    import re
    root = os.path.join(HERE, "..", "..")
    text = open(os.path.join(root, "README.md")).read()
    code = re.search(r"## Stream your first trades.*?```python\n(.*?)```", text, re.S).group(1)
    with Slotd() as s:
        out = io.StringIO()
        cwd = os.getcwd()
        os.chdir(root)                 # the snippet puts proto/python on sys.path
        try:
            with contextlib.redirect_stdout(out):
                exec(code.replace("port=7400", "port=%d" % s.tcp_port), {})
        finally:
            os.chdir(cwd)
        assert "'count': 1" in out.getvalue() and "'vwap_s': '187.25'" in out.getvalue(), out.getvalue()


# -- packaging -----------------------------------------------------------------
def test_pip_install_without_index():
    """The documented install: a venv over Debian's packages, pip with no index."""
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="slotd-pip-")
    try:
        src = os.path.join(tmp, "src")   # a copy: pip builds in the tree it is given
        shutil.copytree(PYDIR, src, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                  "__pycache__"))
        venv = os.path.join(tmp, "v")
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "--no-index",
                        "--no-build-isolation", src], check=True)
        out = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                              "import slotd; print(slotd.__file__, slotd.Sender, slotd.Client)"],
                             cwd=tmp, check=True, capture_output=True, text=True).stdout
        assert os.path.join(venv, "lib") in out, out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    res = Results()
    for fn in (test_pip_install_without_index, test_client_queries, test_default_client_names_do_not_fence, test_values_and_context_manager,
               test_linger_seals_on_the_next_call, test_readme_quickstart, test_bad_trade_gives_up_one_batch,
               test_wrong_token_is_fatal_without_storm, test_timeout_names_refused_connection,
               test_nonblocking_with_selector, test_store_full_then_room, test_not_ready_during_replay,
               test_producer_killed_resumes_from_spool, test_slotd_killed_under_1m_trades):
        res.run(fn)
    res.finish()


if __name__ == "__main__":
    main()
