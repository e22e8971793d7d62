#!/usr/bin/env bash
# profile.sh — where slotd's loop thread spends its time under one slotload
# run: perf (cpu-clock, call graphs) attached to a fresh slotd, then the
# loop thread's top symbols, each thread's share, and the share of the
# loop's samples taken inside a page fault.
#
#   load/profile.sh [--slotd PATH] [--top N] [--keep DIR] [slotload flags...]
#   load/profile.sh --workload w1-10k --px float --trades 10M
#
# Default slotd and slotload: build-bench/ (built by load/bench.sh). The
# loop thread is slotd's main thread (its pid).
set -euo pipefail
cd "$(dirname "$0")/.."
slotd=build-bench/server/slotd top=15 keep=""
while [ $# -gt 0 ]; do
  case "$1" in
    --slotd) slotd=$2; shift 2 ;;
    --top) top=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) break ;;
  esac
done
command -v perf >/dev/null || { echo "profile.sh: needs perf (apt-get install linux-perf)" >&2; exit 2; }
[ -x build-bench/load/slotload ] || load/bench.sh --trades 1000 >/dev/null 2>&1
out=${keep:-$(mktemp -d /tmp/slotd-profile.XXXXXX)}
mkdir -p "$out"
port=$((20000 + RANDOM % 20000)) http=$((port + 1))
"$slotd" --listen 127.0.0.1:$port --http 127.0.0.1:$http --data-dir "$out/data" >"$out/slotd.log" 2>&1 &
spid=$!
perf_pid=""
cleanup() {
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null || true
  kill "$spid" 2>/dev/null || true
  wait 2>/dev/null || true
  [ -n "$keep" ] || rm -rf "$out"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
perf record -q -e cpu-clock -g -p "$spid" -o "$out/perf.data" 2>"$out/perf.err" &
perf_pid=$!
sleep 0.5
build-bench/load/slotload --port "$port" --http-port "$http" --no-progress "$@" >"$out/load.txt"
kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true; perf_pid=""
grep -E "trades/s|per million" "$out/load.txt"
echo "== threads (share of all slotd samples; $spid is the loop)"
perf report -i "$out/perf.data" --no-children --sort pid --stdio -g none 2>/dev/null | awk '/%/ && n++ < 8'
echo "== loop thread, top $top symbols (share of all slotd samples)"
perf report -i "$out/perf.data" --no-children --tid "$spid" --sort sym --stdio -g none 2>/dev/null |
  awk -v t="$top" '/%/ && n++ < t'
echo "== loop thread samples inside a page fault"
perf script -i "$out/perf.data" --tid "$spid" 2>/dev/null |
  awk 'BEGIN { RS = "" } { n++ } /exc_page_fault/ { f++ }
       END { printf "%d of %d (%.1f%%)\n", f, n, n ? 100 * f / n : 0 }'
