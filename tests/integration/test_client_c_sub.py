"""The C client's subscriptions (slotd_sub_*, driven by tests/client/sub_drive.c)
against a real slotd on loopback (PROTOCOL.md §11):

  - a C subscriber to "*" while trades stream in over 4 connections gets
    exactly the stored trades, in each symbol's order, with the positions
    and final cursor the store's counts; it closes with UNSUB (UNSUBOK)
  - slotd SIGKILLed and restarted mid-stream (the subscriber re-opens from
    its cursor), then the subscriber itself SIGKILLed and restarted from
    the cursor it printed with its work: every trade exactly once,
    compared with the symbols' stored trades (GET /symbols/S/trades)
  - errors, each a code and a message: bad cursor text (SLOTD_EINVAL,
    nothing sent), BAD_SUB for a cursor naming a symbol not subscribed and
    for a symbol twice, CURSOR_GONE after retention (and with gaps: a GAP
    event, then the rest), UNAUTHORIZED without the subscribe perm (and
    for the schema without the query perm: --no-names works), a refused
    connection (SLOTD_EDISCONNECTED)
  - over TLS: every trade; a wrong CA and a TLS client on the plain port
    give SLOTD_ETLS

SLOTD_TEST_SCALE shrinks the trade counts (ASan, TSan, valgrind).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import Results, Slotd, wait_for  # noqa: E402
from test_client_c import BUILD, free_port  # noqa: E402
from test_subscribe import BATCH, SCALE, T0, check_exact, send_all, trade  # noqa: E402
from test_auth import SECRETS, write_auth  # noqa: E402
import test_tls as T  # noqa: E402  (makes the certificates)

DRIVE = os.environ.get("SLOTD_SUB_DRIVE") or os.path.join(BUILD, "tests", "sub_drive")
EINVAL, EUNAUTHORIZED, ETLS = -5001, -5006, -5013
ESUB, ECURSOR_GONE, EDISCONNECTED = -5014, -5015, -5016


class Sub:
    """sub_drive running with its output in a file (a pipe nobody reads
    would stall it, and slotd drops stalled subscribers)."""

    def __init__(self, port, client, *flags, **kw):
        self.out = tempfile.NamedTemporaryFile("w+", prefix="sub_drive.", delete=False)
        args = [DRIVE, "--port", str(port), "--client", client] + list(flags)
        for k, v in kw.items():
            args += ["--" + k.replace("_", "-"), str(v)]
        self.p = subprocess.Popen(args, stdout=self.out)

    def lines(self):
        with open(self.out.name) as f:
            return f.read().splitlines()

    def wait_ready(self):
        wait_for(lambda: "ready" in self.lines() or self.p.poll() is not None, timeout=60,
                 what="SUBOK")
        assert "ready" in self.lines(), self.lines()

    def finish(self, timeout=300):
        assert self.p.wait(timeout) == 0
        lines = self.lines()
        os.unlink(self.out.name)
        return parse(lines)

    def kill(self):
        self.p.kill()
        assert self.p.wait(60) == -signal.SIGKILL
        lines = self.lines()
        os.unlink(self.out.name)
        return lines


def parse(lines):
    """(the final JSON, the trades per symbol as [ts, px, qty, side, id]
    with their positions, the other lines)."""
    result, got, pos, other = None, {}, {}, []
    for line in lines:
        if line.startswith("t "):
            t = json.loads(line[2:])
            v = t["v"]
            got.setdefault(t["sym"], []).append([v["ts"], v["px"], v["qty"], v["side"], v["id"]])
            pos.setdefault(t["sym"], []).append(t["pos"])
        elif line.startswith("{"):
            result = json.loads(line)
        else:
            other.append(line)
    assert result is not None, "no result from sub_drive:\n" + "\n".join(lines[-20:])
    return result, got, pos, other


def run(port, client, *flags, **kw):
    s = Sub(port, client, *flags, **kw)
    return s.finish(120)


def cursor_of(text):
    return {k: int(v) for k, v in (e.rsplit(":", 1) for e in text.split(","))} if text else {}


def stored(s, sym):
    """sym's trades as the store holds them, in order: [ts, id] (GET /symbols/S/trades)."""
    out, cursor = [], 0
    while cursor is not None:
        status, body = s.http_json("/symbols/%s/trades?limit=10000&cursor=%d" % (sym, cursor))
        assert status == 200, (status, body)
        out.extend([t["ts"], t["id"]] for t in body["trades"])
        cursor = body["next_cursor"]
    return out


