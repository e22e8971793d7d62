#!/usr/bin/env bash
# Build and run every test (unit + integration) through CTest.
#   scripts/test.sh              RelWithDebInfo build in build/
#   scripts/test.sh --sanitize   ASan + UBSan build in build-asan/
#   scripts/test.sh --tsan       ThreadSanitizer build in build-tsan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
dir=build; flags=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan; flags=(-DSLOTD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  # A small quarantine keeps RSS-bound assertions meaningful under ASan.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:quarantine_size_mb=16 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
if [ "${1:-}" = "--tsan" ]; then
  dir=build-tsan; flags=(-DSLOTD_TSAN=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo)
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp"
  export SLOTD_RSS_SCALE=6   # shadow memory: see harness.rss_bytes
fi
cmake -S . -B "$dir" -DSLOTD_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir" && ctest --output-on-failure -j2
