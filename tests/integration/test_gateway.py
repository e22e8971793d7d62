"""The gateway (slotd --gateway, issue #16) end to end: a client speaks the
TCP protocol to the gateway, which cuts each batch per partition and
produces it to librdkafka's mock cluster (tests/kafka/mockcluster, its own
process); two Kafka-fed nodes own the even and the odd partitions.

- every acknowledged trade is held exactly once, by the node that owns its
  symbol, in the order it was sent;
- a bad trade gets the same ERR from the gateway as from a TCP-fed slotd
  (and so do the seq rules: BLOCKED behind it), and nothing of it reaches
  Kafka;
- SIGKILL the gateway mid-stream, several times: after each restart WELCOME
  last_seq is at most what was sent (and exactly what was acknowledged when
  the gateway was idle), the client resends the rest, every trade is held
  exactly once;
- a gateway that lost the seq records (another seq topic) sends resent
  batches again: the nodes skip them (per client and partition);
- a client's batches are pipelined: one whose parts are all in Kafka is
  answered ERR behind an earlier one that failed, and the resends of both
  leave every trade held once.
"""
import json
import os
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(__file__))
from harness import Results, Slotd, send_batches, wait_for  # noqa: E402
from test_kafka import (MockCluster, TS0, all_trades_exactly_once, frame, kstats,  # noqa: E402
                        node, partition_of, produce, symbol_view, workload)
from test_auth import line  # noqa: E402

PARTS = 4


def gateway(mc, extra=()):
    return Slotd(["--gateway", "--kafka-brokers", mc.bootstrap, "--kafka-topic", mc.topic,
                  "--kafka-conf", "log_level=3"] + list(extra))


def cluster():
    """The mock cluster with the trades topic and the gateway's seq topic."""
    mc = MockCluster(partitions=PARTS)
    mc.command("topic %s.seqs 2" % mc.topic)
    return mc


def gstats(gw):
    status, body = gw.http_json("/stats")
    assert status == 200, body
    return body["gateway"]


def trades_stored(nodes):
    return sum(p["trades"] for s in nodes for p in kstats(s)["partitions"])


def offsets(nodes):
    """Records each node passed (applied or skipped), all its partitions."""
    return sum(p["next_offset"] for s in nodes for p in kstats(s)["partitions"])


def skipped(nodes):
    """Records the nodes skipped as resends (same client and seq)."""
    return sum(p["skipped_duplicates"] for s in nodes for p in kstats(s)["partitions"])


def check_exactly_once(even, odd, trades):
    """Each node holds exactly the trades of its symbols, each once, in order."""
    for i, s in enumerate((even, odd)):
        mine = [t for t in trades if partition_of(t["sym"], PARTS) % 2 == i]
        assert mine
        all_trades_exactly_once(s, mine)
        assert sum(p["trades"] for p in kstats(s)["partitions"]) == len(mine)


def batch_of(trades, size):
    return lambda seq: trades[(seq - 1) * size:seq * size]


# ---- tests ---------------------------------------------------------------------

def test_acked_trades_stored_once():
    """Through the official Python client: 60 batches of 100 trades over 40
    symbols; each batch becomes one record per partition it touches."""
    trades = workload(6000, seed=21)
    with cluster() as mc:
        with gateway(mc) as gw, node(mc, "0/2") as even, node(mc, "1/2") as odd:
            send_batches(gw, "feed", 1, 60, batch_of(trades, 100))
            g = gstats(gw)
            assert g["batches_acked"] == 60 and g["batches_failed"] == 0, g
            parts = sum(len({partition_of(t["sym"], PARTS) for t in trades[i:i + 100]})
                        for i in range(0, 6000, 100))
            assert g["records_produced"] == parts, (g, parts)
            wait_for(lambda: offsets([even, odd]) == parts, 60, "every part consumed")
            check_exactly_once(even, odd, trades)
            assert skipped([even, odd]) == 0
            assert all(p["bad_records"] == 0 for s in (even, odd) for p in kstats(s)["partitions"])
            wait_for(lambda: gstats(gw)["seq_records_written"] == 60, 30, "seq records")
            gw.restart()  # graceful: every seq record is out; last_seq is exact
            c = gw.connect("feed")
            assert c.welcome[1]["last_seq"] == 60, c.welcome
            c.close()
            assert gw.stop() == 0  # a clean exit (under ASan: no leak)


