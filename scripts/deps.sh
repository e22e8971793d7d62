#!/usr/bin/env bash
# Install the Debian packages slotd needs, only those missing. No other downloads.
#   scripts/deps.sh           build + run
#   scripts/deps.sh test      + what the test suite needs (kcat: an independent Kafka producer; curl: the SSE test)
#   scripts/deps.sh bench     + peers for benchmarks (redis, gnuplot)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libuv1-dev libmsgpack-dev libhttp-parser-dev libjansson-dev libcmocka-dev librdkafka-dev libssl-dev)
case "${1:-}" in
  test) pkgs+=(python3 python3-msgpack python3-yaml python3-venv python3-setuptools python3-pip prometheus openssl clang libclang-rt-14-dev systemd valgrind kcat curl) ;;
  bench) pkgs+=(python3 python3-msgpack redis-server redis-tools gnuplot-nox valgrind kcat curl) ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
