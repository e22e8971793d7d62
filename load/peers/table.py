#!/usr/bin/env python3
"""table.py RESULTS.jsonl [TSV] — the side-by-side peer table.

RESULTS.jsonl has one JSON object per system (from redis_peer.sh,
python_peer.py and slotd via bench.sh --json): system, how, trades, load_s,
trades_per_s, bytes_per_trade, rss_mib_per_million. Prints the table; with
TSV, also writes the figures for plot.sh (gnuplot) there.
"""
import json
import sys


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    redis = next((r for r in rows if r["system"].startswith("Redis")), None)
    base = redis["trades_per_s"] if redis else None
    head = ("system", "trades", "load s", "trades/s", "vs Redis", "bytes/trade", "RSS MiB/M")
    table = []
    for r in rows:
        ratio = "%.2fx" % (r["trades_per_s"] / base) if base else "-"
        table.append((r["system"], "{:,}".format(r["trades"]), "%.2f" % r["load_s"],
                      "{:,.0f}".format(r["trades_per_s"]), ratio, "%.1f" % r["bytes_per_trade"],
                      "%.1f" % r["rss_mib_per_million"]))
    widths = [max(len(str(x[i])) for x in [head] + table) for i in range(len(head))]

    def line(cells):
        first = cells[0].ljust(widths[0])
        return "  ".join([first] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:])])

    print(line(head))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print(line(t))
    print()
    for r in rows:
        print("  %-32s %s" % (r["system"] + ":", r.get("how", "")))
    print("  bytes/trade: each system's own accounting (Redis used_memory, tracemalloc,"
          " slotd store bytes reserved); RSS MiB/M: resident growth per million trades.")
    if len(sys.argv) > 2:
        with open(sys.argv[2], "w") as f:
            f.write("# system\ttrades_per_s\tbytes_per_trade\trss_mib_per_million\tload_s\n")
            for r in rows:
                f.write('"%s"\t%.0f\t%.2f\t%.2f\t%.3f\n' % (r["system"], r["trades_per_s"],
                        r["bytes_per_trade"], r["rss_mib_per_million"], r["load_s"]))


if __name__ == "__main__":
    main()