def bad_exchange(s):
    """The replies of one server to bad batches and the seq rules around them."""
    good = [{"sym": "G%d" % i, "ts": TS0 + i, "px": "10.5", "qty": i + 1, "id": i}
            for i in range(8)]
    bad = [
        good[:2] + [{"sym": "G9", "ts": TS0, "px": "1", "qty": -1}],         # BAD_VALUE, index 2
        good[:1] + [{"sym": "G9", "ts": TS0, "px": "1", "qty": 1, "x": 1}],  # UNKNOWN_FIELD
        [{"ts": TS0, "px": "1", "qty": 1}],                                  # MISSING_FIELD
        [{"sym": "", "ts": TS0, "px": "1", "qty": 1}],                       # BAD_SYMBOL
        [["G1", TS0, "1.123456789", 1]],                                     # BAD_VALUE, array form
    ]
    c = s.connect("feed")
    out = []
    for b in bad:
        c.send_batch(1, b)
        out.append(c.recv())
    c.send_batch(2, good)  # pipelined behind refused seq 1: BLOCKED
    out.append(c.recv())
    c.send(["T", 0, good])  # seq 0: BAD_MESSAGE
    out.append(c.recv())
    c.send_batch(1, good)  # the corrected seq 1, then 2
    out.append(c.recv())
    c.send_batch(2, good[:3])
    out.append(c.recv())
    c.send_batch(2, good[:3])  # a resend: ACK 0
    out.append(c.recv())
    c.close()
    return out


def test_bad_trade_same_err_nothing_produced():
    with cluster() as mc:
        with gateway(mc) as gw, Slotd() as tcp, node(mc, "0/2") as even, node(mc, "1/2") as odd:
            want, got = bad_exchange(tcp), bad_exchange(gw)
            assert got == want, (got, want)
            codes = [r[2] for r in got[:7]]
            assert codes == ["BAD_VALUE", "UNKNOWN_FIELD", "MISSING_FIELD", "BAD_SYMBOL",
                             "BAD_VALUE", "BLOCKED", "BAD_MESSAGE"], codes
            assert got[7:] == [["ACK", 1, 8], ["ACK", 2, 3], ["ACK", 2, 0]], got
            # Only the two good batches reached Kafka: offsets are dense, so a
            # record of a bad batch would show as one more offset.
            syms = ["G%d" % i for i in range(8)]
            parts = len({partition_of(x, PARTS) for x in syms}) + \
                len({partition_of(x, PARTS) for x in syms[:3]})
            assert gstats(gw)["records_produced"] == parts
            wait_for(lambda: trades_stored([even, odd]) == 11, 60, "the good batches")
            assert offsets([even, odd]) == parts, (offsets([even, odd]), parts)
            # A gateway stores no trades: subscriptions are refused, clearly,
            # over TCP and HTTP, and the connection goes on.
            c = gw.connect("sub")
            c.send(["SUB", 7, {"syms": "*", "from": "start"}])
            r = c.recv()
            assert r[:3] == ["ERR", 7, "BAD_SUB"] and "gateway" in r[3], r
            c.send_batch(1, [{"sym": "G1", "ts": TS0, "px": "1", "qty": 1}])
            assert c.recv() == ["ACK", 1, 1]
            c.close()
            st, body = gw.http_json("/subscribe?syms=G1&from=start")
            assert st == 400 and body["error"] == "BAD_SUB" and "gateway" in body["message"], body


def stream(gw, name, first, last, acked, sent, size, batch, window=8, hold_at=None, held=None):
    """Pipeline batches first..last (window in flight) until all are
    acknowledged or the connection dies; acked/sent get the seqs. With
    hold_at: once that many are acknowledged, set `held` and send no more
    (the gateway is killed meanwhile: the batches still in flight are the
    point), then wait for the connection to die."""
    try:
        c = gw.connect(name)
        seq, pending = first, []
        while pending or seq <= last:
            holding = hold_at is not None and len(acked) >= hold_at
            if holding:
                held.set()
            while len(pending) < window and seq <= last and not holding:
                c.send_batch(seq, batch(seq))
                sent.append(seq)
                pending.append(seq)
                seq += 1
            r = c.recv()  # EOFError once the gateway is gone
            assert r == ["ACK", pending[0], size], r
            acked.append(pending.pop(0))
        c.close()
    except (EOFError, ConnectionResetError, BrokenPipeError, OSError):
        return


