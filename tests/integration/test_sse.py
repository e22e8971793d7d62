"""GET /subscribe (Server-Sent Events) with a real HTTP client, curl -N.

- Trades stream in while curl watches two symbols: it gets every trade once,
  in order, each event's id the cursor after it.
- curl killed half way; a new curl with Last-Event-ID = the last id it saw
  gets exactly the rest.
- syms=*: every symbol, including one created after subscribing; resume
  by Last-Event-ID (a base file plus what moved since, sse_cursor.h) after
  a disconnect and after a slotd restart gets every trade exactly once,
  across rebases (1,000 symbols: more than one id can place).
- Bad requests: 400 with a code and a message; without credentials 401.
"""
import json
import os
import subprocess
import time

from harness import Results, Slotd, wait_for

SCALE = float(os.environ.get("SLOTD_TEST_SCALE") or 1)
T0 = 1767225600000000000


class Curl:
    """curl -N on /subscribe: parsed events, one at a time."""

    def __init__(self, s, qs, last_id=None):
        cmd = ["curl", "-sN", "http://127.0.0.1:%d/subscribe?%s" % (s.http_port, qs)]
        if last_id:
            cmd[2:2] = ["-H", "Last-Event-ID: " + last_id]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)

    def event(self):
        ev = {}
        for line in self.p.stdout:
            line = line.rstrip("\n")
            if not line:
                if ev:
                    return ev
                continue
            if line.startswith(":"):
                continue
            k, _, v = line.partition(": ")
            ev[k] = v
        raise EOFError("curl ended")

    def close(self):
        self.p.kill()
        self.p.wait()
        self.p.stdout.close()


def send(s, name, trades, batch=500):
    c = s.connect(name)
    seq = c.welcome[1]["last_seq"]
    for i in range(0, len(trades), batch):
        seq += 1
        c.send_batch(seq, trades[i:i + batch])
        assert c.recv() == ["ACK", seq, len(trades[i:i + batch])]
    c.close()


def collect(curl, got, n, last=None):
    """Events into got[sym] until n trades in all; returns the last id."""
    while sum(len(v) for v in got.values()) < n:
        ev = curl.event()
        if ev["event"] == "subscribed":
            continue
        assert ev["event"] == "trades", ev
        d = json.loads(ev["data"])
        got.setdefault(d["symbol"], []).extend(t["id"] for t in d["trades"])
        assert "%s:%d" % (d["symbol"], d["next"]) in ev["id"].split(","), ev
        last = ev["id"]
    return last


