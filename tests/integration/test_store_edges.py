"""Store edge cases end to end (issue #10, points 4-6), against a real slotd:

- an ERR JOURNAL leaves no trace: no phantom symbol, kind or quota, and a
  restart reaches the state the live server had;
- one far-future timestamp cannot erase the store under --retention
  (--max-future refuses it), and bad trades can be deleted (Q "delete" and
  HTTP DELETE, journaled, replayed, authenticated);
- cursor paging never skips a stored row while retention drops pages
  between two pages;
- a store that reached --max-memory keeps acknowledging batches while
  retention frees pages (free-listed pages serve them).
"""
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Results, Slotd  # noqa: E402

TS0 = 1767225600 * 10 ** 9          # 2026-01-01, in the past
Y2100 = 4102444800 * 10 ** 9
SEC = 10 ** 9
BATCH = 200
BASE_SYMS = ["EA", "EB", "EC", "ED"]


def wall_ns():
    return time.time_ns()


def batch_for(seq):
    return [{"sym": BASE_SYMS[i % 4], "ts": TS0 + (seq * BATCH + i) * 1000,
             "px": "100.5", "qty": 1 + i, "side": "B", "id": seq * BATCH + i}
            for i in range(BATCH)]


def option(sym, tid):
    return {"sym": sym, "ts": TS0 + tid, "px": "2.5", "qty": 1, "side": "B", "id": tid,
            "strike": "190", "expiry": TS0 + 86400 * SEC, "right": "C"}


def symbol(c, sym):
    return c.query(7, {"op": "symbol", "sym": sym})


def state(s):
    """Everything a client can see: stats and each symbol's aggregates."""
    c = s.connect("state-%d" % time.time_ns())
    st = c.query(1, {"op": "stats"})[2]
    top = c.query(2, {"op": "top", "top": 1000})[2]
    syms = sorted(x["symbol"] for x in top["symbols"])
    out = {"trades": st["trades"], "symbols": st["symbols"], "per": {}}
    for sym in syms:
        r = symbol(c, sym)[2]
        out["per"][sym] = r
    c.close()
    return out


def test_journal_failure_leaves_no_symbol():
    """ERR JOURNAL for an option_trade batch of new symbols: they do not
    exist afterwards (kind not fixed, --max-symbols not spent), a kind-less
    batch for one is stored as `trade`, and a restart replays to the same
    state. Before the fix the symbols stayed with their kind fixed."""
    limit = 1 << 20

    def cap_file_size():
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]  # kept: raising soft back needs no privilege
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

    with Slotd(preexec=cap_file_size, extra_args=["--max-symbols", "6"]) as s:
        c = s.connect("filler")
        seq = 1
        while True:
            c.send_batch(seq, batch_for(seq))
            r = c.recv()
            if r[0] == "ERR":
                break
            assert r == ["ACK", seq, BATCH], r
            seq += 1
            assert seq < 5000, "the journal never failed"
        assert r[2] == "JOURNAL", r
        # Larger than the failed batch, so it cannot fit either.
        c.send_batch(seq, [option("PHANTOM" if i & 1 else "GHOST", i) for i in range(400)],
                     "option_trade")
        r = c.recv()
        assert r[0] == "ERR" and r[2] == "JOURNAL", r
        assert symbol(c, "PHANTOM")[2] == "NOT_FOUND"
        # Space returns.
        hard = resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE)[1]
        resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
        c.send_batch(seq, [{"sym": "PHANTOM", "ts": TS0 + 5, "px": "10", "qty": 3}])
        assert c.recv() == ["ACK", seq, 1]
        r = symbol(c, "PHANTOM")
        assert r[0] == "R" and r[2]["kind"] == "trade", r
        # 4 + PHANTOM + NEW2 = 6: the GHOST phantom took no quota.
        c.send_batch(seq + 1, [{"sym": "NEW2", "ts": TS0 + 6, "px": "10", "qty": 3}])
        assert c.recv() == ["ACK", seq + 1, 1]
        c.send_batch(seq + 2, [option("GHOST", 3)], "option_trade")
        r = c.recv()
        assert r[0] == "ERR" and r[2] == "SYMBOL_LIMIT", r
        live = state(s)
        c.close()
        assert s.stop() == 0
        s.preexec = None
        s.start()
        assert state(s) == live