def test_sigkill_gateway_resume():
    """SIGKILL the gateway three times while a client streams (once when it
    is idle: last_seq is then exactly the last acknowledged seq); after each
    restart the client resends everything above WELCOME last_seq; in the end
    the nodes hold every trade exactly once."""
    size, batches = 50, 160
    trades = workload(size * batches, seed=22)
    batch = batch_of(trades, size)
    with cluster() as mc:
        with gateway(mc) as gw, node(mc, "0/2") as even, node(mc, "1/2") as odd:
            first = 1
            for rnd, idle in enumerate((False, True, False)):
                acked, sent, held = [], [], threading.Event()
                upto = first + 19 if idle else batches
                t = threading.Thread(target=stream, args=(gw, "feed", first, upto, acked, sent,
                                                          size, batch),
                                     kwargs={} if idle else {"hold_at": 15, "held": held})
                t.start()
                if idle:  # every seq record delivered before the kill
                    t.join(120)
                    assert acked and acked[-1] == upto, acked[-3:]
                    wait_for(lambda: gstats(gw)["seq_records_written"] ==
                             gstats(gw)["batches_acked"], 30, "seq records")
                else:  # killed with up to 7 batches in flight, never after the last
                    assert held.wait(60), acked[-3:]
                gw.kill()
                t.join(60)
                assert not t.is_alive()
                gw.start()
                c = gw.connect("feed")
                last = c.welcome[1]["last_seq"]
                c.close()
                assert first - 1 <= last <= max(sent), (first, last, max(sent))
                if idle:
                    assert last == upto, (last, upto)
                print("  round %d: sent %d..%d, acked up to %s, last_seq %d" %
                      (rnd, first, max(sent), acked[-1] if acked else None, last))
                first = last + 1
            if first <= batches:
                acked, sent = [], []
                stream(gw, "feed", first, batches, acked, sent, size, batch)
                assert acked[-1] == batches, acked[-3:]
            wait_for(lambda: trades_stored([even, odd]) >= len(trades), 90, "every trade")
            check_exactly_once(even, odd, trades)
            dups = skipped([even, odd])
            print("  resent parts the nodes skipped: %d" % dups)


def test_lost_seq_records_resend_skipped():
    """A gateway whose seq topic lacks the client's records (as after a crash
    between the parts' acknowledgement and the seq record) says last_seq 0;
    the client's resend reaches Kafka again and the nodes skip every part."""
    trades = workload(1000, seed=23)
    with cluster() as mc:
        mc.command("topic other.seqs 1")
        with node(mc, "0/2") as even, node(mc, "1/2") as odd:
            with gateway(mc) as gw:
                send_batches(gw, "feed", 1, 10, batch_of(trades, 100))
                parts = gstats(gw)["records_produced"]
            with gateway(mc, ["--gateway-seq-topic", "other.seqs"]) as gw2:
                c = gw2.connect("feed")
                assert c.welcome[1]["last_seq"] == 0, c.welcome
                c.close()
                send_batches(gw2, "feed", 1, 10, batch_of(trades, 100))
                assert gstats(gw2)["records_produced"] == parts
            wait_for(lambda: offsets([even, odd]) == 2 * parts, 60, "every record")
            dups = skipped([even, odd])
            assert dups == parts, (dups, parts)
            check_exactly_once(even, odd, trades)


def test_kafka_failure_err_then_resend():
    """Brokers down: the batch in Kafka times out (message.timeout.ms) and
    the client gets ERR JOURNAL (retryable) for it and for the batches
    queued behind it, BLOCKED for a later one; once the brokers are back the
    resends are acknowledged and every trade is held exactly once."""
    trades = workload(700, seed=25)
    batch = batch_of(trades, 100)
    with cluster() as mc:
        with gateway(mc, ["--kafka-conf", "message.timeout.ms=1500", "--kafka-conf",
                          "reconnect.backoff.max.ms=200"]) as gw, \
                node(mc, "0/2") as even, node(mc, "1/2") as odd:
            send_batches(gw, "feed", 1, 2, batch)
            for b in (1, 2, 3):
                mc.command("down %d" % b)
            c = gw.connect("feed")
            for seq in (3, 4, 5):
                c.send_batch(seq, batch(seq))
            replies = [c.recv() for _ in range(3)]
            assert [r[:3] for r in replies] == [["ERR", q, "JOURNAL"] for q in (3, 4, 5)], replies
            c.send_batch(6, batch(6))
            r = c.recv()
            assert r[:3] == ["ERR", 6, "BLOCKED"], r
            for b in (1, 2, 3):
                mc.command("up %d" % b)
            failed = 3
            for seq in (3, 4, 5, 6, 7):  # retryable: resend until acknowledged
                for _ in range(30):
                    c.send_batch(seq, batch(seq))
                    r = c.recv()
                    if r[:3] != ["ERR", seq, "JOURNAL"]:
                        break
                    failed += 1  # the producer still reconnecting
                assert r == ["ACK", seq, 100], r
            c.close()
            g = gstats(gw)
            assert g["batches_failed"] == failed and g["batches_acked"] == 7, (g, failed)
            wait_for(lambda: trades_stored([even, odd]) >= len(trades), 60, "every trade")
            check_exactly_once(even, odd, trades)
            assert gw.stop() == 0  # nothing of the failed batches leaked (ASan)