# ---------------------------------------------------------------------------
def test_star_exact_over_4_connections():
    n, nsym = int(200_000 * SCALE) // BATCH * BATCH, 40
    trades = [trade(i, nsym) for i in range(n)]
    with Slotd() as s:
        sub = Sub(s.tcp_port, "c-star", syms="*", expect=n)
        sub.wait_ready()
        parts = [[t for t in trades if int(t[0][1:]) % 4 == k] for k in range(4)]
        senders = [threading.Thread(target=send_all, args=(s.tcp_port, "feed-%d" % k, parts[k]))
                   for k in range(4)]
        for t in senders:
            t.start()
        res, got, pos, other = sub.finish()
        for t in senders:
            t.join()
        assert res["rc"] == 0 and res["trades"] == n and other == ["ready"], (res, other[:5])
        check_exact(got, trades)
        for sym, p in pos.items():
            assert p == list(range(len(p))), sym   # no deletes: every position known, in order
        counts = {sym: len(v) for sym, v in got.items()}
        assert cursor_of(res["cursor"]) == counts
        # closed with UNSUB: the subscription is gone
        wait_for(lambda: s.metric("subscribers") == 0, what="subscriber gone")
        assert s.metric("subscriber_trades_total") == n
        # from the cursor: nothing more; from "start": all again
        res, got2, _, _ = run(s.tcp_port, "c-again", syms="*", idle_ms=300,
                              **{"from": res["cursor"]})
        assert res["rc"] == 0 and res["trades"] == 0, res
        res, got2, _, _ = run(s.tcp_port, "c-start", syms="S01,S02", **{"from": "start",
                                                                       "expect": 2 * n // nsym})
        assert res["rc"] == 0 and got2 == {k: got[k] for k in ("S01", "S02")}, res


def received(sub):
    with open(sub.out.name) as f:
        return sum(1 for x in f if x.startswith("t "))


def test_resume_after_sigkills_exactly_once():
    n, nsym = int(300_000 * SCALE) // BATCH // 3 * 3 * BATCH, 16
    trades = [trade(i, nsym) for i in range(n)]
    third = [trades[k * n // 3:(k + 1) * n // 3] for k in range(3)]
    tcp, http = free_port(), free_port()
    args = ["--listen", "127.0.0.1:%d" % tcp, "--http", "127.0.0.1:%d" % http,
            "--checkpoint-bytes", "256K"]

    def sending(name, part):
        t = threading.Thread(target=send_all, args=(tcp, name, part))
        t.start()
        return t

    with Slotd(extra_args=args) as s:
        stats = lambda: s.http_json("/stats")[1]["trades"]  # noqa: E731
        sub = Sub(tcp, "c-resume", "--print-cursor", syms="*", expect=n, reconnect_ms=120000,
                  **{"from": "start"})
        sub.wait_ready()
        # the first third: slotd SIGKILLed under it, the subscriber re-opens
        # from its cursor by itself
        sender = sending("feed-a", third[0])
        wait_for(lambda: stats() >= n // 6, timeout=120, what="a sixth stored")
        s.kill()
        time.sleep(0.2)
        s.start()
        sender.join()
        # the second: the subscriber SIGKILLed under it (it expects n trades,
        # so it cannot have finished), then a new process resumes from the
        # cursor it printed after the last trades it printed
        sender = sending("feed-b", third[1])
        wait_for(lambda: received(sub) >= n // 2 or not sender.is_alive(), timeout=120,
                 what="half received")
        lines = sub.kill()
        sender.join()
        last = max(i for i, x in enumerate(lines) if x.startswith("c "))
        kept, cursor = lines[:last], lines[last][2:]
        reopens = [x for x in kept if x.startswith("reopen ")]
        assert len(reopens) == 1, reopens
        before = sum(1 for x in kept if x.startswith("t "))
        assert n // 6 <= before <= n * 2 // 3, before
        sub = Sub(tcp, "c-resume", syms="*", expect=n - before, **{"from": cursor})
        sub.wait_ready()
        sender = sending("feed-c", third[2])
        res, got, _, _ = sub.finish()
        sender.join()
        assert res["rc"] == 0 and res["trades"] == n - before, res
        _, got1, _, _ = parse(kept + ['{"rc": 0}'])
        for sym, ts in got.items():
            got1.setdefault(sym, []).extend(ts)
        assert stats() == n
        check_exact(got1, trades)
        # ... which is what the store holds, symbol by symbol
        for sym in sorted(got1)[:4]:
            assert [[t[0], t[4]] for t in got1[sym]] == stored(s, sym), sym
        print("  %d trades; slotd restarted (%s...), the subscriber killed at %d and resumed"
              % (n, reopens[0][:30], before))


def test_errors():
    with Slotd(extra_args=["--retention", "10m"]) as s:
        # client-side: bad cursor text, nothing sent
        res, *_ = run(s.tcp_port, "c-bad", syms="A", **{"from": "A:x"})
        assert res["rc"] == EINVAL and "position is not a number" in res["err"]["message"], res
        # the server's BAD_SUB, with its message
        res, *_ = run(s.tcp_port, "c-bad", syms="A", **{"from": "B:3"})
        assert (res["rc"], res["err"]["wire_code"]) == (ESUB, "BAD_SUB"), res
        assert res["err"]["message"] == "from: 'B' is not in syms", res
        res, *_ = run(s.tcp_port, "c-bad", syms="A,A")
        assert res["rc"] == ESUB and "'A' is named twice" in res["err"]["message"], res
        # an unknown flag of the driver
        assert subprocess.run([DRIVE, "--client", "x", "--colour", "red"],
                              capture_output=True).returncode == 2
        # CURSOR_GONE after retention; with gaps: GAP, then the rest
        nold = int(20_000 * SCALE) // BATCH * BATCH or BATCH
        old = [["OLD", T0 + i, "1.5", "1", "B", i] for i in range(nold)]
        new = [["OLD", T0 + 3_600_000_000_000 + i, "2.5", "1", "S", nold + i] for i in range(BATCH)]
        send_all(s.tcp_port, "feed", old + new)
        wait_for(lambda: s.http_json("/stats")[1]["trades"] < nold + BATCH, what="retention")
        kept = s.http_json("/symbols/OLD")[1]["count"]
        first = nold + BATCH - kept
        res, got, _, _ = run(s.tcp_port, "c-gone", syms="OLD", idle_ms=2000, **{"from": "OLD:0"})
        assert (res["rc"], res["err"]["wire_code"]) == (ECURSOR_GONE, "CURSOR_GONE"), res
        assert "from position 0 to %d" % first in res["err"]["message"], res
        assert got == {} and res["cursor"] == "OLD:0", res
        res, got, _, other = run(s.tcp_port, "c-gap", "--gaps", syms="OLD", expect=kept,
                                 **{"from": "OLD:0"})
        assert res["rc"] == 0 and "gap OLD 0 %d" % first in other, (res, other)
        assert [t[4] for t in got["OLD"]] == list(range(first, nold + BATCH))
        assert res["cursor"] == "OLD:%d" % (nold + BATCH), res
    # no server there
    res, *_ = run(free_port(), "c-none", syms="*", timeout=2000)
    assert res["rc"] == EDISCONNECTED and "refused" in res["err"]["message"], res


def test_perms():
    d = Slotd()
    path = os.path.join(d.data_dir, "auth")
    write_auth(path, ["reader", "watcher"])  # query only; subscribe only
    d.extra_args = ["--auth-file", path]
    with d as s:
        res, *_ = run(s.tcp_port, "reader", syms="*", token=SECRETS["reader"])
        assert (res["rc"], res["err"]["wire_code"]) == (EUNAUTHORIZED, "UNAUTHORIZED"), res
        assert "subscribe" in res["err"]["message"], res
        # subscribe alone: the schema (a query) is refused, --no-names works
        res, *_ = run(s.tcp_port, "watcher", syms="*", token=SECRETS["watcher"])
        assert res["rc"] == EUNAUTHORIZED, res
        res, *_ = run(s.tcp_port, "watcher", "--no-names", syms="*", token=SECRETS["watcher"],
                      idle_ms=200)
        assert res["rc"] == 0, res


def test_tls():
    n = int(20_000 * SCALE) // BATCH * BATCH or BATCH
    trades = [trade(i, 5) for i in range(n)]
    with Slotd(T.TLS_ARGS) as s:
        sub = Sub(s.tls_port, "c-tls", "--tls", syms="*", expect=n, tls_ca=T.p("ca.pem"))
        sub.wait_ready()
        send_all(s.tcp_port, "feed", trades)
        res, got, _, _ = sub.finish()
        assert res["rc"] == 0 and res["trades"] == n, res
        check_exact(got, trades)
        res, *_ = run(s.tls_port, "c-tls-other", "--tls", syms="*",
                      tls_ca=T.p("other-ca.pem"))
        assert res["rc"] == ETLS and "certificate" in res["err"]["message"], res
        res, *_ = run(s.tcp_port, "c-tls-plain", "--tls", syms="*", tls_ca=T.p("ca.pem"),
                      timeout=5000)
        assert res["rc"] == ETLS, res
        print("  TLS client on the plain port: %s" % res["err"]["message"])


if __name__ == "__main__":
    r = Results()
    r.run(test_errors)
    r.run(test_perms)
    r.run(test_tls)
    r.run(test_star_exact_over_4_connections)
    r.run(test_resume_after_sigkills_exactly_once)
    r.finish()
