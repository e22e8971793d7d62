#!/usr/bin/env bash
# subbench.sh — what subscribers cost ingest (issue #17's targets): W1
# through load/bench.sh with no subscriber, one subscriber to "*", and 100
# subscribers to one symbol each (SYM0000..SYM0099, the hottest), runs
# interleaved, each config --repeat times; prints median and spread.
#
#   load/subbench.sh                       3 x 3 runs of 5M trades, array form
#   load/subbench.sh --repeat 5 --trades 10M
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=3 trades=5M
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --trades) trades=$2; shift 2 ;;
    *) echo "subbench.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
load/bench.sh --trades 1000 --json >/dev/null   # build once
declare -A rates
for i in $(seq "$repeat"); do
  for cfg in none star 100; do
    args=(--no-build --json --trades "$trades" --form array)
    [ "$cfg" != none ] && args+=(--sub "$cfg")
    r=$(load/bench.sh "${args[@]}" | awk -F'[:,]' '/^  "trades_per_s":/ {printf "%d", $2}')
    echo "run $i $cfg: $r trades/s" >&2
    rates[$cfg]="${rates[$cfg]:-} $r"
  done
done
for cfg in none star 100; do
  echo ${rates[$cfg]} | tr ' ' '\n' | sort -n | awk -v c="$cfg" -v base="$(echo ${rates[none]} | tr ' ' '\n' | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}')" '
    { v[NR] = $1 }
    END {
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%-5s median %d trades/s (min %d .. max %d, spread %.1f%%), %+.1f%% vs none\n",
             c, med, v[1], v[NR], med ? 100 * (v[NR] - v[1]) / med : 0, 100 * (med - base) / base
    }'
done
