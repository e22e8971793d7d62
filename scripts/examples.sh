#!/usr/bin/env bash
# Regenerate the operator examples in docs/operations.md: start slotd on spare loopback
# ports, stream a few trades, and print each curl command with its output.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test >/dev/null
cmake -S . -B build >/dev/null && cmake --build build -j"$(nproc)" --target slotd >/dev/null
dir=$(mktemp -d)
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
build/server/slotd --listen 127.0.0.1:0 --http 127.0.0.1:0 --data-dir "$dir" \
  --port-file "$dir/ports" 2>"$dir/log" &
pid=$!
while [ ! -s "$dir/ports" ]; do sleep 0.05; done
read -r tcp http < "$dir/ports"
until curl -sf "127.0.0.1:$http/readyz" >/dev/null; do sleep 0.05; done
/usr/bin/python3 - "$tcp" <<'PY'
import socket, sys, msgpack
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
u = msgpack.Unpacker(raw=False)
def call(m):
    s.sendall(msgpack.packb(m, use_bin_type=True))
    while True:
        for r in u:
            return r
        u.feed(s.recv(65536))
call(["HELLO", {"client": "examples"}])
t0 = 1767225600000000000
trades = [{"sym": "AAPL", "ts": t0 + i * 20_000_000_000, "px": "%.2f" % (187.25 + (i % 7) * 0.05 - 0.1),
           "qty": 100 + i, "side": "BS"[i % 2], "id": i + 1} for i in range(12)]
trades.append({"sym": "AAPL", "ts": t0 + 5_000_000_000, "px": "187.00", "qty": 5, "side": "S", "id": 99})
trades += [{"sym": "MSFT", "ts": t0 + i * 1_000_000_000, "px": "402.10", "qty": 10, "side": "B", "id": 200 + i} for i in range(5)]
assert call(["T", 1, trades])[0] == "ACK"
opt = [{"sym": "AAPL 260116C200", "ts": t0, "px": "3.45", "qty": 2, "strike": "200", "expiry": 1768521600000000000, "right": "C", "id": 500}]
assert call(["T", 2, opt, "option_trade"])[0] == "ACK"
PY
show() {
  printf '$ curl -s %s\n' "$1" | sed "s/127.0.0.1:$http/localhost:7401/"
  local body
  body=$(curl -s "127.0.0.1:$http$2")
  if [ "${3:-}" != raw ]; then body=$(/usr/bin/python3 -m json.tool --indent 1 <<<"$body"); fi
  local n; n=$(wc -l <<<"$body")
  head -"${4:-40}" <<<"$body"
  [ "$n" -gt "${4:-40}" ] && echo "... ($n lines)"
  echo
}
show "localhost:7401/healthz" /healthz
show "localhost:7401/readyz" /readyz
show "localhost:7401/stats" /stats json 80
show "localhost:7401/metrics" /metrics raw 30
show "localhost:7401/schema" /schema json 25
show "'localhost:7401/symbols?top=2&by=volume'" "/symbols?top=2&by=volume"
show "localhost:7401/symbols/AAPL" /symbols/AAPL
show "'localhost:7401/symbols/AAPL/trades?from=2026-01-01T00:00:00Z&limit=2'" "/symbols/AAPL/trades?from=2026-01-01T00:00:00Z&limit=2"
show "'localhost:7401/symbols/AAPL/bars?interval=1m&from=2026-01-01T00:00:00Z&to=2026-01-01T00:05:00Z'" "/symbols/AAPL/bars?interval=1m&from=2026-01-01T00:00:00Z&to=2026-01-01T00:05:00Z" json 30
show "'localhost:7401/symbols/AAPL/trades?limit=abc'" "/symbols/AAPL/trades?limit=abc"
show "localhost:7401/symbols/NOPE" /symbols/NOPE
