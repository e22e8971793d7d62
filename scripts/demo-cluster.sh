#!/usr/bin/env bash
# A local demo cluster on loopback (docs/cluster.md, "Demo cluster"):
# librdkafka's mock Kafka cluster (3 brokers, topic "trades" with 4
# partitions, "trades.seqs"), four Kafka-fed nodes (two groups of two:
# --kafka-node 0/2 and 1/2, twice) and a gateway in front of them; then
# slotload streams trades through the gateway and a few queries show the
# cluster answering as one slotd.
#
#   scripts/demo-cluster.sh [--trades N] [--keep] [--build DIR]
#
#   gateway  TCP 127.0.0.1:7400  HTTP 127.0.0.1:7401
#   nodes    TCP 127.0.0.1:7410..7413  HTTP 127.0.0.1:7420..7423
#
# --keep leaves everything running until Ctrl-C (point slotload, curl or a
# client library at the gateway meanwhile). Logs and data: $DEMO_DIR
# (default a new temporary directory), removed at exit unless --keep.
set -euo pipefail
cd "$(dirname "$0")/.."
build=build trades=200K keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --trades) trades=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--trades N] [--keep] [--build DIR]" >&2; exit 2 ;;
  esac
done
for b in server/slotd tests/mockcluster load/slotload; do
  [ -x "$build/$b" ] || { echo "no $build/$b: build first (README, 'Build')" >&2; exit 2; }
done
dir=${DEMO_DIR:-$(mktemp -d -t slotd-demo-XXXXXX)}
mkdir -p "$dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$keep" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# The mock cluster reads commands on stdin: keep it open through a fifo.
mkfifo "$dir/mock.in"
"$build/tests/mockcluster" --brokers 3 --topic trades --partitions 4 \
  <"$dir/mock.in" >"$dir/mock.out" 2>"$dir/mock.log" &
pids+=($!)
exec 3>"$dir/mock.in"
for _ in $(seq 100); do [ -s "$dir/mock.out" ] && break; sleep 0.05; done
brokers=$(head -1 "$dir/mock.out")
[ -n "$brokers" ] || { echo "the mock cluster did not start: $dir/mock.log" >&2; exit 1; }
echo "topic trades.seqs 2" >&3
echo "mock Kafka: $brokers"

wait_ready() { # HTTP port, name
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    sleep 0.1
  done
  echo "$2 not ready: see $dir/$2.log" >&2
  exit 1
}

nodes=()
for k in 0 1 2 3; do
  own="$((k % 2))/2"
  "$build/server/slotd" --source kafka --kafka-brokers "$brokers" --kafka-topic trades \
    --kafka-node "$own" --kafka-conf fetch.wait.max.ms=50 --kafka-conf log_level=3 \
    --listen "127.0.0.1:741$k" --http "127.0.0.1:742$k" --data-dir "$dir/node$k" \
    >"$dir/node$k.log" 2>&1 &
  pids+=($!)
  nodes+=(--gateway-node "$own@127.0.0.1:741$k")
done
"$build/server/slotd" --gateway --kafka-brokers "$brokers" --kafka-topic trades \
  --kafka-conf log_level=3 "${nodes[@]}" \
  --listen 127.0.0.1:7400 --http 127.0.0.1:7401 --data-dir "$dir/gateway" \
  >"$dir/gateway.log" 2>&1 &
pids+=($!)
for k in 0 1 2 3; do wait_ready "742$k" "node$k"; done
wait_ready 7401 gateway
echo "nodes 0/2 on :7410 :7412, 1/2 on :7411 :7413; gateway on :7400 (HTTP :7401)"

"$build/load/slotload" --port 7400 --http-port 0 --trades "$trades" --no-progress

# Wait until every node has applied what the gateway produced, then ask.
want=$(curl -s http://127.0.0.1:7401/stats | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["metrics"]["trades_total"])' 2>/dev/null || echo 0)
for _ in $(seq 300); do
  sum=$(curl -s http://127.0.0.1:7401/stats | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["cluster"]["sum"].get("trades", 0))')
  [ "$sum" -ge $((2 * want)) ] && break
  sleep 0.1
done
echo
echo "GET /stats (the cluster section, abridged): trades per node"
curl -s http://127.0.0.1:7401/stats | python3 -c '
import json, sys
c = json.load(sys.stdin)["cluster"]
for n in c["nodes"]:
    print("  %-22s up=%s trades=%s" % (n["node"], n["up"], n.get("stats", {}).get("trades")))
print("  sum: trades=%d over %d nodes; partial=%s" % (c["sum"]["trades"], c["sum"]["nodes_up"], c["partial"]))'
echo "GET /symbols?top=3 (merged over the node groups)"
curl -s "http://127.0.0.1:7401/symbols?top=3"; echo
sym=$(curl -s "http://127.0.0.1:7401/symbols?top=1" | python3 -c \
  'import json,sys; print(json.load(sys.stdin)["symbols"][0]["symbol"])')
echo "GET /symbols/$sym (from a node that owns it)"
curl -s "http://127.0.0.1:7401/symbols/$sym"; echo
if [ "$keep" = 1 ]; then
  echo "running; data and logs in $dir; Ctrl-C stops everything"
  wait
fi
