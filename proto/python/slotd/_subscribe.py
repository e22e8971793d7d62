"""slotd.Subscription: trades pushed as they become durable (PROTOCOL.md 11)."""
import msgpack

from . import _conn
from .errors import Closed, ProtocolError, SubscribeError


class Subscription:
    """An iterator over trades, opened by Client.subscribe.

    Each item is a dict: "sym", "kind", the kind's slots by name (fixed
    point as exact decimal strings, e.g. "187.25"), and "pos", the trade's
    position in its symbol (None when deletes left holes in the run it came
    in). `cursor` is {sym: position} covering every trade yielded so far:
    save it with what you processed and pass it as `from_` to resume, after
    a disconnect or a server restart, with nothing lost or repeated. A GAP
    (retention passed the position; only with gaps=True) is recorded in
    `gaps` as (sym, from, to) and moves the cursor. CURSOR_GONE and other
    refusals raise SubscribeError. Iteration blocks until trades arrive (the
    Client's timeout applies: socket.timeout when nothing comes for that long).
    """

    def __init__(self, client, sid, syms, from_, gaps, slot_names):
        self._c = client
        self.id = sid
        self._names = slot_names
        self.gaps = []
        req = {"syms": "*" if syms == "*" else list(syms),
               "from": dict(from_) if isinstance(from_, dict) else from_}
        if gaps:
            req["gaps"] = True
        client._send(["SUB", sid, req])
        msg = client._recv()
        t, rid, code, message, _ = _parse(msg)
        if t == "ERR":
            raise _refused(code, message, rid == sid)
        if t != "SUBOK" or rid != sid:
            raise ProtocolError("unexpected reply %r to SUB %d" % (msg, sid))
        self.cursor = dict(msg[2])
        self._open = True

    def __iter__(self):
        while self._open:
            msg = self._c._recv()
            t, rid, code, message, _ = _parse(msg)
            if t == "S" and rid == self.id:
                _, _, sym, kind, nxt, rows = msg
                names = self._names.get(kind)
                if names is None:
                    raise ProtocolError("unknown kind %r in a push" % (kind,))
                start = self.cursor.get(sym, 0)
                exact = nxt - start == len(rows)  # no holes: each trade's position is known
                for i, row in enumerate(rows):
                    trade = dict(zip(names, row))
                    trade["sym"], trade["kind"] = sym, kind
                    trade["pos"] = start + i if exact else None
                    if exact or i == len(rows) - 1:
                        self.cursor[sym] = start + i + 1 if exact else nxt
                    yield trade
                self.cursor[sym] = nxt
            elif t == "GAP" and rid == self.id:
                self.gaps.append((msg[2], msg[3], msg[4]))
                self.cursor[msg[2]] = msg[4]
            elif t == "ERR" and rid == self.id:
                self._open = False
                raise _refused(code, message, True)
            elif t == "ERR":
                raise _conn.fatal(code, message, "subscription")
            elif t == "UNSUBOK" and rid == self.id:
                self._open = False
            else:
                raise ProtocolError("unexpected message %r in subscription %d" % (msg, self.id))

    def close(self):
        """UNSUB: no more trades (those already sent are read and dropped)."""
        if not self._open or self._c._sock is None:
            self._open = False
            return
        self._c._send(["UNSUB", self.id])
        for _ in self:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _parse(msg):
    if not isinstance(msg, list) or len(msg) < 2 or not isinstance(msg[0], str):
        raise ProtocolError("unreadable message from slotd: %r" % (msg,))
    if msg[0] == "ERR" and len(msg) == 5:
        return "ERR", msg[1], msg[2], msg[3], msg[4]
    return msg[0], msg[1], None, None, None


def _refused(code, message, ours):
    if not ours or code in ("UNAUTHORIZED", "FENCED", "MALFORMED"):
        return _conn.fatal(code, message, "SUB")
    return SubscribeError("SUB: %s from slotd: %s" % (code, message), code)