def test_later_batch_fails_behind_a_failed_one():
    """Pipelining (server/gateway.h, rule 2): batch 1 has a trade in a
    partition without a leader, batch 2 none; both are in flight at once.
    Batch 2's parts are all in Kafka, yet it is answered ERR behind batch
    1's time-out, in order; the resends of both leave every trade held
    exactly once (batch 2's parts skipped as duplicates, batch 1's stalled
    part applied)."""
    trades = workload(400, seed=31)
    dead = PARTS - 1
    one = trades[:200]
    two = [t for t in trades[200:] if partition_of(t["sym"], PARTS) != dead]
    assert any(partition_of(t["sym"], PARTS) == dead for t in one)
    want = one + two
    with cluster() as mc:
        with gateway(mc, ["--kafka-conf", "message.timeout.ms=1500"]) as gw, \
                node(mc, "0/2") as even, node(mc, "1/2") as odd:
            wait_for(lambda: gw.http_get("/readyz")[0] == 200, 30, "gateway ready")
            mc.command("leader %s %d -1" % (mc.topic, dead))
            c = gw.connect("feed")
            c.send_batch(1, one)
            c.send_batch(2, two)
            r1, r2 = c.recv(), c.recv()
            assert r1[:3] == ["ERR", 1, "JOURNAL"], r1
            assert r2[:3] == ["ERR", 2, "JOURNAL"] and "earlier batch" in r2[3], r2
            parts_two = len({partition_of(t["sym"], PARTS) for t in two})
            # batch 1's parts but the dead one, and all of batch 2's, are in Kafka
            wait_for(lambda: offsets([even, odd]) == PARTS - 1 + parts_two, 60, "the parts")
            mc.command("leader %s %d 1" % (mc.topic, dead))
            for seq, b in ((1, one), (2, two)):  # retryable: resend until acknowledged
                for _ in range(30):
                    c.send_batch(seq, b)
                    r = c.recv()
                    if r[:3] != ["ERR", seq, "JOURNAL"]:
                        break
                assert r == ["ACK", seq, len(b)], r
            c.close()
            wait_for(lambda: trades_stored([even, odd]) == len(want), 60, "every trade")
            check_exactly_once(even, odd, want)
            assert skipped([even, odd]) >= PARTS - 1 + parts_two  # more if a resend was retried


def top_key(by):
    from decimal import Decimal
    return lambda e: (-(e["count"] if by == "count" else Decimal(e[by + "_s"])), e["symbol"])


def top_canon(answer, by):
    """A top answer ordered by value, ties by symbol name (how the gateway
    breaks them: a single node breaks them by arrival order)."""
    return dict(answer, symbols=sorted(answer["symbols"], key=top_key(by)))


def check_top(cg, ct, n):
    for by in ("count", "volume", "notional"):
        g = cg.query(7, {"op": "top", "top": n, "by": by})
        t = ct.query(7, {"op": "top", "top": n, "by": by})
        assert g[0] == "R" and g[1] == 7, g
        assert g[2] == top_canon(g[2], by), "merged in order"
        assert g[2] == top_canon(t[2], by), (by, n)


def http_body(s, path):
    status, _, body = s.http_get(path)
    body = json.loads(body)
    body.pop("pages", None)  # the layout (how trades were batched), not the data
    return status, body


