#!/usr/bin/env bash
# tlsbench.sh — TLS ingest against plain ingest (issue #18: TLS >= 70% of
# plain), and the TLS handshake rate. One slotd serves both a plain --listen
# port and a --tls-port (same process, same store, same flags); slotload
# runs the same W1 shape against each, interleaved plain, TLS, plain, TLS
# ... so drift on this shared machine hits both sides alike. Prints each
# pair, the TLS/plain ratio per pair, the medians with min-max spread, then
# the handshake rate: `openssl s_time -new` (full handshakes, one client)
# for --seconds (2 clients; TLSBENCH_CLIENTS=N), counted by slotd's
# slotd_tls_handshakes_total over wall time.
#
#   load/tlsbench.sh [--repeat N] [--seconds S] [--build DIR] [slotload flags...]
#   load/tlsbench.sh --repeat 3 --seconds 3
#
# Certificates (P-256, a throwaway CA) are made with the openssl command.
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=3 seconds=3 BUILD=build-bench extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done
if [ ! -x "$BUILD/server/slotd" ] || [ ! -x "$BUILD/load/slotload" ]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -g -DNDEBUG" >/dev/null
  cmake --build "$BUILD" -j2 --target slotd slotload >/dev/null
fi
SLOTD=$BUILD/server/slotd SLOTLOAD=$BUILD/load/slotload

. load/benchlib.sh   # (cwd: the repository root)
bench_work tlsbench

ossl() { openssl "$@" >/dev/null 2>&1; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/ca.key" \
  -out "$work/ca.pem" -days 2 -subj /CN=tlsbench-ca
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/server.key" \
  -out "$work/server.csr" -subj /CN=localhost
echo "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$work/ext"
ossl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
  -CAcreateserial -out "$work/server.pem" -days 2 -extfile "$work/ext"

"$SLOTD" --listen 127.0.0.1:0 --http 127.0.0.1:0 --tls-port 0 --tls-cert "$work/server.pem" \
  --tls-key "$work/server.key" --data-dir "$work/data" --port-file "$work/ports" \
  --log-level warn 2>"$work/slotd.log" &
slotd_pid=$!
bench_wait_ports
read -r tcp_port http_port tls_port _ <"$work/ports"

# trades/s of one slotload run (its JSON report).
run() {
  "$SLOTLOAD" --duration "${seconds}s" --pool 3M --http-port "$http_port" --json --no-progress \
    "${extra[@]}" "$@" 2>>"$work/slotload.log" |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.0f" % r["trades_per_s"])'
}

metric() {
  python3 - "$http_port" "$1" <<'EOF'
import sys, urllib.request
body = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=10).read().decode()
print(next(int(float(l.split()[-1])) for l in body.splitlines() if l.startswith(sys.argv[2] + " ")))
EOF
}

plain=() tls=()
printf '%-4s %15s %15s %9s\n' run "plain trades/s" "TLS trades/s" TLS/plain
for i in $(seq "$repeat"); do
  p=$(run --port "$tcp_port")
  t=$(run --port "$tls_port" --tls --tls-ca "$work/ca.pem")
  plain+=("$p") tls+=("$t")
  printf '%-4s %15s %15s %9s\n' "$i" "$p" "$t" "$(python3 -c "print('%.2f' % ($t / $p))")"
done
python3 - "${plain[*]}" "${tls[*]}" <<'EOF'
import statistics, sys
p = [float(x) for x in sys.argv[1].split()]
t = [float(x) for x in sys.argv[2].split()]
r = [b / a for a, b in zip(p, t)]
print("median %14.0f %15.0f %9.2f" % (statistics.median(p), statistics.median(t), statistics.median(r)))
print("spread %6.0f-%-7.0f %7.0f-%-7.0f %4.2f-%-4.2f" % (min(p), max(p), min(t), max(t), min(r), max(r)))
EOF

# Handshakes: $clients s_time clients at once (one waits for each
# handshake's round trips; several keep slotd's loop busy).
clients=${TLSBENCH_CLIENTS:-2}
before=$(metric slotd_tls_handshakes_total)
t0=$(date +%s.%N) pids=()
for c in $(seq "$clients"); do
  openssl s_time -connect "127.0.0.1:$tls_port" -new -time "$seconds" -CAfile "$work/ca.pem" \
    >"$work/s_time.$c.log" 2>&1 &
  pids+=($!)
done
wait "${pids[@]}" || true
t1=$(date +%s.%N)
after=$(metric slotd_tls_handshakes_total)
python3 -c "print('handshakes/s   %.0f  (%d full handshakes counted by slotd in %.1f s wall, $clients openssl s_time -new clients, TLS 1.3, P-256)' % (($after - $before) / ($t1 - $t0), $after - $before, $t1 - $t0))"
fails=$(metric slotd_tls_failures_total)
echo "TLS failures    $fails"
