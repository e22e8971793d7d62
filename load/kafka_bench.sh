#!/usr/bin/env bash
# Kafka-fed node vs TCP ingest for the same W1 trades (issue #15's targets),
# against librdkafka's mock cluster (tests/kafka/mockcluster):
#   1. slotload --kafka produces N trades, a trade per record (array form),
#      over 64 partitions: the mock cluster keeps only the newest ~100k
#      records of a partition and W1's hottest symbol is ~18% of the trades,
#      so N <= ~500k (the rate is of the records applied, whatever N);
#   2. the mock cluster's own cost: kcat consumes that topic to /dev/null;
#   3. a Kafka-fed slotd applies the topic from offset 0;
#   4. the same N trades as T messages of <= 1000 trades of one symbol, applied;
#   5. a TCP-fed slotd ingests the same N trades from slotload;
#   6. restart: a snapshot of R trades (T messages), then M more trades behind
#      it; time from start to /readyz 200. Uniform symbols here (--zipf 0):
#      W1's hottest symbol alone would overflow a mock partition at 10M.
# Apply rates are timed from the first trade applied to caught up (start-up
# and the Kafka connection are not the apply path).
#   load/kafka_bench.sh [BUILD_DIR] [N] [R] [M]  (defaults build 500000 10000000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}; N=${2:-500000}; R=${3:-10000000}; M=${4:-1000000}
tmp=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$tmp"' EXIT
now() { date +%s.%N; }
stat_of() { curl -s "127.0.0.1:$1/stats" | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"; }
caught_up() { # HTTP_PORT: every partition at its high watermark, and the topic's records there
  [ "$(stat_of "$1" "int(bool(d['kafka']['partitions']) and all(p['lag'] == 0 for p in d['kafka']['partitions']) and sum(p['high_watermark'] for p in d['kafka']['partitions']) >= $2)" 2>/dev/null)" = 1 ]
}
wait_ready() { until [ "$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$1/readyz")" = 200 ]; do sleep 0.02; done; }

mkfifo "$tmp/mc.in"
exec 3<>"$tmp/mc.in"
"$B/tests/mockcluster" --brokers 3 --topic w1 --partitions 64 --topic w1b --partitions 64 --topic w1r --partitions 128 <&3 >"$tmp/mc.out" 2>/dev/null &
until [ -s "$tmp/mc.out" ]; do sleep 0.05; done
BS=$(head -1 "$tmp/mc.out")
echo "commit $(git rev-parse --short HEAD); mock cluster $BS; N=$N R=$R M=$M"

"$B/load/slotload" --kafka "$BS" --kafka-topic w1 --trades "$N" --form array --px text | sed 's/^/produce: /'

t0=$(now); got=$(kcat -C -b "$BS" -t w1 -o beginning -e -q -X fetch.wait.max.ms=10 -f '\n' | wc -l); t1=$(now)
echo "mock cluster alone (kcat consuming $got records to /dev/null): $(echo "$got / ($t1 - $t0)" | bc) records/s"

K="--source kafka --kafka-brokers $BS --kafka-topic w1 --kafka-node 0/1 --kafka-conf fetch.wait.max.ms=10 --kafka-conf log_level=3"
t0=$(now)
"$B/server/slotd" --listen 127.0.0.1:0 --http 127.0.0.1:17491 --data-dir "$tmp/k" $K --checkpoint-bytes 0 --checkpoint-on-exit >"$tmp/k.log" 2>&1 &
kp=$!
until [ "$(stat_of 17491 "d['trades'] or 0" 2>/dev/null || echo 0)" -gt 0 ]; do sleep 0.005; done; t0=$(now)
until caught_up 17491 "$N"; do sleep 0.01; done; t1=$(now)
a=$(stat_of 17491 "d['trades']")
echo "kafka-fed node, a trade per record: $a applied (what the mock kept), first to last: $(echo "$a / ($t1 - $t0)" | bc) trades/s"
kill -TERM $kp; wait $kp || true

# The same trades as T messages of up to 1000 trades of one symbol per record.
"$B/load/slotload" --kafka "$BS" --kafka-topic w1b --trades "$N" --form array --px text \
  --kafka-record batch --batch 1000 >/dev/null
Kb="--source kafka --kafka-brokers $BS --kafka-topic w1b --kafka-node 0/1 --kafka-conf fetch.wait.max.ms=10 --kafka-conf log_level=3"
t0=$(now)
"$B/server/slotd" --listen 127.0.0.1:0 --http 127.0.0.1:17494 --data-dir "$tmp/kb" $Kb --checkpoint-bytes 0 >"$tmp/kb.log" 2>&1 &
kp=$!
until [ "$(stat_of 17494 "d['trades'] or 0" 2>/dev/null || echo 0)" -gt 0 ]; do sleep 0.005; done; t0=$(now)
until caught_up 17494 1; do sleep 0.01; done; t1=$(now)
a=$(stat_of 17494 "d['trades']")
echo "kafka-fed node, T messages of <= 1000 trades by symbol: $a applied, first to last: $(echo "$a / ($t1 - $t0)" | bc) trades/s"
kill -TERM $kp; wait $kp || true

"$B/server/slotd" --listen 127.0.0.1:17492 --http 127.0.0.1:17493 --data-dir "$tmp/t" --no-journal >"$tmp/t.log" 2>&1 &
tp=$!
wait_ready 17493
"$B/load/slotload" --port 17492 --http-port 17493 --trades "$N" --form array --batch 1000 --connections 1 --no-progress --json |
  /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print('tcp-fed node (--no-journal, 1 connection, batches of 1000): %.0f trades/s' % d['trades_per_s'])" || true
"$B/load/slotload" --port 17492 --http-port 17493 --trades "$N" --form array --batch 1 --inflight 1000 --connections 1 --no-progress --json |
  /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print('tcp-fed node (--no-journal, 1 connection, a trade a batch): %.0f trades/s' % d['trades_per_s'])" || true
kill -TERM $tp; wait $tp || true

"$B/load/slotload" --kafka "$BS" --kafka-topic w1r --trades "$R" --form array --px text \
  --zipf 0 --kafka-record batch --batch 1000 >/dev/null
Kr="--source kafka --kafka-brokers $BS --kafka-topic w1r --kafka-node 0/1 --kafka-conf fetch.wait.max.ms=10 --kafka-conf log_level=3"
"$B/server/slotd" --listen 127.0.0.1:0 --http 127.0.0.1:17495 --data-dir "$tmp/kr" $Kr --checkpoint-bytes 0 --checkpoint-on-exit >"$tmp/kr.log" 2>&1 &
kp=$!
until caught_up 17495 1; do sleep 0.05; done
echo "snapshot source: $(stat_of 17495 "d['trades']") trades applied of $R produced"
kill -TERM $kp; wait $kp || true   # the last snapshot holds them
"$B/load/slotload" --kafka "$BS" --kafka-topic w1r --trades "$M" --seed 2 --form array --px text \
  --zipf 0 --kafka-record batch --batch 1000 >/dev/null
t0=$(now)
"$B/server/slotd" --listen 127.0.0.1:0 --http 127.0.0.1:17495 --data-dir "$tmp/kr" $Kr --checkpoint-bytes 0 >"$tmp/kr2.log" 2>&1 &
kp=$!
wait_ready 17495; t1=$(now)
echo "restart: snapshot of $R trades + $M trades (T messages) behind it: ready in $(echo "$t1 - $t0" | bc) s, holding $(stat_of 17495 "d['trades']") trades"
grep -o 'snapshot_loaded.*' "$tmp/kr2.log" | sed 's/^/  /'
kill -TERM $kp; wait $kp || true
echo quit >&3
