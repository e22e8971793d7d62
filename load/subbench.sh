#!/usr/bin/env bash
# subbench.sh — what subscribers cost ingest (issue #17's targets): W1
# through load/bench.sh with no subscriber, one subscriber to "*", and 100
# subscribers to one symbol each (SYM0000..SYM0099, the hottest), runs
# interleaved, each config --repeat times; prints median and spread, and the
# median CPU seconds of slotd and of the subscribers' reader (load/subread,
# C: it decodes every trade through the client library).
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
load/bench.sh --trades 1000 --json >/dev/null 2>&1   # build once
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { printf "%s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
err=$(mktemp)
trap 'rm -f "$err"' EXIT
declare -A rates cpu rcpu
for i in $(seq "$repeat"); do
  for cfg in none star 100; do
    args=(--no-build --json --trades "$trades" --form array)
    [ "$cfg" != none ] && args+=(--sub "$cfg")
    r=$(load/bench.sh "${args[@]}" 2>"$err" | awk -F'[:,]' '/^  "trades_per_s":/ {printf "%d", $2}')
    grep -E '^(subread:|slotd_subscriber_lag_trades|bench.sh: slotd cpu)' "$err" >&2 || true
    c=$(awk '/^bench.sh: slotd cpu/ { print $4 }' "$err")
    rc=$(sed -n 's/^subread: .*, cpu \([0-9.]*\) s$/\1/p' "$err")
    echo "run $i $cfg: $r trades/s, slotd cpu ${c:-?} s, reader cpu ${rc:-0} s" >&2
    rates[$cfg]="${rates[$cfg]:-} $r"
    cpu[$cfg]="${cpu[$cfg]:-} $c"
    rcpu[$cfg]="${rcpu[$cfg]:-} ${rc:-0}"
  done
done
base=$(echo ${rates[none]} | median)
base_cpu=$(echo ${cpu[none]} | median)
for cfg in none star 100; do
  echo ${rates[$cfg]} | tr ' ' '\n' | sort -n | awk -v c="$cfg" -v base="$base" \
      -v cpu="$(echo ${cpu[$cfg]} | median)" -v bcpu="$base_cpu" -v rcpu="$(echo ${rcpu[$cfg]} | median)" '
    { v[NR] = $1 }
    END {
      med = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      printf "%-5s median %d trades/s (min %d .. max %d, spread %.1f%%), %+.1f%% vs none; " \
             "slotd cpu %.2f s (%+.0f%%), reader cpu %.2f s\n",
             c, med, v[1], v[NR], med ? 100 * (v[NR] - v[1]) / med : 0, 100 * (med - base) / base,
             cpu, 100 * (cpu - bcpu) / bcpu, rcpu
    }'
done
