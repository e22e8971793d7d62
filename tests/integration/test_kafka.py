"""Kafka-fed nodes (--source kafka, issue #15) end to end: real slotd
processes consuming from librdkafka's mock cluster (tests/kafka/mockcluster,
a real Kafka-protocol server in its own process), records produced by
tests/kafka/produce.c (kproduce) and by kcat, the independent producer.

- two nodes owning the even and the odd partitions answer every per-symbol
  query exactly like one TCP-fed slotd given the same trades;
- SIGKILL mid-stream, several times, some right as a checkpoint starts:
  after restart every record of the partitions is held exactly once;
- a resent record (same client and seq headers) is skipped and counted,
  across a restart too; a record whose predecessor in the gateway's chain
  (header prev) is missing is skipped until the client's resends come;
- brokers down and leaders moved: consumption goes on, lag returns to 0;
- bad records are counted and logged, then skipped, or stop only their
  partition; so are records whose symbols are not their key, or not in
  their partition by Kafka's murmur2 (they would give a symbol two owners);
- offsets are committed to Kafka (for lag monitors) after each snapshot,
  never ahead of one, and they are the offsets the snapshot holds;
- TCP T batches and deletes are refused READ_ONLY, queries work, reserved
  client names cannot HELLO.
"""
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import time

import msgpack

sys.path.insert(0, os.path.dirname(__file__))
from harness import Results, Slotd, send_batches, wait_for  # noqa: E402

BUILD = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(os.path.dirname(__file__), "..", "..",
                                                           "build")
MOCKCLUSTER = os.path.join(BUILD, "tests", "mockcluster")
KPRODUCE = os.path.join(BUILD, "tests", "kproduce")
KCOMMITTED = os.path.join(BUILD, "tests", "kcommitted")
TS0 = 1767225600 * 10 ** 9
# Fast fetches: the tests wait on offsets, never on time.
FAST = ["--kafka-conf", "fetch.wait.max.ms=50", "--kafka-conf", "log_level=3"]


