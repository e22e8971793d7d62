#!/usr/bin/env bash
# plot.sh — render the benchmark charts as PNG with gnuplot (load/plot.gp):
#   docs/peers.png       bytes/trade and trades/s per system (peers.sh's table)
#   docs/timeseries.png  per-second trades/s, p50 and p99 from slotload --csv
#
#   load/plot.sh                                   both, from the default inputs
#   load/plot.sh --peers FILE --csv FILE --out DIR --title "W1, journal on"
#   load/plot.sh --run     first produce the inputs: peers.sh (1M trades), a
#                          closed-loop bench.sh run for the peak rate, then 15 s
#                          open loop at half that peak with --csv
#
# Defaults: --peers build-bench/peers/peers.tsv, --csv build-bench/timeseries.csv,
# --out docs. Installs gnuplot-nox from Debian when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

peers=build-bench/peers/peers.tsv series=build-bench/timeseries.csv out=docs run=0
title="W1, map form, journal on, closed loop"
while [ $# -gt 0 ]; do
  case "$1" in
    --peers) peers=$2; shift 2 ;;
    --csv) series=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --title) title=$2; shift 2 ;;
    --run) run=1; shift ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "plot.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v gnuplot >/dev/null; then
  echo "plot.sh: installing gnuplot-nox" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends gnuplot-nox >&2
fi

if [ "$run" = 1 ]; then
  load/peers/peers.sh --out "$(dirname "$peers")"
  # Half the closed-loop peak: the rate the p99 target is stated at. The
  # pool covers the whole run so no trade is sent twice.
  peak=$(load/bench.sh --no-build --json | /usr/bin/python3 -c 'import json, sys; print(int(json.load(sys.stdin)["trades_per_s"]))')
  half=$((peak / 2))
  load/bench.sh --no-build -- --rate "$half" --duration 15 --pool $((half * 15 + 1000)) \
    --csv "$series" --no-progress
  title="W1 map form, journal on, open loop at half the peak ($half trades/s)"
fi

mkdir -p "$out"
p="" s=""
if [ -s "$peers" ]; then p=$peers; else echo "plot.sh: no $peers (run load/peers/peers.sh): skipping peers.png" >&2; fi
if [ -s "$series" ]; then s=$series; else echo "plot.sh: no $series (run load/bench.sh -- --duration 30 --csv $series): skipping timeseries.png" >&2; fi
[ -n "$p$s" ] || exit 1
gnuplot -e "peers='$p'; series='$s'; outdir='$out'; title2='${title//\'/}'" load/plot.gp
[ -n "$p" ] && echo "plot.sh: wrote $out/peers.png"
[ -n "$s" ] && echo "plot.sh: wrote $out/timeseries.png"
exit 0
