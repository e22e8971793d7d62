#!/usr/bin/env bash
# bench.sh — the ingest benchmark in one command: build, start slotd on free
# loopback ports with a fresh data directory (journal on, default fsync
# interval), stream W1 with slotload, print its report, stop slotd with
# SIGTERM and clean up.
#
#   load/bench.sh                          W1, 10M trades, map form, journal on
#   load/bench.sh --trades 1M --workload w1-10k --no-journal
#   load/bench.sh --repeat 3               3 fresh servers: median and min..max of trades/s
#   load/bench.sh --form array -- --rate 400000 --duration 20 --csv /tmp/ts.csv
#                                          (flags after -- go to slotload as they are)
#
# Flags: --trades N, --workload w1|w1-10k, --form map|array, --no-journal,
# --repeat N, --json (slotload's JSON report on stdout, progress off),
# --build-dir DIR (default build-bench), --no-build (use DIR as it is),
# --keep (keep the data dir and logs), --slotd-arg ARG (repeatable: an
# extra flag for slotd), --sub star|N (subscribers reading all along:
# load/subread, C; load/subbench.sh compares).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build-bench trades=10M workload=w1 form=map journal=1 repeat=1 build=1 keep=0 json=0
load_extra=() slotd_extra=() sub=""
while [ $# -gt 0 ]; do
  case "$1" in
    --trades) trades=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --form) form=$2; shift 2 ;;
    --no-journal) journal=0; shift ;;
    --repeat) repeat=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --json) json=1; shift ;;
    --slotd-arg) slotd_extra+=("$2"); shift 2 ;;
    --sub) sub=$2; shift 2 ;;
    --) shift; load_extra=("$@"); break ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$build" = 1 ]; then
  scripts/deps.sh
  # Release at -O2: the project's warning flags are errors, and gcc's -O3
  # raises false maybe-uninitialized positives in code it inlines harder.
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -g -DNDEBUG" >/dev/null
  cmake --build "$BUILD" -j2 --target slotd slotload subread >/dev/null
fi
SLOTD=$BUILD/server/slotd SLOTLOAD=$BUILD/load/slotload SUBREAD=$BUILD/load/subread

