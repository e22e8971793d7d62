#!/usr/bin/env bash
# redis_peer.sh RESP_FILE TRADES — load W1 into Redis 7 streams, the fastest
# honest way, and print one JSON line of results.
#
# RESP_FILE holds one XADD per trade (slotload --export resp:FILE): one
# stream per symbol, fields ts px qty side id. A private redis-server is
# started on a free loopback port with no persistence (--save '' and
# --appendonly no: Redis gets the most favourable set-up), loaded with
# `redis-cli --pipe` (one connection, no round trip per command), checked
# (the streams hold exactly TRADES entries) and stopped. Only the --pipe run
# is timed. Memory: INFO's used_memory (Redis's own accounting) and the
# process's RSS growth.
set -euo pipefail
resp=$1 trades=$2
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
  echo "redis_peer.sh: redis-server/redis-cli missing (apt-get install redis-server redis-tools)" >&2
  exit 2
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dir=$(mktemp -d /tmp/redis-peer.XXXXXX)
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$dir" --logfile "$dir/redis.log" &
pid=$!
stop() {
  if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap stop EXIT

cli() { redis-cli -p "$port" "$@"; }
for _ in $(seq 100); do
  [ "$(cli ping 2>/dev/null)" = PONG ] && break
  sleep 0.05
done
info() { cli info memory | tr -d '\r' | awk -F: -v k="$1" '$1 == k {print $2}'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

mem0=$(info used_memory) rss0=$(rss_kb)
t0=$(date +%s.%N)
cli --pipe <"$resp" >"$dir/pipe.out"
t1=$(date +%s.%N)
mem1=$(info used_memory) rss1=$(rss_kb)
grep -q "errors: 0," "$dir/pipe.out" || { cat "$dir/pipe.out" >&2; exit 1; }
stored=$(cli eval "local n = 0 for _, k in ipairs(redis.call('keys', '*')) do n = n + redis.call('xlen', k) end return n" 0)
[ "$stored" = "$trades" ] || { echo "redis_peer.sh: $stored entries stored, $trades expected" >&2; exit 1; }
version=$(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p')

python3 - "$trades" "$t0" "$t1" "$mem0" "$mem1" "$rss0" "$rss1" "$version" <<'EOF'
import json, sys
n, t0, t1, m0, m1, r0, r1, v = sys.argv[1:]
n = int(n); secs = float(t1) - float(t0)
print(json.dumps({
    "system": "Redis %s streams" % v,
    "how": "XADD per trade, redis-cli --pipe, no persistence",
    "trades": n, "load_s": secs, "trades_per_s": n / secs,
    "bytes_per_trade": (int(m1) - int(m0)) / n,
    "rss_mib_per_million": (int(r1) - int(r0)) * 1024 / n * 1e6 / 2**20,
}))
EOF
