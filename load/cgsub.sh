#!/usr/bin/env bash
# cgsub.sh — instructions slotd spends with subscribers attached, which do
# not drift with this machine's noise (load/subbench.sh's trades/s do):
# slotd under callgrind (journal on), load/subread (C) subscribed as SPEC
# (none, star: one "*", N: N subscribers of one symbol each), N W1 trades
# in array form from slotload, then wait until every subscriber has been
# pushed everything (slotd_subscriber_lag_trades 0), SIGTERM.
#
#   load/cgsub.sh [--keep DIR] SLOTD TRADES SPEC [SLOTLOAD]
#   prints "Ir <total> pushed <trades pushed> stored <trades stored>"
#
# Per stored trade: run two sizes and take the difference (start-up,
# shutdown and the SUBs cancel), then subtract SPEC none's:
#   (Ir(star, 1M) - Ir(star, 200k) - Ir(none, 1M) + Ir(none, 200k)) / 800k
# --keep DIR keeps callgrind.out for callgrind_annotate (where it went).
set -euo pipefail
keep=""
[ "${1:-}" = --keep ] && { keep=$2; shift 2; }
[ $# -ge 3 ] || { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
bin=$1 n=$2 spec=$3 slotload=${4:-$here/../build-bench/load/slotload}
subread=$(dirname "$slotload")/subread
d=$(mktemp -d)
pid="" sub_pid=""
cleanup() {
  [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  wait 2>/dev/null || true
  rm -rf "$d"
}
trap cleanup EXIT
metric() { curl -sf "127.0.0.1:$http/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" "$bin" --listen 127.0.0.1:0 \
  --http 127.0.0.1:0 --data-dir "$d/data" --port-file "$d/ports" --log-level warn 2>"$d/log" &
pid=$!
for _ in $(seq 600); do  # written whole: a line with its newline
  [ -s "$d/ports" ] && [ "$(tail -c1 "$d/ports" | od -An -c | tr -d ' ')" = '\n' ] && break
  sleep 0.1
done
read -r tcp http <"$d/ports"
for _ in $(seq 300); do curl -sf "127.0.0.1:$http/readyz" >/dev/null && break; sleep 0.2; done
if [ "$spec" != none ]; then
  "$subread" --port "$tcp" --spec "$spec" >"$d/sub.out" 2>&1 &
  sub_pid=$!
  until grep -q ready "$d/sub.out" 2>/dev/null; do
    kill -0 "$sub_pid" 2>/dev/null || { echo "cgsub.sh: subread failed" >&2; exit 1; }
    sleep 0.2
  done
fi
"$slotload" --port "$tcp" --http-port 0 --workload w1 --trades "$n" --form array --no-progress \
  >/dev/null 2>&1
# Pushes trail ingest (5 ms ticks, far longer under callgrind): all of them count.
for _ in $(seq 600); do
  lag=$(metric slotd_subscriber_lag_trades)
  [ "${lag:-0}" = 0 ] && break
  sleep 0.5
done
pushed=$(metric slotd_subscriber_trades_total) stored=$(metric slotd_trades_total)
kill -TERM "$pid"
wait "$pid" || true
pid=""
[ -n "$keep" ] && { mkdir -p "$keep"; cp "$d/cg.out" "$keep/callgrind.out"; }
awk -v p="${pushed:-0}" -v s="${stored:-0}" '/^summary:/ { print "Ir", $2, "pushed", p, "stored", s }' "$d/cg.out"
