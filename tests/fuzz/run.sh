#!/bin/sh
# Build the libFuzzer targets and run each for N seconds (default 60), one
# after the other, one job each.
#   tests/fuzz/run.sh [SECONDS] [TARGET...]
#   targets: every tests/fuzz/fuzz_*.c (fuzz_frame fuzz_decode fuzz_fixp
#   fuzz_time fuzz_http fuzz_client_reply fuzz_client_sub fuzz_cpage)
# Needs clang with libFuzzer (Debian: apt-get install -y clang libclang-rt-14-dev).
# Builds into build-fuzz/ (override with FUZZ_BUILD); findings land there as
# crash-*/leak-*/timeout-* files and the run exits non-zero. The corpus that
# grows is build-fuzz/corpus-<target>; tests/fuzz/corpus/<target> are the
# committed seeds (read, never written). tests/fuzz/<target>.dict is used
# when it exists. FUZZ_FLAGS adds libFuzzer options.
set -eu
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-60}
[ $# -gt 0 ] && shift
ALL=$(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done | tr '\n' ' ')
TARGETS=${*:-$ALL}
OUT=${FUZZ_BUILD:-build-fuzz}
CC=${CC:-clang}
mkdir -p "$OUT/obj"

# Every module source, by glob, so files colleagues add are picked up: core,
# proto and server, less any file with a main() (slotd's, benchmarks). They
# go into one archive; each target links only the objects it references
# (fuzz_frame pulls no libuv code, fuzz_http pulls http.c and its callees).
SRC=$(for f in core/*.c proto/*.c proto/client/*.c server/*.c; do
          grep -Eq '^int main ?\(' "$f" || echo "$f"
      done)
SAN="-fsanitize=address,undefined -fno-sanitize-recover=all"
ROOT=$(pwd)
CFLAGS="-std=gnu11 -g -O1 -fno-omit-frame-pointer $SAN -I$ROOT/core -I$ROOT/proto -I$ROOT/server
        -I$ROOT/proto/client -I$ROOT/proto/client/include
        -I$ROOT/tests/unit -I$ROOT/load $(pkg-config --cflags msgpack libuv jansson rdkafka libssl libcrypto)"
LIBS="$(pkg-config --libs msgpack libuv jansson rdkafka libssl libcrypto) -lhttp_parser -lpthread -lm"

echo "== build $(echo "$SRC" | wc -l) module sources into $OUT/libslotd_fuzz.a"
dup=$(for f in $SRC; do basename "$f"; done | sort | uniq -d)
[ -z "$dup" ] || { echo "!! two module sources named $dup: rename or extend run.sh"; exit 2; }
rm -f "$OUT"/obj/*.o "$OUT/libslotd_fuzz.a"
# Two compilers at a time (the machine has two cores), objects in obj/.
# shellcheck disable=SC2086
(cd "$OUT/obj" && for f in $SRC; do echo "$ROOT/$f"; done |
     xargs -P2 -n1 $CC $CFLAGS -fsanitize=fuzzer-no-link -c)
ar rcs "$OUT/libslotd_fuzz.a" "$OUT"/obj/*.o

# Every target is linked right after the archive, before anything runs, so
# all of them see one state of the sources (a header edited during a long
# run cannot give a target a struct layout its objects do not have).
for t in $TARGETS; do
    [ -f "tests/fuzz/$t.c" ] || { echo "!! no target tests/fuzz/$t.c"; exit 2; }
    echo "== build $t"
    # shellcheck disable=SC2086
    $CC $CFLAGS -fsanitize=fuzzer -o "$OUT/$t" "tests/fuzz/$t.c" "$OUT/libslotd_fuzz.a" $LIBS
done

status=0
for t in $TARGETS; do
    work="$OUT/corpus-$t"
    mkdir -p "$work"
    dict=
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    seeds=
    [ -d "tests/fuzz/corpus/$t" ] && seeds="tests/fuzz/corpus/$t"
    echo "== run $t for ${SECONDS_EACH}s (corpus $work, seeds ${seeds:-none})"
    # shellcheck disable=SC2086
    if ! "$OUT/$t" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$OUT/$t-" \
            $dict ${FUZZ_FLAGS:-} "$work" $seeds 2>"$OUT/$t.log"; then
        status=1
        echo "!! $t found a problem: see $OUT/$t.log"
    fi
    grep -E "^stat::|Done [0-9]+ runs|DONE|ERROR|SUMMARY" "$OUT/$t.log" | tail -12
done
exit $status