def test_queries_routed_with_failover():
    """symbol, trades, bars and top through the gateway, over TCP and HTTP,
    answer exactly like a TCP-fed slotd given the same trades (top: ties in
    symbol order); /stats and /metrics list every node and the sum; with a
    replica of the even partitions, killing one even node changes nothing;
    with both gone, even symbols get NOT_READY, odd ones still answer, top
    says partial with the even partitions, /readyz is 503."""
    trades = workload(3000, seed=26)
    syms = sorted({t["sym"] for t in trades})
    with cluster() as mc:
        ea, eb, odd = node(mc, "0/2"), node(mc, "0/2"), node(mc, "1/2")
        with ea, eb, odd, Slotd() as tcp:
            # two from flags, one from a file by DNS name
            nodes_file = os.path.join(tcp.data_dir, "nodes")
            with open(nodes_file, "w") as f:
                f.write("# the odd partitions\n\n  1/2@localhost:%d  # a name\n" % odd.tcp_port)
            where = ["--gateway-node", "0/2@127.0.0.1:%d" % ea.tcp_port,
                     "--gateway-node", "0/2@127.0.0.1:%d" % eb.tcp_port,
                     "--gateway-nodes-file", nodes_file]
            with gateway(mc, where) as gw:
                send_batches(gw, "feed", 1, 30, batch_of(trades, 100))
                send_batches(tcp, "feed", 1, 30, batch_of(trades, 100))
                for s, side in ((ea, 0), (eb, 0), (odd, 1)):  # eb holds what ea does
                    want = sum(partition_of(t["sym"], PARTS) % 2 == side for t in trades)
                    wait_for(lambda: trades_stored([s]) == want, 60, "a node caught up")
                wait_for(lambda: gw.logs().count("gateway_node_up") == 3, 30, "node sessions")
                assert gw.http_json("/readyz")[0] == 200
                cg, ct = gw.connect("q"), tcp.connect("q")
                for sym in syms:
                    assert symbol_view(cg, sym) == symbol_view(ct, sym), sym
                for n in (5, 1000):
                    check_top(cg, ct, n)
                # HTTP: the node's JSON bodies, top merged
                for sym in syms[:5]:
                    for path in ("/symbols/%s", "/symbols/%s/trades?limit=50",
                                 "/symbols/%s/bars?interval=1s"):
                        assert http_body(gw, path % sym) == http_body(tcp, path % sym), path
                assert http_body(gw, "/symbols/NOPE")[0] == 404
                for by in ("count", "notional"):
                    st, g = http_body(gw, "/symbols?top=7&by=" + by)
                    st2, t = http_body(tcp, "/symbols?top=7&by=" + by)
                    assert st == st2 == 200 and g == top_canon(t, by), (g, t)
                st, body = http_body(gw, "/export")
                assert st == 501 and body["error"] == "NOT_SUPPORTED", body
                # /stats: every node, and the sum over them
                st, body = http_body(gw, "/stats")
                cl = body["cluster"]
                assert st == 200 and cl["partial"] is False and cl["missing_partitions"] == []
                assert [x["up"] for x in cl["nodes"]] == [True] * 3, cl
                per = [x["stats"]["trades"] for x in cl["nodes"]]
                assert per == [trades_stored([ea]), trades_stored([eb]), trades_stored([odd])]
                assert cl["sum"]["trades"] == sum(per) and cl["sum"]["nodes_up"] == 3, cl
                r = cg.query(3, {"op": "stats"})
                assert r[0] == "R" and r[2]["sum"]["trades"] == sum(per), r
                _, _, m = gw.http_get("/metrics")
                m = m.decode()
                assert "slotd_gateway_cluster_trades %d\n" % sum(per) in m
                assert 'slotd_gateway_node_trades{node="1/2@localhost:%d"} %d\n' % (
                    odd.tcp_port, per[2]) in m
                assert "slotd_gateway_produce_seconds_count 30\n" in m, m
                assert "slotd_gateway_partitions_missing 0\n" in m
                even = [x for x in syms if partition_of(x, PARTS) % 2 == 0]
                odds = [x for x in syms if partition_of(x, PARTS) % 2 == 1]
                assert even and odds
                ea.kill()  # queries go to the other replica
                for sym in even:
                    assert symbol_view(cg, sym) == symbol_view(ct, sym), sym
                check_top(cg, ct, 1000)
                eb.kill()  # no replica of the even partitions left
                r = cg.query(5, {"op": "symbol", "sym": even[0]})
                assert r[0] == "ERR" and r[1] == 5 and r[2] == "NOT_READY", r
                assert symbol_view(cg, odds[0]) == symbol_view(ct, odds[0])
                r = cg.query(6, {"op": "top", "top": 1000})
                want = top_canon(ct.query(6, {"op": "top", "top": 1000})[2], "count")
                want["symbols"] = [x for x in want["symbols"] if x["symbol"] in odds]
                down = r[2].pop("down_nodes")  # the nodes of the missing partitions, and why
                assert r[2] == dict(want, partial=True, missing_partitions=[0, 2]), r
                assert sorted(d["node"] for d in down) == sorted(
                    "0/2@127.0.0.1:%d" % s.tcp_port for s in (ea, eb)), down
                assert all(d["error"] for d in down), down
                st, body = http_body(gw, "/symbols?top=3")
                assert st == 200 and body["partial"] is True, body
                st, body = http_body(gw, "/stats")
                cl = body["cluster"]
                assert cl["partial"] is True and cl["missing_partitions"] == [0, 2], cl
                assert [x["up"] for x in cl["nodes"]] == [False, False, True], cl
                assert cl["nodes"][0]["error"], cl
                st, body = gw.http_json("/readyz")
                assert st == 503 and "partition 0" in body["reason"], body
                cg.close()
                ct.close()
                assert gw.stop() == 0


