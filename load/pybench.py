#!/usr/bin/python3
"""load/pybench.py — the Python client's sender against a hand-written msgpack
socket loop, and its memory per buffered trade (issue #12).

    /usr/bin/python3 load/pybench.py            # 500k trades, 5 interleaved rounds
    load/pybench.py --trades 1000000 --rounds 3 --slotd build/server/slotd

One slotd (journal on, default flags) serves every run. Both sides send the
same pre-generated trades (a tuple per trade: sym, ts, px as str, qty, side,
id; 100 symbols), array form, batches of 1000, 32 batches in flight, each run
under a fresh client name; a run is timed from its first trade to its last
ACK. The hand-written loop is what an application would write without the
library: pack ["T", seq, [list(t) for t in batch]] per batch, sendall,
keep 32 in flight, read ACKs (no resends, no spool, no value checks). The
rounds alternate which side goes first; the ratio is per round
(sender / loop), reported as the median with min and max.

Memory per buffered trade: a sender connected to a SIGSTOPped slotd is
handed N trades (nothing can be acknowledged); tracemalloc's count of what
that allocated, divided by N. Sealed batches are kept as their msgpack
bytes, so this is about the wire size; the open batch (at most batch_size
records) is Python lists until it seals.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, os.path.join(ROOT, "proto", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import msgpack  # noqa: E402

import slotd  # noqa: E402

TS0 = 1767225600000000000
BATCH, WINDOW = 1000, 32


def make_trades(n):
    syms = ["SYM%03d" % i for i in range(100)]
    return [(syms[(i * 7919) % 100], TS0 + i * 1000, "%d.%02d" % (100 + i % 50, i % 100),
             1 + i % 500, "B" if i & 1 else "S", i) for i in range(n)]


def run_sender(port, name, trades):
    t0 = time.perf_counter()
    s = slotd.Sender(port=port, client=name, batch_size=BATCH, window=WINDOW)
    trade = s.trade
    for sym, ts, px, qty, side, tid in trades:
        trade(sym, ts, px, qty, side, tid)
    s.flush()
    dt = time.perf_counter() - t0
    assert s.stats["trades_acked"] == len(trades), s.stats
    s.close()
    return dt


def run_loop(port, name, trades):
    t0 = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    unp = msgpack.Unpacker(raw=False)

    def recv():
        while True:
            for m in unp:
                return m
            data = sock.recv(1 << 16)
            if not data:
                raise EOFError("slotd closed the connection")
            unp.feed(data)

    sock.sendall(msgpack.packb(["HELLO", {"client": name}], use_bin_type=True))
    seq = recv()[1]["last_seq"]
    pack = msgpack.Packer(use_bin_type=True).pack
    inflight = 0
    for i in range(0, len(trades), BATCH):
        seq += 1
        sock.sendall(pack(["T", seq, [list(t) for t in trades[i:i + BATCH]]]))
        inflight += 1
        if inflight == WINDOW:
            r = recv()
            assert r[0] == "ACK", r
            inflight -= 1
    while inflight:
        r = recv()
        assert r[0] == "ACK", r
        inflight -= 1
    dt = time.perf_counter() - t0
    sock.close()
    return dt


def buffered_bytes(port, trades, proc):
    """Bytes tracemalloc sees allocated per trade while all of them wait for an ACK."""
    s = slotd.Sender(port=port, client="pybench-mem", batch_size=BATCH, window=WINDOW,
                     max_buffered=1 << 40, retry_timeout=600)
    s.trade(*trades[0])
    s.flush()                          # connected, seqs known
    proc.send_signal(signal.SIGSTOP)
    try:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for t in trades:
            s.trade(*t)
        s._seal()                      # count whole batches: the open one holds lists
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        queued = s.stats["queued_bytes"]
    finally:
        proc.send_signal(signal.SIGCONT)
    s.flush()
    s.close()
    return used / len(trades), queued / len(trades)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trades", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--slotd", default=os.environ.get("SLOTD_BIN") or
                    os.path.join(ROOT, "build", "server", "slotd"))
    a = ap.parse_args()
    if a.rounds < 3:
        ap.error("--rounds: at least 3")
    os.environ["SLOTD_BIN"] = a.slotd
    from harness import Slotd
    trades = make_trades(a.trades)
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    rows = []
    with Slotd() as srv:
        run_loop(srv.tcp_port, "warm", trades[:50_000])   # page the server in
        for r in range(a.rounds):
            order = (("loop", run_loop), ("sender", run_sender))
            if r % 2:
                order = order[::-1]
            got = {}
            for what, fn in order:
                got[what] = fn(srv.tcp_port, "pybench-%s-%d" % (what, r), trades)
            rows.append(got)
        per_trade, wire = buffered_bytes(srv.tcp_port, trades[:200_000], srv.proc)
    print("pybench: %d trades (100 symbols), array form, batch %d, window %d, one slotd "
          "(journal on); commit %s" % (a.trades, BATCH, WINDOW, commit))
    print("round  loop trades/s  sender trades/s  sender/loop")
    ratios = []
    for i, g in enumerate(rows):
        lr, sr = a.trades / g["loop"], a.trades / g["sender"]
        ratios.append(sr / lr)
        print("%5d  %13s  %15s  %10.2fx" % (i + 1, "{:,.0f}".format(lr), "{:,.0f}".format(sr),
                                             sr / lr))
    med = statistics.median(ratios)
    print("median sender/loop %.2fx (min %.2fx, max %.2fx, spread %.0f%%)"
          % (med, min(ratios), max(ratios), 100 * (max(ratios) - min(ratios)) / med))
    print("median trades/s: loop %s, sender %s" % (
        "{:,.0f}".format(statistics.median(a.trades / g["loop"] for g in rows)),
        "{:,.0f}".format(statistics.median(a.trades / g["sender"] for g in rows))))
    print("memory per buffered trade: %.1f B allocated (tracemalloc), %.1f B of it the "
          "batch bytes on the wire" % (per_trade, wire))


if __name__ == "__main__":
    main()