def test_far_future_ts_refused():
    """A trade stamped in 2100 is refused (BAD_VALUE, both decoder paths),
    so under --retention it cannot make 20,000 trades of the last minute
    old. Before the fix it was stored and retention erased the rest."""
    with Slotd(extra_args=["--retention", "1h"]) as s:
        c = s.connect("clock")
        now = wall_ns()
        seq = 1
        for b in range(100):
            c.send_batch(seq, [{"sym": "RECENT", "ts": now - 60 * SEC + (b * 200 + i) * 1000,
                                "px": "1", "qty": 1} for i in range(200)])
            assert c.recv() == ["ACK", seq, 200]
            seq += 1
        # Fast path (keys in the usual order) and the general decoder.
        for bad in ({"sym": "RECENT", "ts": Y2100, "px": "1", "qty": 1},
                    {"qty": 1, "px": "1", "ts": Y2100, "sym": "RECENT"},
                    ["RECENT", Y2100, "1", 1]):
            c.send_batch(seq, [{"sym": "RECENT", "ts": now, "px": "1", "qty": 1}, bad])
            r = c.recv()
            assert r[0] == "ERR" and r[2] == "BAD_VALUE" and r[4] == 1, r
            assert "ts" in r[3] and "5m ahead of the wall clock" in r[3], r
        # A little ahead (a fast producer clock) is fine.
        c.send_batch(seq, [{"sym": "RECENT", "ts": wall_ns() + 60 * SEC, "px": "1", "qty": 1}])
        assert c.recv() == ["ACK", seq, 1]
        # A retention pass has run since: nothing was dropped.
        deadline = time.time() + 30
        while s.http_json("/stats")[1]["retention"]["cutoff_ts"] is None:
            assert time.time() < deadline, "no retention pass"
            time.sleep(0.05)
        st = s.http_json("/stats")[1]
        assert st["trades"] == 20001 and st["retention"]["dropped_trades"] == 0, st
    with Slotd(extra_args=["--max-future", "0"]) as s:  # 0: no bound
        c = s.connect("clock")
        c.send_batch(1, [{"sym": "X", "ts": Y2100, "px": "1", "qty": 1}])
        assert c.recv() == ["ACK", 1, 1]


def http(s, method, path, token=None):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=30)
    try:
        headers = {"Authorization": "Bearer " + token} if token else {}
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        body = r.read()
        return r.status, json.loads(body) if body else None
    finally:
        conn.close()


