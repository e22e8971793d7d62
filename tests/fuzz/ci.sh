#!/bin/sh
# CI: every fuzz target (tests/fuzz/fuzz_*.c) for 20 s each, starting from
# the committed corpus; exits non-zero on any finding (crash, sanitizer
# report, leak, timeout, out-of-memory) or build failure. About 2 minutes
# in all: a one-off build of the sources, then 5 x 20 s.
#   tests/fuzz/ci.sh            FUZZ_SECONDS=N overrides the 20 s
# Installs clang + libFuzzer from Debian when missing and running as root.
set -eu
cd "$(dirname "$0")/../.."

has_libfuzzer() {
    printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }\n' |
        ${CC:-clang} -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null
}
if ! has_libfuzzer; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing clang and libFuzzer (Debian)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
    fi
    has_libfuzzer || { echo "!! fuzz ci: needs clang with libFuzzer (apt-get install clang libclang-rt-14-dev)"; exit 1; }
fi

# Its own build directory: a developer's build-fuzz corpus stays untouched.
FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz-ci} exec sh tests/fuzz/run.sh "${FUZZ_SECONDS:-20}"
