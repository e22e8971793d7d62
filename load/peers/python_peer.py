#!/usr/bin/python3
"""python_peer.py MSGPACK_FILE TRADES [VARIANT...] — the same W1 trades as
Python objects, one object per trade: a plain class (a __dict__ per object),
a __slots__ class, and @dataclass(slots=True). Prints one JSON line each.

MSGPACK_FILE holds the batch bodies slotload sends (slotload --export
msgpack:FILE, map form): "loading" is decoding them with python3-msgpack and
building one object per trade, the same work slotd does per batch. Values are
what a Python program would naturally keep: ts, qty and id as int, px as
float, side as the one-letter str, and the symbol string shared per symbol
(interned through a dict), so nothing is charged twice.

Each variant runs in a fresh interpreter (a child of this script):
  load_s          wall time of decode + build, tracemalloc off
  rss growth      /proc/self/statm around that same build
  bytes_per_trade tracemalloc's count of what the built list retains, from a
                  second build with tracing on (tracing slows allocation, so
                  it is never timed)
Needs Debian's /usr/bin/python3 with python3-msgpack.
"""
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass

import msgpack


class PlainTrade:
    def __init__(self, sym, ts, px, qty, side, id):
        self.sym = sym
        self.ts = ts
        self.px = px
        self.qty = qty
        self.side = side
        self.id = id


class SlotsTrade:
    __slots__ = ("sym", "ts", "px", "qty", "side", "id")

    def __init__(self, sym, ts, px, qty, side, id):
        self.sym = sym
        self.ts = ts
        self.px = px
        self.qty = qty
        self.side = side
        self.id = id


@dataclass(slots=True)
class DataclassTrade:
    sym: str
    ts: int
    px: float
    qty: int
    side: str
    id: int


VARIANTS = {
    "plain": ("Python plain class", PlainTrade),
    "slots": ("Python __slots__ class", SlotsTrade),
    "dataclass": ("Python @dataclass(slots=True)", DataclassTrade),
}


def build(cls, data):
    """Decode every batch and keep one cls object per trade."""
    syms = {}
    out = []
    append = out.append
    for batch in _batches(data):
        for t in batch:
            s = t["sym"]
            sym = syms.get(s)
            if sym is None:
                sym = syms[s] = s
            append(cls(sym, t["ts"], float(t["px"]), t["qty"], t["side"], t["id"]))
    return out, syms


def _batches(data):
    u = msgpack.Unpacker(raw=False, max_buffer_size=len(data) + 1)
    u.feed(data)
    return u


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run_variant(name, path, trades):
    label, cls = VARIANTS[name]
    with open(path, "rb") as f:
        data = f.read()
    gc.collect()
    # The generational GC scans every container allocated; a loader that
    # builds millions of objects would switch it off, so do that too.
    gc.disable()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    out, syms = build(cls, data)
    secs = time.perf_counter() - t0
    rss1 = rss_bytes()
    if len(out) != trades:
        raise SystemExit("python_peer: built %d objects, expected %d" % (len(out), trades))
    del out, syms
    gc.collect()
    tracemalloc.start()
    m0 = tracemalloc.get_traced_memory()[0]
    out, syms = build(cls, data)
    m1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(json.dumps({
        "system": label,
        "how": "msgpack decode + one object per trade, CPython %d.%d" % sys.version_info[:2],
        "trades": trades, "load_s": secs, "trades_per_s": trades / secs,
        "bytes_per_trade": (m1 - m0) / trades,
        "rss_mib_per_million": (rss1 - rss0) / trades * 1e6 / 2**20,
    }), flush=True)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    path, trades = sys.argv[1], int(sys.argv[2])
    names = sys.argv[3:] or list(VARIANTS)
    if len(names) == 1 and os.environ.get("PYTHON_PEER_CHILD"):
        run_variant(names[0], path, trades)
        return
    env = dict(os.environ, PYTHON_PEER_CHILD="1")
    for name in names:
        if name not in VARIANTS:
            raise SystemExit("python_peer: unknown variant %r (%s)" % (name, ", ".join(VARIANTS)))
        subprocess.run([sys.executable, __file__, path, str(trades), name], env=env, check=True)


if __name__ == "__main__":
    main()