class MockCluster:
    """tests/kafka/mockcluster as a process: bootstrap servers, and its stdin commands."""

    def __init__(self, topic="trades", partitions=4, brokers=3):
        self.topic = topic
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([MOCKCLUSTER, "--brokers", str(brokers), "--topic", topic,
                                      "--partitions", str(partitions)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, text=True)
        self.bootstrap = self.proc.stdout.readline().strip()
        assert self.bootstrap, "mockcluster printed no bootstrap servers"

    def command(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        assert reply == "ok", (line, reply)

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def frame(key, value, partition=-1, headers=()):
    """One record for kproduce's stdin (tests/kafka/produce.c)."""
    key = key.encode() if isinstance(key, str) else key
    out = struct.pack("<i", partition)
    out += struct.pack("<I", 0xffffffff) if key is None else struct.pack("<I", len(key)) + key
    out += struct.pack("<I", len(value)) + value
    out += struct.pack("<H", len(headers))
    for k, v in headers:
        k, v = k.encode(), str(v).encode()
        out += struct.pack("<H", len(k)) + k + struct.pack("<I", len(v)) + v
    return out


def produce(mc, records):
    """records: frame() byte strings; every one acknowledged (acks=all) on return."""
    p = subprocess.run([KPRODUCE, mc.bootstrap, mc.topic], input=b"".join(records),
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    assert p.stdout.decode().strip() == "produced %d" % len(records), p.stdout


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def murmur2(data):
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as an
    unsigned 32-bit value: written here from the algorithm, so the node's
    routing check is compared with an independent implementation."""
    m, n = 0x5bd1e995, len(data)
    h = (0x9747b28c ^ n) & 0xffffffff
    end = n - n % 4
    for i in range(0, end, 4):
        k = (int.from_bytes(data[i:i + 4], "little") * m) & 0xffffffff
        k = ((k ^ (k >> 24)) * m) & 0xffffffff
        h = ((h * m) & 0xffffffff) ^ k
    for j in range(n % 4 - 1, -1, -1):
        h ^= data[end + j] << (8 * j)
    if n % 4:
        h = (h * m) & 0xffffffff
    h = ((h ^ (h >> 13)) * m) & 0xffffffff
    return h ^ (h >> 15)


def partition_of(sym, partitions):
    """Where Kafka's default (Java) partitioner puts key sym."""
    return (murmur2(sym.encode()) & 0x7fffffff) % partitions


def sym_in(partition, partitions, prefix, skip=0):
    """The (skip+1)-th symbol prefix<n> that murmur2 puts in partition."""
    for n in range(10 ** 6):
        if partition_of("%s%d" % (prefix, n), partitions) == partition:
            if skip == 0:
                return "%s%d" % (prefix, n)
            skip -= 1
    raise AssertionError("no symbol")


def node(mc, owned, data_dir=None, extra=()):
    """A Kafka-fed slotd (not started). owned: "i/N" or a partition list."""
    own = ["--kafka-node", owned] if "/" in owned else ["--kafka-partitions", owned]
    return Slotd(["--source", "kafka", "--kafka-brokers", mc.bootstrap, "--kafka-topic", mc.topic,
                  "--kafka-ready-lag", "0"] + own + FAST + list(extra), data_dir=data_dir)


def kstats(s):
    status, body = s.http_json("/stats")
    assert status == 200, body
    return body["kafka"]


def consumed(s):
    """Records the node has passed (applied, skipped or refused), all partitions."""
    return sum(p["next_offset"] for p in kstats(s)["partitions"])


def wait_consumed(nodes, total, what="records consumed"):
    wait_for(lambda: sum(consumed(s) for s in nodes) == total, 120, what)


def symbol_view(c, sym):
    """Everything a per-symbol query says about sym: aggregates, every
    trade (paged), bars."""
    r = c.query(1, {"op": "symbol", "sym": sym})
    if r[0] == "ERR":
        assert r[2] == "NOT_FOUND", r
        return None
    trades, cursor = [], 0
    while cursor is not None:
        t = c.query(2, {"op": "trades", "sym": sym, "limit": 10000, "cursor": cursor})
        assert t[0] == "R", t
        trades += t[2]["trades"]
        cursor = t[2]["next_cursor"]
    # "pages" is the layout, not the data: it follows how trades were
    # batched (one record at a time here, 100 a batch over TCP).
    r[2].pop("pages", None)
    b = c.query(3, {"op": "bars", "sym": sym, "interval": 10 ** 4, "from": TS0, "to": TS0 + 10 ** 8})
    assert b[0] == "R", b
    return r[2], trades, b[2]


# ---- workload ------------------------------------------------------------------

def workload(n, seed=15):
    """n trades over 40 symbols with W1's skew (the hottest ~18%), map form."""
    rng = random.Random(seed)
    syms = ["K%02d" % i for i in range(40)]
    weights = [18] + [82 / 39] * 39
    out = []
    for i in range(n):
        out.append({"sym": rng.choices(syms, weights)[0], "ts": TS0 + i * 1000 + rng.randint(0, 999),
                    "px": "%d.%02d" % (rng.randint(90, 110), rng.randint(0, 99)),
                    "qty": rng.randint(1, 500), "side": "B" if i & 1 else "S", "id": i + 1})
    return out


def as_array(t):
    return [t["sym"], t["ts"], t["px"], t["qty"], t["side"], t["id"]]


def records_of(trades, seed=16):
    """The trades as Kafka records keyed by symbol, in order per symbol: one
    trade per record in map or array form, or a T message of up to 5 trades
    of one symbol."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(trades):
        t = trades[i]
        kind = rng.random()
        if kind < 0.2:
            run = [t]
            j = i + 1
            while j < len(trades) and len(run) < 5 and trades[j]["sym"] == t["sym"]:
                run.append(trades[j])
                j += 1
            out.append(frame(t["sym"], packb(["T", 1, run])))
            i = j
            continue
        out.append(frame(t["sym"], packb(as_array(t) if kind < 0.45 else t)))
        i += 1
    return out


def all_trades_exactly_once(s, trades):
    """s holds exactly these trades: every id once, aggregates as stored."""
    by_sym = {}
    for t in trades:
        by_sym.setdefault(t["sym"], []).append(t["id"])
    c = s.connect()
    try:
        for sym, ids in by_sym.items():
            view = symbol_view(c, sym)
            assert view is not None, sym
            got = [t["id"] for t in view[1]]
            assert got == ids, (sym, len(got), len(ids), sorted(set(got) ^ set(ids))[:10])
            assert view[0]["count"] == len(ids), (sym, view[0])
    finally:
        c.close()


# ---- tests ---------------------------------------------------------------------

def test_differential_even_odd_vs_tcp():
    """Nodes 0/2 and 1/2 (even and odd partitions) together answer every
    per-symbol query like one TCP-fed slotd given the same trades; each
    symbol lives on exactly one of them. Part of the records come through
    kcat, the independent producer."""
    trades = workload(6000)
    kcat_syms = {"K07", "K08"}  # kcat sends these, one file per record, key = symbol
    ours = [t for t in trades if t["sym"] not in kcat_syms]
    with MockCluster(partitions=4) as mc:
        produce(mc, records_of(ours))
        tmp = tempfile.mkdtemp(prefix="slotd-kcat-")
        for sym in sorted(kcat_syms):
            files = []
            for t in (t for t in trades if t["sym"] == sym):
                path = os.path.join(tmp, "%06d" % t["id"])
                with open(path, "wb") as f:
                    f.write(packb(t))
                files.append(path)
            subprocess.run(["kcat", "-P", "-q", "-b", mc.bootstrap, "-t", mc.topic, "-k", sym,
                            "-X", "partitioner=murmur2_random"] + files, check=True, timeout=120)
        n_records = len(records_of(ours)) + sum(t["sym"] in kcat_syms for t in trades)
        with node(mc, "0/2") as even, node(mc, "1/2") as odd, Slotd() as tcp:
            assert [p["partition"] for p in kstats(even)["partitions"]] == [0, 2]
            assert [p["partition"] for p in kstats(odd)["partitions"]] == [1, 3]
            send_batches(tcp, "feed", 1, 60, lambda seq: trades[(seq - 1) * 100:seq * 100])
            wait_consumed([even, odd], n_records)
            ce, co, ct = even.connect(), odd.connect(), tcp.connect()
            both = 0
            for sym in sorted({t["sym"] for t in trades}):
                ve, vo, vt = symbol_view(ce, sym), symbol_view(co, sym), symbol_view(ct, sym)
                assert (ve is None) != (vo is None), (sym, ve is None, vo is None)
                got = ve or vo
                for part, a, b in zip(("symbol", "trades", "bars"), got, vt):
                    assert a == b, (sym, part, str(a)[:600], str(b)[:600])
                both += 1
            assert both == 40
            for s in (even, odd):
                assert s.http_get("/readyz")[0] == 200
                assert all(p["lag"] == 0 and p["bad_records"] == 0
                           for p in kstats(s)["partitions"])
            assert kstats(even)["records"] + kstats(odd)["records"] == n_records


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def kill_mid_checkpoint(s, sent):
    """SIGKILL s as soon as its log says a checkpoint started, its child
    frozen first (SIGSTOP) so it cannot finish; the child then dies with
    its parent (PR_SET_PDEATHSIG). 1 if the child was caught before it
    finished, 0 if it had finished or no checkpoint came within 10 s (the
    kill is then an ordinary one). A checkpoint is due --checkpoint-records
    after the last, checked every 200 ms."""
    seen = s.logs().count("checkpoint_started")
    deadline = time.time() + 10
    while time.time() < deadline:
        logs = s.logs()
        if logs.count("checkpoint_started") > seen:
            line = logs[logs.rindex("checkpoint_started"):].split("\n")[0]
            pid = int(line.split("pid=")[1].split()[0])
            seg = line.split("segment=")[1].split()[0]
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            caught = ("checkpoint_done file=" not in s.logs().split(line)[-1] and
                      "segment=%s " % seg not in s.logs().split(line)[-1])
            s.kill()
            # A child frozen before its prctl would hold the data directory's
            # lock forever: let it run on, to see its parent gone and exit.
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            wait_for(lambda: gone(pid), 30, "the checkpoint child to exit")
            return int(caught)
    s.kill()
    return 0


def test_sigkill_exactly_once():
    """One node owning both partitions, checkpoints every 300 records,
    SIGKILLed while records keep coming (twice right as a checkpoint starts):
    after the last restart it holds every record exactly once."""
    trades = workload(8000, seed=3)
    recs = records_of(trades, seed=4)
    parts = [recs[i * len(recs) // 6:(i + 1) * len(recs) // 6] for i in range(6)]
    assert sum(map(len, parts)) == len(recs)
    with MockCluster(partitions=2) as mc:
        s = node(mc, "0,1", extra=["--checkpoint-records", "300"])
        with s:
            sent = mid = 0
            for i, part in enumerate(parts):
                produce(mc, part)
                sent += len(part)
                if i % 2 == 0:
                    mid += kill_mid_checkpoint(s, sent)
                else:  # once a snapshot is complete: the restart loads it
                    done = s.logs().count("checkpoint_done")
                    wait_for(lambda: s.logs().count("checkpoint_done") > done, 60, "a snapshot")
                    s.kill()
                s.start()
            print("  %d of 3 kills caught a checkpoint child still writing" % mid)
            wait_consumed([s], len(recs))
            assert s.logs().count("kafka_assigned") == 1  # this run's log only
            all_trades_exactly_once(s, trades)
            st = s.http_json("/stats")[1]
            assert st["trades"] == len(trades), st["trades"]
            assert st["checkpoint"]["loaded_trades"] > 0, st["checkpoint"]


def test_resent_record_skipped():
    """Records with the gateway's headers (client, seq): a resend of a seq
    the node applied is skipped and counted, also after a restart (the seq
    lives in the snapshot); kcat sends one of the resends."""
    gw = [sym_in(0, 2, "GW"), sym_in(1, 2, "GW")]

    def rec(seq, i, part):
        t = {"sym": gw[part], "ts": TS0 + i, "px": "1.25", "qty": i, "id": i}
        return frame(t["sym"], packb(t), partition=part, headers=[("client", "gw-a"), ("seq", seq)])
    with MockCluster(partitions=2) as mc:
        s = node(mc, "0/1", extra=["--checkpoint-on-exit"])
        with s:
            produce(mc, [rec(q, q, q % 2) for q in range(1, 11)])
            wait_consumed([s], 10)
            produce(mc, [rec(q, q, q % 2) for q in range(7, 11)])  # a producer restarted
            wait_consumed([s], 14)
            assert sum(p["skipped_duplicates"] for p in kstats(s)["partitions"]) == 4
            s.restart()
            t = {"sym": gw[1], "ts": TS0 + 9, "px": "1.25", "qty": 9, "id": 9}
            path = os.path.join(s.data_dir, "resend.msgpack")
            with open(path, "wb") as f:
                f.write(packb(t))
            subprocess.run(["kcat", "-P", "-q", "-b", mc.bootstrap, "-t", mc.topic, "-p", "1",
                            "-k", gw[1], "-H", "client=gw-a", "-H", "seq=9", path],
                           check=True, timeout=60)
            produce(mc, [rec(11, 11, 1), rec(12, 12, 0)])
            wait_consumed([s], 17)
            st = s.http_json("/stats")[1]
            assert st["trades"] == 12, st["trades"]
            assert sum(p["skipped_duplicates"] for p in st["kafka"]["partitions"]) == 1
            c = s.connect()
            ids = sorted(t["id"] for sym in gw for t in symbol_view(c, sym)[1])
            assert ids == list(range(1, 13)), ids


def test_out_of_chain_part_skipped_until_resent():
    """The gateway's "prev" header (server/gateway.h): a part whose
    predecessor in its (client, partition) chain is missing (Kafka dropped
    a timed-out message; the gateway failed that batch and every later one)
    is skipped and counted, not applied, so the client's resends — lowest
    first, a new chain — are applied in order and none is mistaken for a
    duplicate. A malformed prev is a bad record."""
    sym = sym_in(0, 1, "CH")

    def rec(seq, prev, i=None):
        i = seq if i is None else i
        t = {"sym": sym, "ts": TS0 + i, "px": "1.25", "qty": i, "id": i}
        return frame(sym, packb(t), partition=0,
                     headers=[("client", "gw-b"), ("seq", seq), ("prev", prev)])
    with MockCluster(partitions=1) as mc:
        s = node(mc, "0/1")
        with s:
            # 1, 2 applied; 3 lost by Kafka; 4 (prev 3) and 5 (prev 4) skipped
            produce(mc, [rec(1, 0), rec(2, 1), rec(4, 3), rec(5, 4)])
            wait_consumed([s], 4)
            part = kstats(s)["partitions"][0]
            assert part["skipped_out_of_chain"] == 2, part
            assert s.http_json("/stats")[1]["trades"] == 2
            # the resends, a new pipeline: 3 (prev 0), 4 (prev 3), 5 (prev 4);
            # then a resent 2 (a duplicate) and a prev below what is held
            # (resends through another gateway meanwhile): applied
            produce(mc, [rec(3, 0), rec(4, 3), rec(5, 4), rec(2, 0), rec(6, 1)])
            wait_consumed([s], 9)
            part = kstats(s)["partitions"][0]
            assert part["skipped_out_of_chain"] == 2 and part["skipped_duplicates"] == 1, part
            # prev not below seq, or not a number: bad records, skipped
            produce(mc, [rec(20, 20), rec(21, "x")])
            wait_consumed([s], 11)
            assert kstats(s)["partitions"][0]["bad_records"] == 2
            # a bad trade with good headers is passed over as a link of its
            # chain: 8 (prev 7) applies
            bad = frame(sym, packb({"sym": sym, "ts": TS0, "qty": 1}), partition=0,
                        headers=[("client", "gw-b"), ("seq", 7), ("prev", 6)])
            produce(mc, [bad, rec(8, 7)])
            wait_consumed([s], 13)
            part = kstats(s)["partitions"][0]
            assert part["bad_records"] == 3 and part["skipped_out_of_chain"] == 2, part
            c = s.connect()
            ids = [t["id"] for t in symbol_view(c, sym)[1]]
            assert ids == [1, 2, 3, 4, 5, 6, 8], ids
            assert "skipped_out_of_chain_total" in s.http_get("/metrics")[2].decode()


def test_broker_down_and_leader_move():
    """Every leader moves to broker 3 and brokers 1 and 2 go down while
    records keep coming: consumption goes on and the lag returns to 0."""
    trades = workload(3000, seed=5)
    recs = records_of(trades, seed=6)
    half = len(recs) // 2
    with MockCluster(partitions=3) as mc:
        with node(mc, "0/1") as s:
            produce(mc, recs[:half])
            wait_consumed([s], half)
            for p in range(3):
                mc.command("leader %s %d 3" % (mc.topic, p))
            mc.command("down 1")
            mc.command("down 2")
            produce(mc, recs[half:])
            wait_consumed([s], len(recs))
            mc.command("up 1")
            mc.command("up 2")
            wait_for(lambda: all(p["lag"] == 0 for p in kstats(s)["partitions"]), 60, "lag 0")
            assert s.http_get("/readyz")[0] == 200
            all_trades_exactly_once(s, trades)


def bad_records(part):
    return [frame("B", b"\xc1", partition=part),                             # not msgpack
            frame("B", packb({"sym": "B", "ts": TS0, "qty": 1}), partition=part),  # no px
            frame("B", packb(["T", 1, [{"sym": "B", "ts": TS0, "px": "1", "qty": 1, "x": 1}]]),
                  partition=part)]                                        # unknown field


def good(part, i):
    """A good record for partition part of a 2-partition topic."""
    t = {"sym": sym_in(part, 2, "G"), "ts": TS0 + i, "px": "2.5", "qty": 1, "id": i}
    return frame(t["sym"], packb(t), partition=part)


def test_bad_records_skipped():
    with MockCluster(partitions=2) as mc:
        with node(mc, "0/1") as s:
            produce(mc, [good(0, 1)] + bad_records(0) + [good(0, 2), good(1, 3)])
            wait_consumed([s], 6)
            parts = kstats(s)["partitions"]
            assert [p["bad_records"] for p in parts] == [3, 0], parts
            assert s.http_json("/stats")[1]["trades"] == 3
            logs = s.logs()
            for offset, code in ((1, "MALFORMED"), (2, "MISSING_FIELD"), (3, "UNKNOWN_FIELD")):
                line = "kafka_bad_record topic=trades partition=0 offset=%d code=" % offset
                assert line in logs, (line, logs[-3000:])
            assert logs.count("action=skip") == 3
            assert s.http_get("/readyz")[0] == 200
            metrics = s.http_get("/metrics")[2].decode()
            for line in ('slotd_kafka_bad_records_total{partition="0"} 3',
                         'slotd_kafka_next_offset{partition="0"} 5',
                         'slotd_kafka_lag_records{partition="1"} 0', "slotd_kafka_caught_up 1"):
                assert line + "\n" in metrics, (line, metrics[-3000:])


def test_bad_record_stops_only_its_partition():
    with MockCluster(partitions=2) as mc:
        s = node(mc, "0/1", extra=["--kafka-on-error", "stop"])
        s.start(wait_ready=False)  # never ready: partition 0 stays behind
        try:
            produce(mc, [good(0, 1)] + bad_records(0)[:1] + [good(0, 2)] +
                    [good(1, i) for i in range(10, 20)])
            wait_for(lambda: [(p["next_offset"], p["lag"]) for p in kstats(s)["partitions"]] ==
                     [(1, 2), (10, 0)], 60,
                     "partition 1 consumed, partition 0 stopped at the bad record")
            parts = kstats(s)["partitions"]
            assert parts[0]["state"] == "stopped" and parts[0]["paused"], parts
            assert parts[1]["state"] == "running" and parts[1]["lag"] == 0, parts
            produce(mc, [good(1, 20)])
            wait_for(lambda: kstats(s)["partitions"][1]["next_offset"] == 11, 60, "more of 1")
            assert kstats(s)["partitions"][0]["next_offset"] == 1
            status, body = s.http_json("/readyz")
            assert status == 503 and "partition 0" in body["reason"], body
            assert "kafka_partition_stopped topic=trades partition=0 offset=1" in s.logs()
            # a restart stops at the same record: nothing past it was taken
            s.stop()
            s.start(wait_ready=False)
            wait_for(lambda: [p["next_offset"] for p in kstats(s)["partitions"]] == [1, 11], 60,
                     "the same positions after a restart")
            assert s.http_json("/stats")[1]["trades"] == 12
        finally:
            s.__exit__(None, None, None)


def test_murmur2_is_kafkas():
    """The test's murmur2 gives Apache Kafka's own reference values
    (UtilsTest.testMurmur2), so the partitions the tests choose are Kafka's."""
    java = {b"21": -973932308, b"foobar": -790332482, b"a": -1563381124, b"a-little-bit-long-string": -985981536,
            b"a-little-bit-longer-string": -1486304829, b"abc": 479470107,
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971}
    for key, want in java.items():
        assert murmur2(key) == want & 0xffffffff, key


def test_misrouted_records():
    """A symbol must have one owner: a record whose trades are not all its
    key's symbol (KEY_MISMATCH), or name a symbol murmur2 puts in another
    partition (WRONG_PARTITION: a producer with another partitioner, or an
    explicit partition), is a bad record: counted, logged with topic,
    partition and offset, nothing of it stored; skipped, or stopping its
    partition. A T message of several symbols of its partition, without a
    key, is applied."""
    a, a2, b = sym_in(0, 2, "A"), sym_in(0, 2, "A", 1), sym_in(0, 2, "B")
    c = sym_in(1, 2, "C")

    def tr(sym, i):
        return {"sym": sym, "ts": TS0 + i, "px": "3.5", "qty": 1, "id": i}

    recs = [frame(a, packb(tr(a, 1)), partition=0),                       # 0: good
            frame(a, packb(tr(b, 2)), partition=0),                       # 1: key is not b
            frame(None, packb(tr(c, 3)), partition=0),                    # 2: c is in 1
            frame(None, packb(["T", 1, [tr(a, 4), tr(c, 5)]]), partition=0),  # 3: trade 1 is c
            frame(None, packb(["T", 1, [tr(a, 6), tr(a2, 7)]]), partition=0),  # 4: good
            frame(c, packb(tr(c, 8)), partition=0),                       # 5: right key, wrong p
            frame(a, packb(["T", 1, [tr(a, 9), tr(b, 10)]]), partition=0),  # 6: trade 1 is b
            frame(c, packb(tr(c, 11)))]                                   # 7: good (to 1)
    with MockCluster(partitions=2) as mc:
        produce(mc, recs)
        with node(mc, "0,1") as s:
            wait_consumed([s], 8)
            parts = kstats(s)["partitions"]
            assert [p["bad_records"] for p in parts] == [5, 0], parts
            st = s.http_json("/stats")[1]
            assert st["trades"] == 4 and st["symbols"] == 3, (st["trades"], st["symbols"])
            conn = s.connect()
            assert [t["id"] for t in symbol_view(conn, a)[1]] == [1, 6]
            assert [t["id"] for t in symbol_view(conn, c)[1]] == [11]
            assert symbol_view(conn, b) is None
            logs = s.logs()
            for offset, code in ((1, "KEY_MISMATCH"), (2, "WRONG_PARTITION"),
                                 (3, "WRONG_PARTITION"), (5, "WRONG_PARTITION"),
                                 (6, "KEY_MISMATCH")):
                line = "kafka_bad_record topic=trades partition=0 offset=%d code=%s" % (offset, code)
                assert line in logs, (line, logs[-3000:])
            assert "trade 1: symbol '%s' belongs in partition 1 (murmur2 of 2 partitions), " \
                "not 0" % c in logs.replace("\\x20", " "), logs[-3000:]  # log_esc's spaces
        s = node(mc, "0,1", extra=["--kafka-on-error", "stop"])
        s.start(wait_ready=False)
        try:
            wait_for(lambda: [p["next_offset"] for p in kstats(s)["partitions"]] == [1, 1], 60,
                     "partition 0 stopped at the mis-keyed record, partition 1 consumed")
            assert kstats(s)["partitions"][0]["state"] == "stopped"
            assert "kafka_partition_stopped topic=trades partition=0 offset=1" in s.logs()
        finally:
            s.__exit__(None, None, None)
        # a listed partition the topic lacks stops start-up, naming it
        s = node(mc, "0,5")
        assert s.start(expect_exit=True) != 0
        assert "--kafka-partitions names partition 5; topic trades has 2" in s.logs(), s.logs()


def test_store_full_pauses_partition():
    """--max-memory 16M and 30 records of 5,000 trades of new symbols each
    (a symbol's first page and index entry fill the cap fast, in few Kafka
    bytes: the mock cluster keeps only ~5 MB a partition): the partition
    pauses at the first record that does not fit (store_full), retries, and
    drops nothing: every applied record is whole, the rest wait."""
    per = 5000
    recs = [frame(None, packb(["T", 1, [["S%06d" % (r * per + i), TS0 + r * per + i, 1, 1]
                                       for i in range(per)]])) for r in range(30)]
    with MockCluster(partitions=1) as mc:
        s = node(mc, "0", extra=["--max-memory", "16M"])
        s.start(wait_ready=False)  # never ready: the partition stays behind
        try:
            produce(mc, recs)
            # (the list is empty until the partition is assigned)
            wait_for(lambda: [p["state"] for p in kstats(s)["partitions"]] == ["store_full"], 60,
                     "store_full")
            p = kstats(s)["partitions"][0]
            assert 0 < p["next_offset"] < 30 and p["bad_records"] == 0 and p["paused"], p
            assert "kafka_paused topic=trades partition=0 offset=%d reason=store_full" % \
                p["next_offset"] in s.logs()
            # retried from the same offset (tick every 250 ms), never skipped
            time.sleep(1)
            q = kstats(s)["partitions"][0]
            assert q["next_offset"] == p["next_offset"] and q["state"] == "store_full", q
            assert s.http_json("/stats")[1]["trades"] == q["next_offset"] * per
            assert s.http_get("/readyz")[0] == 503
        finally:
            s.__exit__(None, None, None)


def test_tcp_writes_refused_queries_work():
    with MockCluster(partitions=1) as mc:
        with node(mc, "0") as s:
            produce(mc, [good(0, 1)])
            wait_consumed([s], 1)
            c = s.connect("feed")
            c.send_batch(7, [{"sym": "X", "ts": TS0, "px": "1", "qty": 1}])
            r = c.recv()
            assert r[:3] == ["ERR", 7, "READ_ONLY"], r
            r = c.query(8, {"op": "symbol", "sym": sym_in(0, 2, "G")})
            assert r[0] == "R" and r[2]["count"] == 1, r
            r = c.query(9, {"op": "delete", "sym": sym_in(0, 2, "G"), "from": 0, "to": 2 ** 62})
            assert r[:3] == ["ERR", 9, "READ_ONLY"], r
            assert s.http_json("/stats")[1]["errors"]["READ_ONLY"] == 2
            from harness import Client
            for name in ("kafka:trades:0", "gw:x:1"):
                c2 = Client(s.tcp_port, hello=False)
                c2.send(["HELLO", {"client": name}])
                r = c2.recv()
                assert r[:3] == ["ERR", 0, "BAD_MESSAGE"] and "reserved" in r[3], r
                c2.close()


def committed(mc, partitions):
    """The offsets slotd's group ("slotd-<topic>") committed, read back from
    Kafka by tests/kafka/committed.c: {partition: offset}, -1001 = none."""
    p = subprocess.run([KCOMMITTED, mc.bootstrap, "slotd-" + mc.topic, mc.topic, str(partitions)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    return {int(a): int(b) for a, b in (line.split() for line in p.stdout.splitlines())}


def test_offsets_committed_after_snapshots():
    """Kafka's copy of the offsets follows the snapshots: nothing committed
    while no snapshot exists (however much was consumed); after snapshots,
    the committed offsets are each partition's next offset; a SIGKILLed node
    restarts from the snapshot at exactly those offsets."""
    never = ["--checkpoint-interval", "1h"]
    with MockCluster(partitions=2) as mc:
        s = node(mc, "0,1", extra=never)
        base = s.extra_args[:-len(never)]
        with s:
            produce(mc, [good(i % 2, i) for i in range(100)])
            wait_consumed([s], 100)
            assert "checkpoint_done" not in s.logs()
            assert committed(mc, 2) == {0: -1001, 1: -1001}
            # Restarted with snapshots every 100 ms: the records are read again
            # from Kafka (no snapshot yet), then a snapshot, then a commit.
            s.stop()
            s.start(base + ["--checkpoint-interval", "100ms"])
            produce(mc, [good(i % 2, i) for i in range(100, 400)])
            wait_consumed([s], 400)
            nexts = {p["partition"]: p["next_offset"] for p in kstats(s)["partitions"]}
            assert nexts == {0: 200, 1: 200}, nexts
            wait_for(lambda: committed(mc, 2) == nexts, 60, "offsets committed after a snapshot")
            assert "checkpoint_done" in s.logs() and "kafka_commit_failed" not in s.logs()
            s.kill()
            s.start(base + never)
            assert "kafka_assigned topic=trades partitions=2 next_offsets=0@200,1@200" in s.logs(), \
                s.logs()
            assert s.http_json("/stats")[1]["trades"] == 400


def test_fresh_node_counts_records_lost_to_retention():
    """A node with no state starts at the topic's oldest record; when the
    topic's retention already removed the first ones (the mock cluster keeps
    about 100,000 records a partition), the offsets passed over are logged
    and counted in gap_offsets, not lost silently (a fresh node used to
    check gaps only after its first record)."""
    n = 120_000
    with MockCluster(partitions=1) as mc:
        produce(mc, [frame("G", packb({"sym": "G", "ts": TS0 + i, "px": "2.5", "qty": 1, "id": i}),
                           partition=0) for i in range(n)])
        with node(mc, "0/1") as s:
            wait_consumed([s], n)
            p = kstats(s)["partitions"][0]
            assert p["gap_offsets"] > 0 and p["records"] + p["gap_offsets"] == n, p
            assert s.http_json("/stats")[1]["trades"] == p["records"]
            assert ("kafka_offset_gap topic=trades partition=0 expected=0 got=%d"
                    % p["gap_offsets"]) in s.logs(), s.logs()
            status, _, body = s.http_get("/metrics")
            assert 'slotd_kafka_gap_offsets_total{partition="0"} %d' % p["gap_offsets"] in \
                body.decode(), body.decode()[-3000:]


if __name__ == "__main__":
    r = Results()
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            r.run(fn)
    r.finish()
