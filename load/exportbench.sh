#!/usr/bin/env bash
# exportbench.sh — export throughput (issue #17: >= 2M trades/s to CSV).
# One slotd (Release build) is filled with --trades W1 trades by slotload;
# then, --repeat times, interleaved: `slotctl export` as CSV and as JSONL to
# /dev/null, and the reference measured in the same run, `curl` of the same
# GET /export to /dev/null (the server's side alone: slotctl/curl = what
# slotctl itself costs). Prints each run, then per shape the median trades/s
# with the min-max spread.
#
#   load/exportbench.sh [--repeat N] [--trades N] [--build DIR]
#   flock /tmp/bench.lock load/exportbench.sh --repeat 3 --trades 10M
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=3 trades=10M BUILD=build-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --trades) trades=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
done
if [ ! -x "$BUILD/server/slotd" ] || [ ! -x "$BUILD/load/slotload" ] || [ ! -x "$BUILD/load/slotctl" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -g -DNDEBUG" >/dev/null
  cmake --build "$BUILD" -j2 --target slotd slotload slotctl >/dev/null
fi
SLOTD=$BUILD/server/slotd SLOTLOAD=$BUILD/load/slotload SLOTCTL=$BUILD/load/slotctl

. load/benchlib.sh   # (cwd: the repository root)
bench_work exportbench

"$SLOTD" --listen 127.0.0.1:0 --http 127.0.0.1:0 --data-dir "$work/data" \
  --port-file "$work/ports" --log-level warn 2>"$work/slotd.log" &
slotd_pid=$!
bench_wait_ports
read -r tcp http _ <"$work/ports"
"$SLOTLOAD" --port "$tcp" --http-port 0 --trades "$trades" --no-progress >/dev/null
n=$(curl -s "http://127.0.0.1:$http/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["trades"])')
echo "slotd $(git rev-parse --short HEAD) ($BUILD), $n W1 trades; $(nproc) cores"

now() { date +%s.%N; }
runs=()
one() { # shape, command...
  local shape=$1 t0 t1
  shift
  t0=$(now)
  "$@" >/dev/null
  t1=$(now)
  local rate
  rate=$(python3 -c "print(int($n / ($t1 - $t0)))")
  printf '  %-14s %6.2f s  %10d trades/s\n' "$shape" "$(python3 -c "print($t1 - $t0)")" "$rate"
  runs+=("$shape $rate")
}
for i in $(seq "$repeat"); do
  echo "run $i"
  one slotctl-csv "$SLOTCTL" --http-port "$http" export --format csv -o /dev/null
  one curl-csv curl -sf "http://127.0.0.1:$http/export?syms=*&format=csv" -o /dev/null
  one slotctl-jsonl "$SLOTCTL" --http-port "$http" export --format jsonl -o /dev/null
  one curl-jsonl curl -sf "http://127.0.0.1:$http/export?syms=*&format=jsonl" -o /dev/null
done
printf '%s\n' "${runs[@]}" | python3 -c '
import sys, statistics
by = {}
for line in sys.stdin:
    shape, rate = line.split()
    by.setdefault(shape, []).append(int(rate))
print("median trades/s (min-max):")
for shape, v in by.items():
    print("  %-14s %10d  (%d-%d)" % (shape, statistics.median(v), min(v), max(v)))
for fmt in ("csv", "jsonl"):
    a, b = by["slotctl-" + fmt], by["curl-" + fmt]
    print("  slotctl/curl %-5s %.2f" % (fmt, statistics.median(x / y for x, y in zip(a, b))))
'
