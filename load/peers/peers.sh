#!/usr/bin/env bash
# peers.sh — slotd against its peers, in one run, on the same W1 trades:
#   Redis 7 streams (XADD via redis-cli --pipe, no persistence),
#   Python objects (plain class, __slots__, @dataclass(slots=True)),
#   slotd (journal on, default fsync interval) loaded by slotload.
# and one side-by-side table: load time, trades/s, ratio vs Redis, bytes per
# trade (each system's own accounting), RSS MiB per million trades.
#
#   load/peers/peers.sh                 1M W1 trades
#   load/peers/peers.sh --trades 10M    (the Python peers then need ~3 GB each)
#   load/peers/peers.sh --workload w1-10k --out DIR --skip-python
#   load/peers/peers.sh --build-dir build-load --no-build   (reuse a build)
#
# Installs redis-server, redis-tools and python3-msgpack from Debian when
# missing. Stops every server it starts. Results land in DIR
# (default build-bench/peers): results.jsonl, peers.tsv (for load/plot.sh),
# table.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."

trades=1M workload=w1 out=build-bench/peers build=1 python=1 redis=1 BUILD=build-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --trades) trades=$2; shift 2 ;;
    --workload) workload=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --build-dir) BUILD=$2; shift 2 ;;
    --skip-python) python=0; shift ;;
    --skip-redis) redis=0; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "peers.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done

# ---- dependencies: Debian packages only, installed when missing -----------
need=()
for p in redis-server redis-tools python3-msgpack; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "peers.sh: installing ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
PY=/usr/bin/python3 # Debian's, where python3-msgpack lives

if [ "$build" = 1 ]; then
  scripts/deps.sh
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -g -DNDEBUG" >/dev/null
  cmake --build "$BUILD" -j2 --target slotd slotload >/dev/null
fi
SLOTLOAD=$BUILD/load/slotload

mkdir -p "$out"
work=$(mktemp -d /tmp/peers.XXXXXX)
trap 'rm -rf "$work"' EXIT
results="$out/results.jsonl"
: >"$results"

# The same trades for everyone: slotload is the one generator.
n=$("$PY" -c "import sys; s=sys.argv[1]; m={'k':1e3,'K':1e3,'m':1e6,'M':1e6}; print(int(float(s[:-1])*m[s[-1]]) if s[-1] in m else int(s))" "$trades")
echo "peers.sh: exporting $n $workload trades" >&2
"$SLOTLOAD" --workload "$workload" --trades "$n" --export "resp:$work/w1.resp"
"$SLOTLOAD" --workload "$workload" --trades "$n" --export "msgpack:$work/w1.msgpack"

if [ "$redis" = 1 ]; then
  echo "peers.sh: Redis streams" >&2
  "$here/redis_peer.sh" "$work/w1.resp" "$n" | tee -a "$results" >&2
fi
rm -f "$work/w1.resp"
if [ "$python" = 1 ]; then
  echo "peers.sh: Python objects" >&2
  "$PY" "$here/python_peer.py" "$work/w1.msgpack" "$n" | tee -a "$results" >&2
fi
rm -f "$work/w1.msgpack"

echo "peers.sh: slotd" >&2
load/bench.sh --no-build --build-dir "$BUILD" --json --trades "$n" --workload "$workload" >"$work/slotd.json"
"$PY" - "$work/slotd.json" >>"$results" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(json.dumps({
    "system": "slotd (journal on)",
    "how": "slotload, %d conn x %d in flight, batches of %d, map form, fsync interval"
           % (r["config"]["connections"], r["config"]["inflight"], r["config"]["batch"]),
    "trades": r["trades"], "load_s": r["seconds"], "trades_per_s": r["trades_per_s"],
    "bytes_per_trade": r["store_bytes_per_trade"],
    "rss_mib_per_million": r["memory_per_million_trades"] / 2**20,
}))
EOF
tail -1 "$results" >&2

echo >&2
"$PY" "$here/table.py" "$results" "$out/peers.tsv" | tee "$out/table.txt"
