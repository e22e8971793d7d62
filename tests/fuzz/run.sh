#!/bin/sh
# Build the libFuzzer targets and run each for N seconds (default 60).
#   tests/fuzz/run.sh [SECONDS] [TARGET...]      targets: fuzz_frame fuzz_decode
# Needs clang with libFuzzer (Debian: apt-get install -y clang libclang-rt-14-dev).
# Builds into build-fuzz/ (override with FUZZ_BUILD); findings land there as
# crash-*/leak-*/timeout-* files and the run exits non-zero.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
TARGETS=${*:-"fuzz_frame fuzz_decode"}
OUT=${FUZZ_BUILD:-build-fuzz}
CC=${CC:-clang}
mkdir -p "$OUT"

SRC="core/fixp.c core/kind.c core/slab.c core/store.c proto/proto.c proto/frame.c proto/decode.c"
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=all -Icore -Iproto -Itests/unit $(pkg-config --cflags msgpack)"
LIBS="$(pkg-config --libs msgpack) -lm"

status=0
for t in $TARGETS; do
    echo "== build $t"
    # shellcheck disable=SC2086
    $CC $CFLAGS -o "$OUT/$t" "tests/fuzz/$t.c" $SRC $LIBS
    work="$OUT/corpus-$t"
    mkdir -p "$work"
    echo "== run $t for ${SECONDS_EACH}s (corpus $work, seeds tests/fuzz/corpus/$t)"
    if ! "$OUT/$t" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/$t-" \
            "$work" "tests/fuzz/corpus/$t" 2>"$OUT/$t.log"; then
        status=1
        echo "!! $t found a problem: see $OUT/$t.log"
    fi
    grep -E "^stat::|Done [0-9]+ runs|cov: " "$OUT/$t.log" | tail -12
done
exit $status
