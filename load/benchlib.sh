# benchlib.sh — sourced by the load/*bench.sh scripts that run one slotd of
# their own: a work directory, that slotd stopped (SIGTERM, waited) and the
# directory removed at exit or interrupt, and the wait for its --port-file.
#
#   bench_work NAME          work=/tmp/slotd-NAME.XXXXXX, traps set
#   "$SLOTD" ... --port-file "$work/ports" 2>"$work/slotd.log" &
#   slotd_pid=$!
#   bench_wait_ports         returns once "$work/ports" is written (exits,
#                            printing slotd.log, if slotd died first)

bench_cleanup() {
  if [ -n "${slotd_pid:-}" ] && kill -0 "$slotd_pid" 2>/dev/null; then
    kill -TERM "$slotd_pid" 2>/dev/null || true
    wait "$slotd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}

bench_work() {
  work=$(mktemp -d "/tmp/slotd-$1.XXXXXX") slotd_pid=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_wait_ports() {
  for _ in $(seq 300); do
    [ -s "$work/ports" ] && return 0
    kill -0 "$slotd_pid" 2>/dev/null || { cat "$work/slotd.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$0: slotd wrote no port file in 30 s" >&2
  exit 1
}