def test_bad_nodes_file_refused():
    """A --gateway-nodes-file that cannot be read, or with a line that is not
    I/N@HOST:PORT, stops the gateway at start, naming the file and line."""
    import subprocess
    import tempfile
    from harness import SLOTD_BIN
    with tempfile.TemporaryDirectory() as d:
        bad = os.path.join(d, "nodes")
        with open(bad, "w") as f:
            f.write("0/2@127.0.0.1:7400\n2/2@h:1\n")
        for path, what in ((bad, 'gateway_nodes_file_bad_line file=%s line="2/2@h:1"' % bad),
                           (os.path.join(d, "none"), "gateway_nodes_file_unreadable")):
            p = subprocess.run([SLOTD_BIN, "--listen", "127.0.0.1:0", "--http", "off",
                                "--gateway", "--kafka-brokers", "127.0.0.1:1", "--kafka-topic",
                                "t", "--gateway-nodes-file", path],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            err = p.stderr.decode()
            assert p.returncode != 0 and what in err, (p.returncode, err)


def test_not_ready_until_seq_topic_read():
    """While the brokers are down the gateway cannot read its seq topic: it
    is not ready (/readyz says why) and HELLO gets NOT_READY; once they are
    back it reads the topic and WELCOME has the client's last_seq. (The mock
    cluster creates a topic a client asks about, so a missing seq topic
    cannot be shown with it.)"""
    trades = workload(200, seed=24)
    with cluster() as mc:
        with gateway(mc) as gw:
            send_batches(gw, "feed", 1, 2, batch_of(trades, 100))
        for b in (1, 2, 3):
            mc.command("down %d" % b)
        gw = gateway(mc)
        gw.start(wait_ready=False)
        try:
            status, body = gw.http_json("/readyz")
            assert status == 503 and body["status"] == "not_ready", body
            c = gw.connect(hello=False)
            c.send(["HELLO", {"client": "feed"}])
            r = c.recv()
            assert r[0] == "ERR" and r[2] == "NOT_READY", r
            for b in (1, 2, 3):
                mc.command("up %d" % b)
            gw.wait_ready(60)
            c = gw.connect("feed")
            assert c.welcome[1]["last_seq"] == 2, c.welcome
            c.close()
        except BaseException:
            gw.__exit__(*sys.exc_info())
            raise
        gw.__exit__(None, None, None)


def cluster_stats(gw):
    status, body = gw.http_json("/stats")
    assert status == 200, body
    return body["cluster"]


def behind_of(gw):
    """{node: {partition: records}} of the gateway's /stats."""
    out = {}
    for b in cluster_stats(gw)["behind"]:
        out.setdefault(b["node"], {})[b["partition"]] = b["records"]
    return out


def test_behind_nodes():
    """A replica that is behind (SIGSTOPped while records arrive) is listed
    in the gateway's /stats and /metrics, per-symbol queries and top go to
    the other replica (a query sent to the stopped one would hang), /readyz
    stays ready; resumed, it catches up and is no longer listed. A group
    whose only node is behind (a partition stopped at a bad record) still
    answers, from that node, and says so: "behind" in the per-symbol answer
    (TCP and HTTP) and in top."""
    trades = workload(4000, seed=27)
    syms = sorted({t["sym"] for t in trades})
    even = [x for x in syms if partition_of(x, PARTS) % 2 == 0]
    p1 = [x for x in syms if partition_of(x, PARTS) == 1]
    p3 = [x for x in syms if partition_of(x, PARTS) == 3]
    assert even and p1 and p3
    with cluster() as mc:
        ea, eb = node(mc, "0/2"), node(mc, "0/2")
        odd = node(mc, "1/2", extra=["--kafka-on-error", "stop"])
        with ea, eb, odd:
            names = {s: "%s@127.0.0.1:%d" % (o, s.tcp_port)
                     for s, o in ((ea, "0/2"), (eb, "0/2"), (odd, "1/2"))}
            where = ["--gateway-behind-records", "5"]
            for s in (ea, eb, odd):
                where += ["--gateway-node", names[s]]
            with gateway(mc, where) as gw:
                send_batches(gw, "feed", 1, 10, batch_of(trades, 100))

                def lags():
                    return {x["node"]: x["lag_records"] for x in cluster_stats(gw)["nodes"]}
                wait_for(lambda: set(lags().values()) == {0}, 60, "every node caught up")
                assert behind_of(gw) == {}
                # one even replica stops while records arrive
                eb.pause()
                try:
                    send_batches(gw, "feed", 11, 20, batch_of(trades, 100))
                    def eb_behind():
                        b = behind_of(gw)
                        return set(b) == {names[eb]} and set(b[names[eb]]) == {0, 2} and \
                            all(r > 5 for r in b[names[eb]].values())
                    wait_for(eb_behind, 90, "eb listed as behind")
                    cl = cluster_stats(gw)
                    x = [n for n in cl["nodes"] if n["node"] == names[eb]][0]
                    assert x["lag_records"] > 5 and not x["up"], x  # too stuck to answer stats
                    assert "did not answer" in x["error"], x
                    _, _, m = gw.http_get("/metrics")
                    m = m.decode()
                    lag = [ln for ln in m.splitlines()
                           if ln.startswith('slotd_gateway_node_lag_records{node="%s"}' % names[eb])]
                    assert len(lag) == 1 and int(lag[0].split()[-1]) > 5, lag
                    assert 'slotd_gateway_node_lag_records{node="%s"} 0\n' % names[ea] in m
                    assert gw.http_json("/readyz")[0] == 200  # behind is not down
                    cg, ca = gw.connect("q"), ea.connect("q")
                    for sym in even:  # to ea: a query to the stopped eb would not come back
                        r = cg.query(1, {"op": "symbol", "sym": sym})
                        assert r == ca.query(1, {"op": "symbol", "sym": sym}), r
                        assert "behind" not in r[2], r
                    r = cg.query(2, {"op": "top", "top": 1000})
                    assert "behind" not in r[2] and "partial" not in r[2], r
                    assert len(r[2]["symbols"]) == len(syms), r
                    ca.close()
                finally:
                    eb.resume()
                wait_for(lambda: behind_of(gw) == {} and lags()[names[eb]] == 0, 60,
                         "eb caught up and no longer listed")
                # the odd group's only node stops partition 1 at a bad record
                produce(mc, [frame(p1[0], b"\xc1", partition=1)])
                send_batches(gw, "feed", 31, 10, batch_of(trades, 100))

                def p1_behind():
                    b = behind_of(gw)
                    return set(b) == {names[odd]} and set(b[names[odd]]) == {1} and \
                        b[names[odd]][1] > 5
                wait_for(p1_behind, 60, "partition 1 behind")
                n = behind_of(gw)[names[odd]][1]
                co = odd.connect("q")
                for sym in p1:  # answered from the node that is behind, and said
                    r = cg.query(3, {"op": "symbol", "sym": sym})
                    want = co.query(3, {"op": "symbol", "sym": sym})
                    if want[0] == "R":
                        assert r == ["R", 3, dict(want[2], behind=[
                            {"partition": 1, "records": r[2]["behind"][0]["records"]}])], r
                        assert r[2]["behind"][0]["records"] >= n, r
                    else:  # its trades only came after the bad record
                        assert r == want, (r, want)
                for sym in p3:
                    r = cg.query(4, {"op": "symbol", "sym": sym})
                    assert r == co.query(4, {"op": "symbol", "sym": sym}) and "behind" not in r[2]
                st, body = gw.http_json("/symbols/%s" % p1[0])
                assert st == 200 and body["behind"][0]["partition"] == 1, body
                r = cg.query(5, {"op": "top", "top": 1000})
                assert r[0] == "R" and "partial" not in r[2], r
                assert [(b["partition"], b["node"]) for b in r[2]["behind"]] == \
                    [(1, names[odd])], r
                st, body = gw.http_json("/symbols?top=3")
                assert st == 200 and body["behind"][0]["partition"] == 1, body
                co.close()
                cg.close()
                assert gw.stop() == 0


def test_stuck_only_replica_query_refused_not_hung():
    """A partition's only node is stuck (SIGSTOP: its connection stays
    open, it answers nothing): a per-symbol query for it is answered
    NOT_READY within the gateway's 3 s limit (it hung before), the other
    partitions' symbols are answered meanwhile, and once the node runs
    again its symbols are answered as before."""
    from collections import Counter
    trades = workload(2000, seed=29)
    counts = Counter(t["sym"] for t in trades)
    with cluster() as mc:
        with node(mc, "0/2") as even, node(mc, "1/2") as odd:
            where = ["--gateway-node", "0/2@127.0.0.1:%d" % even.tcp_port,
                     "--gateway-node", "1/2@127.0.0.1:%d" % odd.tcp_port]
            with gateway(mc, where) as gw:
                send_batches(gw, "feed", 1, 20, batch_of(trades, 100))
                wait_for(lambda: trades_stored([even, odd]) == len(trades), 60, "every trade")
                wait_for(lambda: gw.http_get("/readyz")[0] == 200, 30, "gateway ready")
                odd_sym = next(x for x in counts if partition_of(x, PARTS) % 2 == 1)
                even_sym = next(x for x in counts if partition_of(x, PARTS) % 2 == 0)
                c = gw.connect("q")
                odd.pause()
                try:
                    c.sock.settimeout(30)  # the gateway answers in ~3 s, not never
                    r = c.query(1, {"op": "symbol", "sym": odd_sym})
                    assert r[:3] == ["ERR", 1, "NOT_READY"] and "did not answer" in r[3], r
                    r = c.query(2, {"op": "symbol", "sym": even_sym})
                    assert r[0] == "R" and r[2]["count"] == counts[even_sym], r
                finally:
                    odd.resume()
                r = c.query(3, {"op": "symbol", "sym": odd_sym})
                assert r[0] == "R" and r[2]["count"] == counts[odd_sym], r
                c.close()


def test_nodes_with_credentials():
    """Nodes with --auth-file, where the gateway's line has the query perm
    only: with --gateway-node-token-file NAME:SECRET the gateway's per-symbol
    queries, top and /stats work. With a wrong secret every node is down with
    the reason (UNAUTHORIZED) in /readyz, in NOT_READY answers and in top's
    down_nodes; the gateway logs it once while the node refuses it again
    and again (ever less often). Nodes with --token and the token as the
    credential: queries work."""
    from collections import Counter
    trades = workload(2000, seed=28)
    counts = Counter(t["sym"] for t in trades)
    with cluster() as mc:
        d = tempfile.mkdtemp(prefix="slotd-gwq-")
        auth = os.path.join(d, "auth")
        with open(auth, "w") as f:
            f.write(line("gw-a", "gw-s3cret-Q7", "query"))
        cred, wrong = os.path.join(d, "cred"), os.path.join(d, "wrong")
        with open(cred, "w") as f:
            f.write("gw-a:gw-s3cret-Q7\n")
        with open(wrong, "w") as f:
            f.write("gw-a:not-the-secret\n")
        even = node(mc, "0/2", extra=["--auth-file", auth])
        odd = node(mc, "1/2", extra=["--auth-file", auth])
        with even, odd:
            where = ["--gateway-node", "0/2@127.0.0.1:%d" % even.tcp_port,
                     "--gateway-node", "1/2@127.0.0.1:%d" % odd.tcp_port]
            with gateway(mc, where + ["--gateway-node-token-file", cred]) as gw:
                send_batches(gw, "feed", 1, 20, batch_of(trades, 100))
                wait_for(lambda: cluster_stats(gw)["sum"].get("trades") == len(trades), 60,
                         "the nodes hold every trade")
                assert gw.http_json("/readyz")[0] == 200
                c = gw.connect("q")
                for sym in counts:
                    r = c.query(1, {"op": "symbol", "sym": sym})
                    assert r[0] == "R" and r[2]["count"] == counts[sym], r
                r = c.query(2, {"op": "top", "top": 1000})
                assert {x["symbol"]: x["count"] for x in r[2]["symbols"]} == dict(counts), r
                assert "partial" not in r[2], r
                c.close()
                assert "gw-s3cret" not in gw.logs()
            gw = gateway(mc, where + ["--gateway-node-token-file", wrong])
            gw.start(wait_ready=False)  # never ready: no node answers it
            try:
                wait_for(lambda: "ready gateway" in gw.logs(), 60, "the seq topic read")
                # the nodes refuse it at least three times (1 s, then 2 s later)
                wait_for(lambda: even.logs().count("auth_failed") >= 3, 60, "refusals")
                assert gw.logs().count("gateway_node_refused") == 2, gw.logs()  # once per node
                assert "UNAUTHORIZED" in gw.logs() and "not-the-secret" not in gw.logs()
                st, body = gw.http_json("/readyz")
                assert st == 503 and "UNAUTHORIZED" in body["reason"], body
                c = gw.connect("q")
                r = c.query(3, {"op": "symbol", "sym": trades[0]["sym"]})
                assert r[:3] == ["ERR", 3, "NOT_READY"] and "UNAUTHORIZED" in r[3], r
                r = c.query(4, {"op": "top", "top": 5})
                assert r[2]["partial"] is True and r[2]["missing_partitions"] == [0, 1, 2, 3], r
                assert len(r[2]["down_nodes"]) == 2, r
                assert all("UNAUTHORIZED" in x["error"] for x in r[2]["down_nodes"]), r
                cl = cluster_stats(gw)
                assert all(not x["up"] and "UNAUTHORIZED" in x["error"] for x in cl["nodes"]), cl
                c.close()
                assert gw.stop() == 0
            except BaseException:
                gw.__exit__(*sys.exc_info())
                raise
            gw.__exit__(None, None, None)
        # nodes with --token: a credential without ':' is the token; the
        # gateway keeps its own name per connection
        tok = os.path.join(d, "tok")
        with open(tok, "w") as f:
            f.write("tok-Zr8p\n")
        even = node(mc, "0/2", extra=["--token", "tok-Zr8p"])
        odd = node(mc, "1/2", extra=["--token", "tok-Zr8p"])
        with even, odd:
            where = ["--gateway-node", "0/2@127.0.0.1:%d" % even.tcp_port,
                     "--gateway-node", "1/2@127.0.0.1:%d" % odd.tcp_port,
                     "--gateway-node-token-file", tok]
            with gateway(mc, where) as gw:
                wait_for(lambda: cluster_stats(gw)["sum"].get("trades") == len(trades), 60,
                         "the token nodes hold every trade")
                c = gw.connect("q")
                for sym in list(counts)[:5]:
                    r = c.query(1, {"op": "symbol", "sym": sym})
                    assert r[0] == "R" and r[2]["count"] == counts[sym], r
                c.close()
                assert "auth_failed" not in even.logs() + odd.logs()
                assert gw.stop() == 0

if __name__ == "__main__":
    r = Results()
    r.run(test_acked_trades_stored_once)
    r.run(test_bad_trade_same_err_nothing_produced)
    r.run(test_sigkill_gateway_resume)
    r.run(test_lost_seq_records_resend_skipped)
    r.run(test_kafka_failure_err_then_resend)
    r.run(test_queries_routed_with_failover)
    r.run(test_not_ready_until_seq_topic_read)
    r.run(test_bad_nodes_file_refused)
    r.run(test_behind_nodes)
    r.run(test_nodes_with_credentials)
    r.finish()
