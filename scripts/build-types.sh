#!/usr/bin/env bash
# Every standard CMake build type builds from this tree (as a packager would
# build it: no tests, no load tools, so neither cmocka nor jansson needed),
# and `cmake --install` puts slotd, slotload, slotctl, the unit file and the C client
# (libslotd-client, slotd/client.h, slotd-client.pc) into a prefix; the
# client's examples then build against that prefix and run against slotd.
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
# GNUInstallDirs' libdir: lib, lib64 or lib/<multiarch>, wherever the .pc went.
pc=$(cd "$out/prefix" && find . -path '*/pkgconfig/slotd-client.pc' | head -1)
libdir=$(dirname "$(dirname "${pc:-./lib/pkgconfig/x}")")
libdir=${libdir#./}
for f in bin/slotd bin/slotload bin/slotctl lib/systemd/system/slotd.service include/slotd/client.h \
         "$libdir/libslotd-client.a" "$libdir/libslotd-client.so.0" "$libdir/pkgconfig/slotd-client.pc"; do
  test -e "$out/prefix/$f" || { echo "cmake --install: $f missing" >&2; exit 1; }
done
"$out/prefix/bin/slotd" --version
echo "cmake --install: ok"

# The C client's examples, built against the INSTALLED library through its
# pkg-config file, run against a slotd from the same prefix.
export PKG_CONFIG_PATH="$out/prefix/$libdir/pkgconfig"
for ex in first_trades follow_trades; do
  # shellcheck disable=SC2046
  cc -std=gnu11 -Wall -Wextra -Werror "proto/client/examples/$ex.c" \
    $(pkg-config --cflags --libs slotd-client) -Wl,-rpath,"$out/prefix/$libdir" -o "$out/$ex"
done
mkdir -p "$out/data"
"$out/prefix/bin/slotd" --listen 127.0.0.1:0 --http off --data-dir "$out/data" \
  --port-file "$out/ports" >"$out/slotd.log" 2>&1 &
slotd_pid=$!
trap 'kill "$slotd_pid" 2>/dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 200); do grep -q . "$out/ports" 2>/dev/null && break; sleep 0.05; done
"$out/first_trades" "$(cut -d' ' -f1 "$out/ports")" ||
  { echo "first_trades failed; slotd log:" >&2; cat "$out/slotd.log" >&2; exit 1; }
# follow_trades reads back the 3 trades (from the start), then resumes from
# its cursor file with nothing more to read
"$out/follow_trades" "$(cut -d' ' -f1 "$out/ports")" "$out/follow.cursor" 500 >"$out/follow.out" &&
  [ "$(wc -l <"$out/follow.out")" = 3 ] &&
  "$out/follow_trades" "$(cut -d' ' -f1 "$out/ports")" "$out/follow.cursor" 200 >"$out/follow.out" &&
  [ ! -s "$out/follow.out" ] ||
  { echo "follow_trades failed; slotd log:" >&2; cat "$out/slotd.log" >&2; exit 1; }
kill "$slotd_pid"
wait "$slotd_pid" || true
echo "client example against the installed library: ok"