def test_delete():
    """Delete over Q and HTTP: the count back, the rows gone, aggregates
    exact, the token required, and a restart replays the journaled deletes
    to the same state."""
    tok = "s3cret-token"
    with Slotd(extra_args=["--token", tok, "--max-future", "0"]) as s:
        c = s.connect("deleter", token=tok)
        trades = [{"sym": "DEL", "ts": TS0 + i * SEC, "px": str(100 + i % 7), "qty": 1, "id": i}
                  for i in range(1000)]
        trades.append({"sym": "DEL", "ts": Y2100, "px": "999", "qty": 1, "id": 5000})
        c.send_batch(1, trades)
        assert c.recv() == ["ACK", 1, 1001]
        c.send_batch(2, [{"sym": "KEEP", "ts": TS0, "px": "1", "qty": 1}])
        assert c.recv() == ["ACK", 2, 1]
        # The bad trade, over Q.
        r = c.query(3, {"op": "delete", "sym": "DEL", "from": Y2100, "to": Y2100 + 1})
        assert r == ["R", 3, {"symbol": "DEL", "from": Y2100, "to": Y2100 + 1, "deleted": 1}], r
        agg = symbol(c, "DEL")[2]
        assert agg["count"] == 1000 and agg["last_ts"] == TS0 + 999 * SEC, agg
        assert agg["high"] == 106, agg
        # Errors: both bounds needed, an unknown symbol, an empty range.
        r = c.query(4, {"op": "delete", "sym": "DEL", "from": 0})
        assert r[0] == "ERR" and r[2] == "BAD_QUERY", r
        r = c.query(5, {"op": "delete", "sym": "NOPE", "from": 0, "to": 1})
        assert r[0] == "ERR" and r[2] == "NOT_FOUND", r
        # Over HTTP, RFC 3339 bounds: the first 100 s.
        path = "/symbols/DEL/trades?from=2026-01-01T00:00:00Z&to=2026-01-01T00:01:40Z"
        assert http(s, "DELETE", path)[0] == 401
        assert http(s, "DELETE", path, "wrong")[0] == 401
        status, body = http(s, "DELETE", path, tok)
        assert status == 200 and body["deleted"] == 100, (status, body)
        status, body = http(s, "DELETE", "/stats", tok)
        assert status == 405, (status, body)
        agg = symbol(c, "DEL")[2]
        assert agg["count"] == 900 and agg["first_ts"] == TS0 + 100 * SEC, agg
        got = c.query(6, {"op": "trades", "sym": "DEL", "limit": 5})[2]
        assert [t["id"] for t in got["trades"]] == [100, 101, 102, 103, 104], got
        # Ordered with the batches around it on one connection.
        c.send_batch(7, [{"sym": "DEL", "ts": TS0 + 2000 * SEC, "px": "1", "qty": 1, "id": 7000}])
        c.send(["Q", 8, {"op": "delete", "sym": "DEL", "from": TS0 + 2000 * SEC,
                         "to": TS0 + 2001 * SEC}])
        c.send_batch(9, [{"sym": "DEL", "ts": TS0 + 2000 * SEC, "px": "2", "qty": 1, "id": 7001}])
        assert c.recv() == ["ACK", 7, 1]
        assert c.recv()[2]["deleted"] == 1
        assert c.recv() == ["ACK", 9, 1]
        live = state_tok(s, tok)
        assert live["per"]["DEL"]["count"] == 901
        c.close()
        assert s.stop() == 0
        s.start()
        assert state_tok(s, tok) == live


def state_tok(s, tok):
    c = s.connect("state", token=tok)
    st = c.query(1, {"op": "stats"})[2]
    top = c.query(2, {"op": "top", "top": 1000})[2]
    out = {"trades": st["trades"], "symbols": st["symbols"], "per": {}}
    for sym in sorted(x["symbol"] for x in top["symbols"]):
        out["per"][sym] = symbol(c, sym)[2]
    c.close()
    return out


def wait_dropped(s, more_than):
    deadline = time.time() + 30
    while True:
        d = s.http_json("/stats")[1]["retention"]["dropped_trades"]
        if d > more_than:
            return d
        assert time.time() < deadline, "retention dropped nothing"
        time.sleep(0.05)


def all_ids(c, sym):
    out, cursor = [], 0
    while cursor is not None:
        r = c.query(1, {"op": "trades", "sym": sym, "limit": 10000, "cursor": cursor})[2]
        out += [t["id"] for t in r["trades"]]
        cursor = r["next_cursor"]
    return out


