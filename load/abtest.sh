#!/usr/bin/env bash
# abtest.sh — is server B as fast as server A? Interleaved runs of
# load/bench.sh (same slotload, fresh server and data dir each run), A then
# B, N times; prints each pair, the B/A ratio per pair, and the median ratio
# with its spread; and the CPU slotd spent on the same trades, B over A (all
# threads, and the loop thread alone: a cost the neighbours' load disturbs
# less than the wall-clock rate). The ratio of a pair measured back to back
# is what this noisy machine can compare (see docs/performance.md, "How to
# read").
#
#   load/abtest.sh A_SLOTD B_SLOTD [--repeat N] [bench.sh flags...]
#   load/abtest.sh /tmp/wt-base/build-bench/server/slotd build-bench/server/slotd \
#       --repeat 5 --trades 3M
#
# slotload is taken from --slotload PATH (default build-bench/load/slotload,
# built by bench.sh if missing); --slotload-a / --slotload-b give each side
# its own (A/B of the load generator against one server: pass the same
# slotd twice).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
a=$(realpath "$1") b=$(realpath "$2"); shift 2
repeat=3 slotload=build-bench/load/slotload sl_a="" sl_b="" bench=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --slotload) slotload=$2; shift 2 ;;
    --slotload-a) sl_a=$2; shift 2 ;;
    --slotload-b) sl_b=$2; shift 2 ;;
    *) bench+=("$1"); shift ;;
  esac
done
if [ ! -x "$slotload" ]; then
  load/bench.sh --trades 1 >/dev/null 2>&1 || true   # builds build-bench
fi
sl_a=$(realpath "${sl_a:-$slotload}") sl_b=$(realpath "${sl_b:-$slotload}")

# bench.sh takes a build dir: one per side, holding links to the binaries.
dirs=$(mktemp -d)
trap 'rm -rf "$dirs"' EXIT
for side in a b; do
  mkdir -p "$dirs/$side/server" "$dirs/$side/load"
done
ln -s "$sl_a" "$dirs/a/load/slotload"
ln -s "$sl_b" "$dirs/b/load/slotload"
ln -s "$a" "$dirs/a/server/slotd"
ln -s "$b" "$dirs/b/server/slotd"

# Each run's trades/s; bench.sh appends "trades/s cpu loop" (CPU clock ticks
# slotd spent during the load: all threads, the loop thread) to $BENCH_CPU_FILE.
export BENCH_CPU_FILE="$dirs/cpu"
rate() {
  load/bench.sh --no-build --build-dir "$dirs/$1" --json "${bench[@]}" 2>/dev/null |
    awk -F'[:,]' '/^  "trades_per_s":/ {printf "%d", $2}'
}
# Fields 2 and 3 of the CPU file's last line.
cpu() { tail -1 "$BENCH_CPU_FILE" | awk '{ print $2, $3 }'; }

med() { # median, min, max of the numbers on stdin, n of them
  sort -n | awk -v n="$1" '{ v[NR] = $1 }
    END { med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
          printf "%.3f  (min %.3f .. max %.3f over %d interleaved pairs)", med, v[1], v[n], n }'
}

printf 'run  %14s %14s  %6s  %9s %9s\n' "A trades/s" "B trades/s" "B/A" "cpu B/A" "loop B/A"
ratios=() cratios=() lratios=()
for i in $(seq "$repeat"); do
  ra=$(rate a); read -r ca la < <(cpu)
  rb=$(rate b); read -r cb lb < <(cpu)
  [ -n "$ra" ] && [ -n "$rb" ] && [ "$ra" -gt 0 ] || { echo "abtest.sh: run $i failed" >&2; exit 1; }
  r=$(awk -v a="$ra" -v b="$rb" 'BEGIN { printf "%.3f", b / a }')
  # CPU per trade, B over A (same trades each side): above 1, B costs more.
  c=$(awk -v a="$ca" -v b="$cb" 'BEGIN { printf "%.3f", a ? b / a : 0 }')
  l=$(awk -v a="$la" -v b="$lb" 'BEGIN { printf "%.3f", a ? b / a : 0 }')
  ratios+=("$r") cratios+=("$c") lratios+=("$l")
  printf '%3d  %14d %14d  %6s  %9s %9s\n' "$i" "$ra" "$rb" "$r" "$c" "$l"
done
echo "B/A median $(printf '%s\n' "${ratios[@]}" | med "$repeat")"
echo "slotd CPU per trade B/A median $(printf '%s\n' "${cratios[@]}" | med "$repeat");" \
     "loop thread $(printf '%s\n' "${lratios[@]}" | med "$repeat")"
echo "A = $a  (slotload $sl_a)"
echo "B = $b  (slotload $sl_b)"
