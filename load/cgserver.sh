#!/usr/bin/env bash
# cgserver.sh — instructions the whole server spends on N trades, which do
# not drift with this machine's noise: slotd under callgrind, N W1 trades
# (map form) from slotload, SIGTERM, total Ir. Run it at two sizes and take
# the difference to cancel start-up and shutdown:
#
#   load/cgserver.sh SLOTD N [SLOTLOAD]      prints "Ir <total>"
#   a=$(load/cgserver.sh build-bench/server/slotd 200000)
#   b=$(load/cgserver.sh build-bench/server/slotd 1000000)   # per trade: (b - a) / 800000
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
bin=$1 n=$2 slotload=${3:-$(dirname "$0")/../build-bench/load/slotload}
d=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$d"' EXIT
valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" "$bin" --listen 127.0.0.1:0 \
  --http 127.0.0.1:0 --data-dir "$d/data" --port-file "$d/ports" --log-level warn 2>"$d/log" &
pid=$!
for _ in $(seq 600); do [ -s "$d/ports" ] && break; sleep 0.1; done
read -r tcp http <"$d/ports"
for _ in $(seq 300); do curl -sf "127.0.0.1:$http/readyz" >/dev/null && break; sleep 0.2; done
"$slotload" --port "$tcp" --http-port 0 --workload w1 --trades "$n" --form map --no-progress >/dev/null 2>&1
kill -TERM "$pid"
wait "$pid" || true
awk '/^summary:/ { print "Ir", $2 }' "$d/cg.out"