def test_cursor_across_retention():
    """Page 1, retention drops pages, page 2 from the cursor: page 2 starts
    at the first stored row after page 1. Before the fix the cursor was an
    offset from the current first page, and every dropped row shifted it."""
    with Slotd(extra_args=["--retention", "5m"]) as s:
        n = 6000
        with s.sender("pager") as snd:
            for i in range(n):
                snd.trade("PG", TS0 + i * SEC // 10, "1", 1, None, i)
            snd.flush()
        c = s.connect("reader")
        d0 = wait_dropped(s, 0)
        r = c.query(2, {"op": "trades", "sym": "PG", "limit": 1000})[2]
        page1 = [t["id"] for t in r["trades"]]
        cursor = r["next_cursor"]
        # Newest moves 2 minutes on: retention drops pages past page 1's end.
        with s.sender("pager") as snd:
            snd.trade("PG", TS0 + 720 * SEC, "1", 1, None, n)
        wait_dropped(s, d0)
        r = c.query(3, {"op": "trades", "sym": "PG", "limit": 1000, "cursor": cursor})[2]
        page2 = [t["id"] for t in r["trades"]]
        stored = all_ids(c, "PG")
        assert stored[0] > page1[-1], (stored[0], page1[-1])  # rows after page 1 were dropped
        expect = [i for i in stored if i > page1[-1]][:1000]
        assert page2 == expect, (page2[:3], expect[:3])


def test_full_store_recovers_under_retention():
    """Once --max-memory was reached, pages retention frees must serve new
    batches: they stay counted in the slab's carved bytes, and reserve used
    to see no room, so every batch needing a page got STORE_FULL for ever
    (live: 2,401 STORE_FULL with 2 MB of 16 MB in use)."""
    syms = ["R%d" % i for i in range(8)]
    size = 1000
    t1 = TS0 + 1000 * SEC

    def batch(first_id, ts0, step):
        # Prices and quantities that vary, ids that jump: pages compact to
        # ~13 bytes a trade (W1-like), not to the few bytes constant fields
        # would take, so the cap is reached within the bounds below.
        return [[syms[i % len(syms)], ts0 + i * step,
                 "%d.%02d" % (100 + (first_id + i) * 7919 % 997, (first_id + i) % 97),
                 1 + (first_id + i) * 31 % 1009, "B", (first_id + i) * 2654435761 % (1 << 40)]
                for i in range(size)]

    with Slotd(extra_args=["--max-memory", "16M", "--retention", "60s"]) as s:
        c = s.connect("filler")
        seq = 1
        c.send_batch(seq, [["R0", t1, "1.5", 1, "B", 0]])
        assert c.recv()[0] == "ACK"
        # Fill to the cap within the horizon (50 s back from t1): nothing drops.
        filled = 0
        while True:
            seq += 1
            c.send_batch(seq, batch(seq * size, t1 - 50 * SEC + filled * 1000, 1000))
            r = c.recv()
            if r[0] != "ACK":
                assert r[0] == "ERR" and r[2] == "STORE_FULL", r
                break
            filled += size
            assert filled < 2000000, "the cap was never reached"
        assert filled > 300000, filled
        c.send_batch(seq, [])  # give the refused seq up, so later ones count
        assert c.recv() == ["ACK", seq, 0]
        # One trade two minutes on moves the horizon past everything (a new
        # symbol's first page, or a trade that fits a tail page's room).
        for i in range(20):
            seq += 1
            c.send_batch(seq, [["T%d" % i if i % 2 else syms[i % 8], t1 + 120 * SEC,
                                "1.5", 1, "B", 10 ** 9 + i]])
            r = c.recv()
            if r[0] == "ACK":
                break
            assert r[0] == "ERR" and r[2] == "STORE_FULL", r
            c.send_batch(seq, [])
            assert c.recv() == ["ACK", seq, 0]
        else:
            raise AssertionError("no room for a single trade (filled %d)" % filled)
        wait_dropped(s, filled // 2)
        # Twice the cap's worth more, time moving forward: retention keeps
        # making room, and the freed pages take the new trades.
        acked, refused, ts = 0, 0, t1 + 121 * SEC
        deadline = time.time() + 60
        seq += 1
        while acked < 2 * filled:
            assert time.time() < deadline, (acked, refused)
            c.send_batch(seq, batch(2 * 10 ** 9 + acked, ts, SEC // 1000))
            r = c.recv()
            if r[0] == "ACK":
                acked += size
                ts += size * SEC // 1000
                seq += 1
            else:  # retryable (the same seq again): retention runs about once a second
                assert r[0] == "ERR" and r[2] == "STORE_FULL", r
                refused += 1
                time.sleep(0.05)
        st = s.http_json("/stats")[1]
        assert st["trades"] < filled, (st["trades"], filled)  # retention, not a bigger cap
        c.close()


if __name__ == "__main__":
    res = Results()
    res.run(test_journal_failure_leaves_no_symbol)
    res.run(test_far_future_ts_refused)
    res.run(test_delete)
    res.run(test_cursor_across_retention)
    res.run(test_full_store_recovers_under_retention)
    res.finish()
