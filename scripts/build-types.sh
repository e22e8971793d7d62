#!/usr/bin/env bash
# Every standard CMake build type builds from this tree (as a packager would
# build it: no tests, no load tools, so neither cmocka nor jansson needed),
# and `cmake --install` puts slotd, slotload and the unit file into a prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for t in Debug Release RelWithDebInfo MinSizeRel; do
  cmake -S . -B "$out/$t" -DCMAKE_BUILD_TYPE=$t -DSLOTD_BUILD_TESTS=OFF -DSLOTD_BUILD_LOAD=OFF >/dev/null
  cmake --build "$out/$t" -j"$(nproc)" >/dev/null
  echo "build type $t: ok"
done
# Warnings as errors at -O3 too (what a Release build with -Werror would see).
cmake -S . -B "$out/o3" -DCMAKE_BUILD_TYPE=Release -DSLOTD_WERROR=ON -DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG" >/dev/null
cmake --build "$out/o3" -j"$(nproc)" >/dev/null
echo "Release -O3 -Werror: ok"
cmake -S . -B "$out/inst" -DCMAKE_BUILD_TYPE=Release -DSLOTD_BUILD_TESTS=OFF >/dev/null
cmake --build "$out/inst" -j"$(nproc)" >/dev/null
cmake --install "$out/inst" --prefix "$out/prefix" >/dev/null
for f in bin/slotd bin/slotload lib/systemd/system/slotd.service; do
  test -e "$out/prefix/$f" || { echo "cmake --install: $f missing" >&2; exit 1; }
done
"$out/prefix/bin/slotd" --version
echo "cmake --install: ok"