def test_watch_and_resume_by_last_event_id():
    n = int(20_000 * SCALE) // 1000 * 1000 or 1000
    trades = [["AB"[i % 2], T0 + i, "%d.25" % (i % 50), "1", "B", i] for i in range(n)]
    with Slotd() as s:
        send(s, "feed", [["A", T0, "1", "1", "S", 10 ** 9]])  # before: not in from=now
        curl = Curl(s, "syms=A,B&from=now")
        ev = curl.event()
        assert ev == {"id": "A:1,B:0", "event": "subscribed", "data": "{}"}, ev
        half = n // 2
        send(s, "feed", trades[:half])
        got = {}
        last = collect(curl, got, half // 2)  # read some, then go away
        curl.close()
        wait_for(lambda: s.metric("subscribers") == 0, what="the SSE subscriber gone")
        send(s, "feed", trades[half:])
        curl = Curl(s, "syms=A,B&from=now", last_id=last)
        ev = curl.event()
        assert ev["event"] == "subscribed" and ev["id"] == last, (ev, last)
        last = collect(curl, got, n)
        assert got["A"] == [i for i in range(n) if i % 2 == 0]
        assert got["B"] == [i for i in range(n) if i % 2 == 1]
        assert last == "A:%d,B:%d" % (1 + n // 2, n // 2), last
        curl.close()


def test_bad_requests():
    with Slotd(extra_args=["--token", "s3cret"]) as s:
        auth = {"Authorization": "Bearer s3cret"}
        for qs, hdr, text in [
            ("", {}, "parameter 'syms' is required"),
            ("syms=*&from=A:1", {}, "with syms=* the cursor is an event id"),
            ("syms=*", {"Last-Event-ID": "A:1"}, "with syms=* the cursor is an event id"),
            ("syms=A", {"Last-Event-ID": "*"}, "needs syms=*"),
            ("syms=A&from=*", {}, "needs syms=*"),
            ("syms=*", {"Last-Event-ID": "*x"}, "a '*' cursor is '*' or '*@'"),
            ("syms=*", {"Last-Event-ID": "*@12ab"}, "a '*' cursor is '*' or '*@'"),
            ("syms=*", {"Last-Event-ID": "*@0123456789ABCDEF"}, "a '*' cursor is '*' or '*@'"),
            ("syms=*", {"Last-Event-ID": "*,"}, "a '*' cursor is '*' or '*@'"),
            ("syms=*", {"Last-Event-ID": "*,A:1,A:2"}, "'A' is named twice"),
            ("syms=*", {"Last-Event-ID": "*,A:-1"}, "position of 'A' is not"),
            ("syms=A,A", {}, "'A' is named twice"),
            ("syms=A&from=A:x", {}, "position of 'A' is not a non-negative integer"),
            ("syms=A&from=B:1", {}, "'B' is not in syms"),
            ("syms=A&gaps=maybe", {}, "parameter 'gaps'"),
            ("syms=A&limit=3", {}, "unknown parameter 'limit'"),
            ("syms=A", {"Last-Event-ID": "A:1,A:2"}, "'A' is named twice"),
            ("syms=A", {"Last-Event-ID": "nonsense"}, "expected sym:position"),
        ]:
            h = dict(auth)
            h.update(hdr)
            status, _, body = s.http_get("/subscribe?" + qs, headers=h)
            doc = json.loads(body)
            assert status == 400 and doc["error"] == "BAD_QUERY" and text in doc["message"], \
                (qs, status, doc)
        os.makedirs(os.path.join(s.data_dir, "sse"), exist_ok=True)
        with open(os.path.join(s.data_dir, "sse", "00000000000000ff.cur"), "w") as f:
            f.write("slotd-sse-base 1 9 00000000\nA:1,B:2,C")  # torn
        for tok, text in [("0123456789abcdef", "is not stored here"),
                          ("00000000000000ff", "is damaged")]:
            h = dict(auth, **{"Last-Event-ID": "*@" + tok + ",A:3"})
            status, _, body = s.http_get("/subscribe?syms=*", headers=h)
            doc = json.loads(body)
            assert status == 400 and doc["error"] == "CURSOR_GONE" and text in doc["message"], \
                (tok, status, doc)
        status, _, body = s.http_get("/subscribe?syms=A")
        assert status == 401, (status, body)
        assert s.metric("subscribers") == 0
        c = s.connect("feed", token="s3cret")  # nothing else affected
        c.send_batch(1, [["A", T0, "1", "1"]])
        assert c.recv() == ["ACK", 1, 1]


def star_collect(curl, got, n, ids, last=None):
    """Events of a syms=* stream into got[sym] until n trades in all;
    every id into ids; returns the last id."""
    while sum(len(v) for v in got.values()) < n:
        ev = curl.event()
        assert ev["id"].startswith("*") and len(ev["id"]) <= 4096, ev
        ids.append(ev["id"])
        if ev["event"] == "subscribed":
            continue
        assert ev["event"] == "trades", ev
        d = json.loads(ev["data"])
        got.setdefault(d["symbol"], []).extend(t["id"] for t in d["trades"])
        last = ev["id"]
    return last


def test_star_sees_every_symbol_and_new_ones():
    with Slotd() as s:
        send(s, "feed", [["A", T0, "1", "1", "S", 10 ** 9], ["B", T0, "1", "1", "S", 10 ** 9]])
        curl = Curl(s, "syms=*&from=now")
        ev = curl.event()
        assert ev["event"] == "subscribed" and ev["id"].startswith("*@"), ev
        assert os.path.exists(os.path.join(s.data_dir, "sse", ev["id"][2:] + ".cur"))
        trades = [["ABC"[i % 3], T0 + i, "2", "1", "B", i] for i in range(300)]
        send(s, "feed", trades)  # C is created by this batch, after the SUB
        got, ids = {}, []
        star_collect(curl, got, len(trades), ids)
        assert got == {sym: [i for i in range(300) if "ABC"[i % 3] == sym] for sym in "ABC"}, got
        curl.close()
        curl = Curl(s, "syms=*&from=start")  # start: everything, base "*"
        ev = curl.event()
        assert ev == {"id": "*", "event": "subscribed", "data": "{}"}, ev
        got = {}
        last = star_collect(curl, got, len(trades) + 2, ids)
        assert sorted(got) == ["A", "B", "C"] and len(got["A"]) == 101, got
        assert last.startswith("*,") and "C:100" in last.split(","), last
        curl.close()


def test_star_resume_after_disconnect_and_restart():
    nsym = 1000  # ~340 moved symbols fill an id: several rebases
    per = max(2, int(6 * SCALE))
    syms = ["S%03d" % k for k in range(nsym)]
    pre = [[y, T0, "1", "1", "S", 10 ** 9] for y in syms[:nsym // 2]]
    rounds = [[[syms[(i * 7 + r) % nsym], T0 + i, "%d.5" % (i % 9), "1", "B", r * 10 ** 6 + i]
               for i in range(nsym * per)] for r in range(3)]
    total = sum(len(t) for t in rounds)
    want = {}
    for t in rounds:
        for tr in t:
            want.setdefault(tr[0], []).append(tr[5])
    with Slotd() as s:
        send(s, "feed", pre)  # before the SUB: not delivered (from=now)
        curl = Curl(s, "syms=*&from=now")
        ev = curl.event()  # subscribed: rounds[0] comes after it
        assert ev["event"] == "subscribed" and ev["id"].startswith("*@"), ev
        got, ids = {}, [ev["id"]]
        send(s, "feed", rounds[0])
        last = star_collect(curl, got, len(rounds[0]) // 2, ids)
        curl.close()  # away half way
        wait_for(lambda: s.metric("subscribers") == 0, what="the SSE subscriber gone")
        send(s, "feed", rounds[1])
        curl = Curl(s, "syms=*&from=now", last_id=last)
        ev = curl.event()
        assert ev["event"] == "subscribed" and ev["id"] == last, (ev, last)
        last = star_collect(curl, got, len(rounds[0]) + len(rounds[1]) // 3, ids)
        curl.close()
        s.restart()  # positions and bases outlive it
        send(s, "feed", rounds[2])
        curl = Curl(s, "syms=*", last_id=last)
        last = star_collect(curl, got, total, ids)
        curl.close()
        bases = {i.split(",")[0] for i in ids}
        assert len(bases) >= 3, bases  # rebased, so ids stayed short
        assert got == want  # every trade once, in order, none of `pre`
        assert s.metric("subscribers") == 0 or wait_for(
            lambda: s.metric("subscribers") == 0, what="the SSE subscriber gone") is None


if __name__ == "__main__":
    r = Results()
    r.run(test_bad_requests)
    r.run(test_watch_and_resume_by_last_event_id)
    r.run(test_star_sees_every_symbol_and_new_ones)
    r.run(test_star_resume_after_disconnect_and_restart)
    r.finish()
