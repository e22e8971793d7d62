#!/usr/bin/env bash
# The gateway against issue #16's targets, on librdkafka's mock cluster
# (tests/kafka/mockcluster, topic of 8 partitions + the seq topic):
#   1. a single TCP-fed slotd (--no-journal) ingests N W1 trades from
#      slotload (closed loop): the node's rate, and its CPU seconds;
#   2. the gateway takes the same N trades (closed loop, C connections =
#      client names, their batches pipelined): its rate, and
#      its own CPU seconds (utime+stime from /proc), so trades per gateway
#      core-second; the ratio to 1. is the target (>= 50%);
#   3. open loop at half the gateway's peak for D: p99 ack through it
#      (target <= 5 ms);
#   4. with PERF=1, perf record -e cpu-clock on the gateway during a rerun
#      of 2: where its time goes (top symbols).
# No nodes consume the topic: the gateway's cost does not depend on them.
#   load/gateway_bench.sh [BUILD_DIR] [N] [C] [D]   (defaults build 2M 16 10s)
# GW_FLAGS: more gateway flags (e.g. "--kafka-conf linger.ms=5").
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; N=${2:-2M}; C=${3:-16}; D=${4:-10s}
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
wait_ready() { until [ "$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$1/readyz")" = 200 ]; do sleep 0.02; done; }
cpu_s() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
field() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

mkfifo "$tmp/mc.in"
exec 3<>"$tmp/mc.in"
"$B/tests/mockcluster" --brokers 3 --topic gw --partitions 8 --topic gw.seqs --partitions 2 <&3 >"$tmp/mc.out" 2>/dev/null &
until [ -s "$tmp/mc.out" ]; do sleep 0.05; done
BS=$(head -1 "$tmp/mc.out")
echo "commit $(git rev-parse --short HEAD); build $B; N=$N C=$C D=$D; $(nproc) cores"
echo "command: ${GW_FLAGS:+GW_FLAGS=\"$GW_FLAGS\" }load/gateway_bench.sh $B $N $C $D"

L="--form array --batch 1000 --inflight 16 --no-progress --json"
"$B/server/slotd" --listen 127.0.0.1:17500 --http 127.0.0.1:17501 --data-dir "$tmp/t" --no-journal >"$tmp/t.log" 2>&1 &
tp=$!
wait_ready 17501
c0=$(cpu_s $tp)
"$B/load/slotload" --port 17500 --http-port 0 --trades "$N" --connections 4 $L >"$tmp/node.json"
c1=$(cpu_s $tp)
node_rate=$(field "d['trades_per_s']" <"$tmp/node.json")
node_cpu=$(echo "$c1 - $c0" | bc -l)
kill -TERM $tp; wait $tp || true

G="--gateway --kafka-brokers $BS --kafka-topic gw --kafka-conf log_level=3 ${GW_FLAGS:-}"
"$B/server/slotd" --listen 127.0.0.1:17502 --http 127.0.0.1:17503 --data-dir "$tmp/g" $G >"$tmp/g.log" 2>&1 &
gp=$!
wait_ready 17503
c0=$(cpu_s $gp)
"$B/load/slotload" --port 17502 --http-port 0 --trades "$N" --connections "$C" --client-prefix peak $L >"$tmp/gw.json"
c1=$(cpu_s $gp)
gw_rate=$(field "d['trades_per_s']" <"$tmp/gw.json")
gw_secs=$(field "d['seconds']" <"$tmp/gw.json")
gw_trades=$(field "d['trades']" <"$tmp/gw.json")
gw_cpu=$(echo "$c1 - $c0" | bc -l)

half=$(echo "$gw_rate / 2" | bc)
"$B/load/slotload" --port 17502 --http-port 0 --duration "$D" --rate "$half" --connections "$C" --client-prefix half $L >"$tmp/half.json"

if [ "${PERF:-0}" = 1 ]; then
  perf record -e cpu-clock -F 999 -g -p $gp -o "$tmp/perf.data" 2>/dev/null &
  pp=$!
  sleep 0.5
  "$B/load/slotload" --port 17502 --http-port 0 --trades "$N" --connections "$C" --client-prefix perf $L >/dev/null
  kill -INT $pp; wait $pp || true
  [ -z "${PERF_KEEP:-}" ] || cp "$tmp/perf.data" "$PERF_KEEP"
fi
kill -TERM $gp; wait $gp || true

/usr/bin/python3 - "$tmp" "$node_rate" "$node_cpu" "$gw_rate" "$gw_cpu" "$gw_secs" "$gw_trades" <<'EOF'
import json, sys
tmp, node_rate, node_cpu, gw_rate, gw_cpu, gw_secs, gw_trades = sys.argv[1], *map(float, sys.argv[2:])
node = json.load(open(tmp + "/node.json"))
gw = json.load(open(tmp + "/gw.json"))
half = json.load(open(tmp + "/half.json"))
per_core = gw_trades / gw_cpu if gw_cpu else 0
print()
print("| run | trades/s | server CPU s | server cores busy | trades per server core-s | ack p50 ms | ack p99 ms |")
print("|---|---|---|---|---|---|---|")
def row(name, d, rate, cpu, secs, trades):
    lat = d["ack_latency"]
    print("| %s | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f |" % (
        name, rate, cpu, cpu / secs if secs else 0, trades / cpu if cpu else 0,
        lat["p50_us"] / 1e3, lat["p99_us"] / 1e3))
row("single node, TCP (--no-journal, 4 conns)", node, node_rate, node_cpu, node["seconds"], node["trades"])
row("gateway -> mock Kafka (closed loop, %d conns)" % gw["config"]["connections"], gw, gw_rate, gw_cpu, gw_secs, gw_trades)
lat = half["ack_latency"]
print("| gateway, open loop at %.0f/s (half its peak) | %.0f | | | | %.2f | %.2f |" % (
    half["config"]["rate"], half["trades_per_s"], lat["p50_us"] / 1e3, lat["p99_us"] / 1e3))
print()
print("gateway trades per core-second / node trades per second: %.0f%% (target >= 50%%)" % (
    100 * per_core / node_rate))
print("p99 ack through the gateway at half its peak: %.2f ms (target <= 5 ms)" % (lat["p99_us"] / 1e3))
EOF
if [ "${PERF:-0}" = 1 ]; then
  echo
  echo "where the gateway's time goes (perf report --no-children, top 25, self %):"
  perf report -i "$tmp/perf.data" --no-children --stdio --sort symbol 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -25
  echo "by thread (comm: slotd = the loop thread, rdk:* = librdkafka's):"
  perf report -i "$tmp/perf.data" --no-children --stdio --sort comm 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -8
  echo "by library (dso):"
  perf report -i "$tmp/perf.data" --no-children --stdio --sort dso 2>/dev/null |
    grep -E '^ +[0-9.]+%' | head -8
fi