slotd_pid="" workdir=""
cleanup() {
  if [ -n "$slotd_pid" ] && kill -0 "$slotd_pid" 2>/dev/null; then
    kill -TERM "$slotd_pid" 2>/dev/null || true
    wait "$slotd_pid" 2>/dev/null || true
  fi
  slotd_pid=""
  if [ -n "$workdir" ] && [ "$keep" = 0 ]; then rm -rf "$workdir"; fi
  workdir=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# HTTP status of GET $2 on 127.0.0.1:$1, with bash's /dev/tcp (no curl needed).
http_status() {
  local line
  exec 9<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$2" >&9
  IFS= read -r -t 5 line <&9 || true
  exec 9<&- 9>&-
  echo "$line" | awk '{print $2}'
}

# Start slotd; sets slotd_pid, tcp_port, http_port.
start_slotd() {
  workdir=$(mktemp -d /tmp/slotd-bench.XXXXXX)
  local args=(--listen 127.0.0.1:0 --http 127.0.0.1:0 --data-dir "$workdir/data"
              --port-file "$workdir/ports" --log-level warn)
  [ "$journal" = 0 ] && args+=(--no-journal)
  "$SLOTD" "${args[@]}" "${slotd_extra[@]}" 2>"$workdir/slotd.log" &
  slotd_pid=$!
  for _ in $(seq 600); do
    if [ -s "$workdir/ports" ] && [ "$(tail -c1 "$workdir/ports" | od -An -c | tr -d ' ')" = '\n' ]; then
      read -r tcp_port http_port <"$workdir/ports"
      [ "$(http_status "$http_port" /readyz 2>/dev/null)" = 200 ] && return 0
    fi
    kill -0 "$slotd_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench.sh: slotd did not start:" >&2
  cat "$workdir/slotd.log" >&2
  return 1
}

stop_slotd() {
  kill -TERM "$slotd_pid"
  local rc=0
  wait "$slotd_pid" || rc=$?
  slotd_pid=""
  if [ "$rc" != 0 ]; then
    echo "bench.sh: slotd exited $rc on SIGTERM; log:" >&2
    tail -20 "$workdir/slotd.log" >&2
    return 1
  fi
}

# Clock ticks of CPU (utime + stime) in a /proc stat file; slotd's comm has no spaces.
cpu_ticks() { awk '{ print $14 + $15 }' "$1" 2>/dev/null || echo 0; }

# One run: prints slotload's report and leaves its trades/s in $last_rate.
# With BENCH_CPU_FILE set, appends "trades/s cpu_ticks loop_ticks" to it: the
# CPU slotd (all threads; its loop thread alone) spent during the load.
run_once() {
  start_slotd
  echo "bench.sh: slotd pid $slotd_pid on 127.0.0.1:$tcp_port (http $http_port)," \
       "journal $([ "$journal" = 1 ] && echo "on ($workdir/data)" || echo off)" >&2
  local out="$workdir/report.txt" rc=0 mode=() sub_pid=""
  if [ -n "$sub" ]; then
    "$SUBREAD" --port "$tcp_port" --spec "$sub" >"$workdir/sub.out" &
    sub_pid=$!
    until grep -q ready "$workdir/sub.out" 2>/dev/null; do
      kill -0 "$sub_pid" 2>/dev/null || { echo "bench.sh: subread failed" >&2; return 1; }
      sleep 0.1
    done
  fi
  [ "$json" = 1 ] && mode=(--json --no-progress)
  local cpu0 loop0
  cpu0=$(cpu_ticks "/proc/$slotd_pid/stat") loop0=$(cpu_ticks "/proc/$slotd_pid/task/$slotd_pid/stat")
  "$SLOTLOAD" --port "$tcp_port" --http-port "$http_port" --workload "$workload" \
    --trades "$trades" --form "$form" "${mode[@]}" "${load_extra[@]}" | tee "$out" || rc=$?
  if [ "$json" = 1 ]; then
    last_rate=$(awk -F'[:,]' '/^  "trades_per_s":/ {printf "%d", $2}' "$out")
  else
    last_rate=$(awk '/^  trades\/s /{gsub(",", "", $2); print $2}' "$out")
  fi
  if [ -n "${BENCH_CPU_FILE:-}" ]; then
    echo "${last_rate:-0} $(( $(cpu_ticks "/proc/$slotd_pid/stat") - cpu0 ))" \
         "$(( $(cpu_ticks "/proc/$slotd_pid/task/$slotd_pid/stat") - loop0 ))" >>"$BENCH_CPU_FILE"
  fi
  if [ -n "$sub_pid" ]; then
    exec 9<>"/dev/tcp/127.0.0.1/$http_port"
    printf 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&9
    grep -E '^slotd_(subscriber_trades_total|subscriber_lag_trades|trades_total) ' <&9 >&2 || true
    exec 9<&- 9>&-
    kill -TERM "$sub_pid"; wait "$sub_pid" || true
  fi
  # slotd's CPU seconds (user + system) in this run: what subscribers cost
  # slotd itself, however the shared cores were divided
  awk -v t="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "bench.sh: slotd cpu %.2f s\n", ($12 + $13) / t }' \
    "/proc/$slotd_pid/stat" >&2
  stop_slotd
  cleanup
  return "$rc"
}

rates=() status=0
for i in $(seq "$repeat"); do
  [ "$repeat" -gt 1 ] && echo "== run $i of $repeat" >&2
  run_once || status=$?
  rates+=("${last_rate:-0}")
done

summary() { if [ "$json" = 1 ]; then cat >&2; else cat; fi; } # keep stdout pure JSON
if [ "$repeat" -gt 1 ]; then
  printf '%s\n' "${rates[@]}" | sort -n | awk -v n="$repeat" -v w="$workload" -v t="$trades" -v f="$form" '
    { v[NR] = $1 }
    END {
      med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
      printf "\nbench.sh: %s, %s trades, %s form, %d runs: trades/s median %d  (min %d .. max %d, spread %.1f%%)\n",
             w, t, f, n, med, v[1], v[n], med ? 100 * (v[n] - v[1]) / med : 0
    }' | summary
fi
exit "$status"
