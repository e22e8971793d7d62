#!/usr/bin/python3
"""subreader — subscribers for load/subbench.sh: open subscriptions on a
slotd and read (and drop) everything pushed, as fast as the socket gives it.

    load/subreader.py --port 7400 --spec star        one subscriber to "*"
    load/subreader.py --port 7400 --spec 100         100, to SYM0000..SYM0099 (W1's hottest)

Prints "ready" once every SUBOK is in, and the bytes read when it gets
SIGTERM. It does not parse the pushes (the cost measured is the server's).
"""
import argparse
import selectors
import signal
import socket
import sys

import msgpack

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--spec", required=True)
a = ap.parse_args()
subs = [("*", "sub-star")] if a.spec == "star" else \
    [(["SYM%04d" % i], "sub-%d" % i) for i in range(int(a.spec))]
sel = selectors.DefaultSelector()
socks = []
for syms, name in subs:
    s = socket.create_connection(("127.0.0.1", a.port))
    s.sendall(msgpack.packb(["HELLO", {"client": name}]) +
              msgpack.packb(["SUB", 1, {"syms": syms, "from": "now"}]))
    u = msgpack.Unpacker(raw=False)
    msgs = []
    while True:
        u.feed(s.recv(65536))
        msgs += list(u)
        if len(msgs) >= 2:
            assert msgs[0][0] == "WELCOME" and msgs[1][0] == "SUBOK", msgs
            break
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
print("ready", flush=True)
total = 0
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
buf = bytearray(1 << 20)
while not stop:
    for key, _ in sel.select(0.2):
        try:
            n = key.fileobj.recv_into(buf)
        except BlockingIOError:
            continue
        if n == 0:
            sel.unregister(key.fileobj)
        total += n
print("subreader: %d subscriber(s) read %d bytes" % (len(socks), total), file=sys.stderr)
