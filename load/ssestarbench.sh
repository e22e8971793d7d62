#!/usr/bin/env bash
# ssestarbench.sh — what one `curl GET /subscribe?syms=*` reader costs
# ingest, with its id rebases (server/sse_cursor.h). One slotd (Release);
# --repeat times, interleaved: slotload --trades N of --workload with no
# subscriber, then with a curl syms=*&from=now reader writing to a file.
# Prints trades/s per run, the reader's events, rebases (distinct bases in
# its ids), longest id and base-file size, then medians with min-max.
#
#   flock /tmp/bench.lock load/ssestarbench.sh [--repeat 3] [--trades 3M] [--workload w1-10k]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=3 trades=3M workload=w1-10k BUILD=build-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --trades) trades=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -g -DNDEBUG" >/dev/null
cmake --build "$BUILD" -j2 --target slotd slotload >/dev/null
work=$(mktemp -d /tmp/slotd-ssestar.XXXXXX) pid="" curl_pid=""
cleanup() {
  [ -n "$curl_pid" ] && kill "$curl_pid" 2>/dev/null || true
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$BUILD/server/slotd" --listen 127.0.0.1:0 --http 127.0.0.1:0 --data-dir "$work/data" \
  --port-file "$work/ports" --log-level warn 2>"$work/log" &
pid=$!
for _ in $(seq 300); do [ -s "$work/ports" ] && break; sleep 0.05; done
read -r tcp http _ <"$work/ports"
load() {
  "$BUILD/load/slotload" --port "$tcp" --http-port 0 --workload "$workload" --trades "$trades" \
    --no-progress --json 2>/dev/null | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["trades_per_s"]))'
}
echo "slotd $(git rev-parse --short HEAD) ($BUILD), $trades $workload trades a run"
res=()
for i in $(seq "$repeat"); do
  none=$(load)
  curl -sN "http://127.0.0.1:$http/subscribe?syms=*&from=now" >"$work/sse" &
  curl_pid=$!
  sleep 0.3
  star=$(load)
  sleep 1
  kill "$curl_pid"; wait "$curl_pid" 2>/dev/null || true; curl_pid=""
  ev=$(grep -c '^id:' "$work/sse" || true)
  bases=$(grep '^id:' "$work/sse" | cut -d, -f1 | sort -u | wc -l)
  maxid=$(grep '^id:' "$work/sse" | awk '{ if (length > m) m = length } END { print m - 4 }')
  basesz=$(ls -S "$work/data/sse" | head -1 | xargs -I{} stat -c %s "$work/data/sse/{}")
  echo "run $i: none $none  star $star trades/s ($(python3 -c "print(round($star/$none,2))"))  events $ev  rebases $bases  longest id $maxid B  base file $basesz B"
  res+=("$none $star")
done
printf '%s\n' "${res[@]}" | python3 -c '
import sys, statistics
r = [tuple(map(int, l.split())) for l in sys.stdin]
n, s = [a for a, _ in r], [b for _, b in r]
q = [b / a for a, b in r]
print("median none %d (%d-%d)  star %d (%d-%d)  star/none %.2f (%.2f-%.2f)" % (
    statistics.median(n), min(n), max(n), statistics.median(s), min(s), max(s),
    statistics.median(q), min(q), max(q)))'
