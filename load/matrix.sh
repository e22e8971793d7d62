#!/usr/bin/env bash
# matrix.sh — slotd against Redis streams for every client shape, in one run.
#
# Shapes: px as decimal text or float64 x map or array form x 1 or 4
# connections x W1 (1,000 symbols) or W1-10k: 16 in all. Each round measures
# Redis (load/peers/redis_peer.sh, its fastest set-up) once per workload and
# then every shape against a fresh slotd (journal on, default flags, via
# load/bench.sh); a shape's ratio in a round is slotd / the same round's
# Redis. Prints per shape the median ratio over the rounds with min..max,
# and the minimum over shapes: the figure issue #13 asks for.
#
#   load/matrix.sh [--rounds 3] [--trades 10M] [--build-dir build-bench]
# (10M, load/bench.sh's size: at 2M a run lasts ~0.3 s and its fixed start-up
# of ~0.1 s weighs; docs/performance.md, round 3. 3 rounds take ~6 minutes.)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 trades=10M build=build-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --trades) trades=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "matrix.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
scripts/deps.sh bench >/dev/null
load/bench.sh --build-dir "$build" --trades 1000 >/dev/null 2>&1   # builds slotd + slotload
n=$(awk -v t="$trades" 'BEGIN { m = 1; if (t ~ /[Kk]$/) m = 1e3; if (t ~ /M$/) m = 1e6;
                                 sub(/[KkM]$/, "", t); printf "%d", t * m }')
work=$(mktemp -d /tmp/slotd-matrix.XXXXXX)
trap 'rm -rf "$work"' EXIT
for w in w1 w1-10k; do
  "$build/load/slotload" --workload "$w" --trades "$n" --export "resp:$work/$w.resp" >/dev/null
done

rate() { awk -F'[:,]' '/"trades_per_s":/ {printf "%d", $2; exit}'; }
shapes=()
for w in w1 w1-10k; do for px in text float; do for form in map array; do for c in 1 4; do
  shapes+=("$w $px $form $c")
done; done; done; done

for r in $(seq "$rounds"); do
  declare -A redis=()
  for w in w1 w1-10k; do
    redis[$w]=$(load/peers/redis_peer.sh "$work/$w.resp" "$n" | python3 -c \
      'import json,sys; print(int(json.load(sys.stdin)["trades_per_s"]))')
    echo "round $r: Redis $w ${redis[$w]} trades/s" >&2
  done
  for s in "${shapes[@]}"; do
    read -r w px form c <<<"$s"
    v=$(load/bench.sh --no-build --build-dir "$build" --json --trades "$trades" --workload "$w" \
          --form "$form" -- --px "$px" --connections "$c" 2>/dev/null | rate)
    echo "$s $v ${redis[$w]}" >>"$work/runs"
    echo "round $r: $s: $v trades/s" >&2
  done
done

echo
echo "slotd vs Redis streams, $trades trades per run, $rounds rounds (journal on, default flags)"
echo "commit $(git rev-parse --short HEAD), command: load/matrix.sh --rounds $rounds --trades $trades"
python3 - "$work/runs" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    w, px, form, c, v, ref = line.split()
    runs.setdefault((w, px, form, int(c)), []).append((int(v), int(ref)))
print("| workload | px | form | conns | slotd trades/s (median) | x Redis (median) | min .. max |")
print("|---|---|---|---|---|---|---|")
worst = None
for k, rs in runs.items():
    ratios = sorted(v / ref for v, ref in rs)
    med = statistics.median(ratios)
    print("| %s | %s | %s | %d | %s | %.1f | %.1f .. %.1f |" % (
        *k, format(int(statistics.median(v for v, _ in rs)), ","), med, ratios[0], ratios[-1]))
    if worst is None or med < worst[1]:
        worst = (k, med)
print("\nminimum over shapes: %.1fx Redis (%s %s %s, %d connection(s))" % (worst[1], *worst[0]))
EOF
