"""Issue #16's end-to-end test: the official Python client (slotd.Sender) ->
the gateway -> librdkafka's mock cluster -> two node groups of two (nodes
0/2 and 1/2, twice, all --source kafka).

While the sender streams 1,000,000 trades (times SLOTD_TEST_SCALE; a tenth
of that under ASan/TSan, where every process runs several times slower) the
gateway is SIGKILLed three times and a node twice (one of each group),
each restarted on its port. The sender reconnects by itself and resends
from WELCOME last_seq. Afterwards:

- the sender saw every batch acknowledged (none given up);
- every replica holds every trade of its partitions exactly once, in the
  order sent (trade ids), and nothing else;
- the cluster, through the gateway, answers symbol, trades (every page),
  bars and top (by count, volume, notional; ties in symbol order) exactly
  like a single TCP-fed slotd given the same trades.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Results, Slotd, wait_for  # noqa: E402
from test_gateway import PARTS, check_top, cluster, gateway  # noqa: E402
from test_kafka import all_trades_exactly_once, node, partition_of, symbol_view  # noqa: E402
from test_kafka import workload  # noqa: E402

SANITIZED = bool(os.environ.get("ASAN_OPTIONS") or os.environ.get("TSAN_OPTIONS"))
SCALE = float(os.environ.get("SLOTD_TEST_SCALE") or (0.1 if SANITIZED else 1))
N = max(20000, int(1000000 * SCALE))
BATCH = 1000


def restart_on_port(s, port):
    """Start s again on the TCP port it had (the gateway and the client
    library know nodes and gateways by address)."""
    s.start(s.extra_args + ["--listen", "127.0.0.1:%d" % port])


def stored(s):
    """Trades the node's store holds (its snapshot's and those applied since)."""
    _, body = s.http_json("/stats")
    return body["store"]["trades"]


def feed(s, name, trades, at=None):
    """Every trade through a Sender; at(i, sender) is called before trade i
    (the kills). Returns the sender's stats once all are acknowledged."""
    with s.sender(name, batch_size=BATCH, linger=3600, window=16, retry_timeout=120) as snd:
        for i, t in enumerate(trades):
            if at is not None and i % BATCH == BATCH // 2:
                at(i, snd)
            snd.send(t)
        snd.flush()
        return snd.stats


def test_cluster_like_one_slotd_through_kills():
    trades = workload(N, seed=31)
    syms = sorted({t["sym"] for t in trades})
    with cluster() as mc:
        # Snapshots every 100 records: the mock cluster keeps ~5 MB per
        # partition (librdkafka's mock log), less than a partition's share
        # of 1M trades, so a node restarted with no snapshot would find the
        # oldest records gone (as with a real topic's retention: "What Kafka
        # must keep"); a node resumes from its snapshot's offsets instead.
        snap = ["--checkpoint-records", "100"]
        groups = [(node(mc, "0/2", extra=snap), node(mc, "1/2", extra=snap)),
                  (node(mc, "0/2", extra=snap), node(mc, "1/2", extra=snap))]
        nodes = [s for g in groups for s in g]
        for s in nodes:
            s.start()
        try:
            ports = {id(s): s.tcp_port for s in nodes}
            where = []
            for s in nodes:
                where += ["--gateway-node", "%s@127.0.0.1:%d" % (
                    "0/2" if s in (groups[0][0], groups[1][0]) else "1/2", s.tcp_port)]
            with gateway(mc, where) as gw, Slotd() as tcp:
                gport = gw.tcp_port
                # gateway, node a0, gateway, node b1, gateway: spread over the
                # stream, each while batches are in flight; the victim restarts
                # in the background while the sender goes on (and reconnects)
                plan = [gw, groups[0][0], gw, groups[1][1], gw]
                marks = [N * (k + 1) // (len(plan) + 1) // BATCH * BATCH + BATCH // 2
                         for k in range(len(plan))]
                kills, restarts, errors = [], [], []

                def restart(victim, port):
                    try:
                        restart_on_port(victim, port)
                    except BaseException as e:  # noqa: BLE001 (reported below)
                        errors.append(e)

                def at(i, snd):
                    if i + 4 * BATCH in marks:
                        # back in business (reconnected, all acked) a little
                        # before the kill, so each kill hits batches in flight
                        snd.flush()
                    if i not in marks:
                        return
                    for r in restarts:  # one victim down at a time
                        r.join(300)
                    victim = plan[marks.index(i)]
                    victim.kill()
                    kills.append("gateway" if victim is gw else "node")
                    r = threading.Thread(target=restart, args=(
                        victim, gport if victim is gw else ports[id(victim)]))
                    r.start()
                    restarts.append(r)

                st = feed(gw, "feed", trades, at)
                for r in restarts:
                    r.join(300)
                assert not errors, errors
                assert kills == ["gateway", "node", "gateway", "node", "gateway"], kills
                assert st["trades_acked"] == N and not st["batches_given_up"], st
                assert st["welcomes"] == 4, st  # three gateway kills mid-stream
                print("  %d trades, %d batches acked (%d resent), kills: %s" % (
                    N, st["batches_acked"], st["batches_resent"], ", ".join(kills)))
                st = feed(tcp, "feed", trades)
                assert st["trades_acked"] == N, st

                # every replica: exactly its partitions' trades, each once, in order
                for s, side in ((groups[0][0], 0), (groups[0][1], 1), (groups[1][0], 0),
                                (groups[1][1], 1)):
                    mine = [x for x in trades if partition_of(x["sym"], PARTS) % 2 == side]
                    wait_for(lambda: stored(s) >= len(mine), 300, "a replica caught up")
                    all_trades_exactly_once(s, mine)
                    assert stored(s) == len(mine)
                wait_for(lambda: gw.http_json("/readyz")[0] == 200, 60, "gateway ready")

                # the cluster answers like one slotd
                cg, ct = gw.connect("q"), tcp.connect("q")
                for sym in syms:
                    assert symbol_view(cg, sym) == symbol_view(ct, sym), sym
                for n in (3, 1000):
                    check_top(cg, ct, n)
                cg.close()
                ct.close()
                assert gw.stop() == 0
        finally:
            for s in nodes:
                s.__exit__(None, None, None)


if __name__ == "__main__":
    r = Results()
    r.run(test_cluster_like_one_slotd_through_kills)
    r.finish()
