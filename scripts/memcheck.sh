#!/usr/bin/env bash
# The ingest and HTTP integration tests against a slotd running under
# valgrind memcheck: invalid reads/writes, uninitialised values, bad frees
# and definite leaks (checked when slotd exits after SIGTERM).
#   scripts/memcheck.sh               test_ingest, test_http, test_client_c (the
#                                     C client's driver under memcheck too) and
#                                     test_tls (OpenSSL's buffers: ~2 min)
#   scripts/memcheck.sh test_attack   any tests/integration/test_*.py by name
# Plain Debug build (no sanitizers) in build-memcheck/.
# Fails if a test fails or any valgrind log holds an error; the logs stay in
# build-memcheck/memcheck/. SLOTD_TEST_SCALE (default 0.1 here) shrinks
# test_ingest's million-trade test, which valgrind makes slow.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
root=$PWD
dir=$root/build-memcheck
logs=$dir/memcheck
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DSLOTD_SANITIZE=OFF >/dev/null
cmake --build "$dir" -j2 --target slotd client_drive sub_drive
rm -rf "$logs"
mkdir -p "$logs"

# The harness starts $SLOTD_BIN with its flags; exec keeps the pid, so the
# tests' signals and /proc readings reach the process running slotd. A 4 MB
# freed-block queue (default 20 MB) keeps the tests' RSS bounds meaningful,
# as test.sh's small ASan quarantine does. --fair-sched: valgrind runs one
# thread at a time and its default lock lets a busy thread (the replay
# worker) take it back for seconds, so the loop did not answer a HELLO
# during a replay within 5 s (test_not_ready_during_replay).
wrapper=$dir/slotd-memcheck
cat >"$wrapper" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \\
  --errors-for-leak-kinds=definite --track-fds=no --fair-sched=yes --quiet --freelist-vol=4000000 \\
  --log-file="$logs/slotd.%p.log" "$dir/server/slotd" "\$@"
EOF
chmod +x "$wrapper"
export SLOTD_BIN=$wrapper
# The C client (tests/client/client_drive.c on libslotd-client), likewise:
# test_client_c.py runs it through SLOTD_CLIENT_DRIVE, test_client_c_sub.py
# its subscriber (sub_drive.c) through SLOTD_SUB_DRIVE.
for drv in client_drive sub_drive; do
  cat >"$dir/$drv-memcheck" <<EOF
#!/bin/sh
exec valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \\
  --errors-for-leak-kinds=definite --track-fds=no --fair-sched=yes --quiet \\
  --log-file="$logs/client.%p.log" "$dir/tests/$drv" "\$@"
EOF
  chmod +x "$dir/$drv-memcheck"
done
export SLOTD_CLIENT_DRIVE=$dir/client_drive-memcheck SLOTD_SUB_DRIVE=$dir/sub_drive-memcheck
export SLOTD_BUILD_DIR=$dir
export SLOTD_TEST_SCALE=${SLOTD_TEST_SCALE:-0.1}

failed=()
tests=("$@")
[ ${#tests[@]} -eq 0 ] && tests=(test_ingest test_http test_client_c test_tls)
for t in "${tests[@]}"; do
  echo "== $t (slotd under memcheck)"
  start=$SECONDS
  /usr/bin/python3 "tests/integration/${t%.py}.py" || failed+=("$t")
  echo "== $t: $((SECONDS - start)) s"
done

# --quiet: a log has content only when valgrind reported something.
nlogs=$(find "$logs" -name 'slotd.*.log' | wc -l)
dirty=$(find "$logs" \( -name 'slotd.*.log' -o -name 'client.*.log' \) -size +0c | sort)
if [ -n "$dirty" ]; then
  for f in $dirty; do
    echo "---- $f"
    head -c 20000 "$f"
  done
  failed+=("valgrind: $(echo "$dirty" | wc -l) of $nlogs logs hold errors")
fi
if [ "$nlogs" -eq 0 ]; then
  failed+=("valgrind wrote no logs: slotd never ran under it")
fi
if [ ${#failed[@]} -ne 0 ]; then
  printf 'memcheck: FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "memcheck: clean ($nlogs slotd runs under valgrind, logs in $logs)"
