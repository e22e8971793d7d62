"""slotd.Client: queries over TCP `Q` messages (PROTOCOL.md 6)."""
import itertools
import os
import socket
import ssl

import msgpack

from . import _conn
from ._subscribe import Subscription
from ._values import interval as _interval, query_time
from .errors import Closed, NotFound, ProtocolError, QueryError

PAGE_MAX = 10_000  # the server's largest trades page
_names = itertools.count(1)  # default client names: one per Client


class Client:
    """A blocking query connection.

    Client(host="127.0.0.1", port=7400, client=None, token=None, timeout=30.0,
           tls=False, cafile=None, certfile=None, keyfile=None, server_hostname=None)

    tls=True speaks TLS (a --tls-port): the server is verified against
    cafile (None: the system's CAs) under server_hostname (default: host);
    certfile/keyfile are the client certificate for mutual TLS. tls may be
    an ssl.SSLContext instead. A failed handshake raises TlsError.

    The name is a client name like a sender's, and one connection holds a
    name at a time (PROTOCOL.md 2.3). By default each Client gets a name of
    its own ("query-<pid>-<n>-<random>"), so Clients open at once never
    fence each other; a name that never stores a batch is one the server may
    forget first (PROTOCOL.md 5.3).
    Times (start, end) are int ns, datetime (naive = UTC) or RFC 3339 text;
    ranges are start <= ts < end. Fixed-point results come as a float under
    their key and an exact decimal string under key + "_s".
    """

    def __init__(self, host="127.0.0.1", port=7400, client=None, token=None, timeout=30.0,
                 tls=False, cafile=None, certfile=None, keyfile=None, server_hostname=None):
        if client is None:
            client = "query-%d-%d-%s" % (os.getpid(), next(_names), os.urandom(3).hex())
        _conn.check_name(client, token)
        ctx = _conn.tls_context(tls, cafile, certfile, keyfile)
        self._where = (host, port)
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._unpacker = _conn.unpacker()
        self._qid = 0
        try:
            if ctx is not None:
                try:
                    self._sock = ctx.wrap_socket(self._sock,
                                                 server_hostname=server_hostname or host)
                except ssl.SSLError as e:
                    raise _conn.tls_error(e, host, port) from None
            self._sock.sendall(_conn.hello(client, token))
            msg = self._recv(_conn.closed_before_welcome(host, port, ctx is not None))
            t, _, code, message, _ = _conn.parse_reply(msg)
            if t != "WELCOME":
                raise _conn.fatal(code or t, message, "HELLO")
        except BaseException:
            self.close()
            raise

    def _recv(self, closed="slotd closed the connection"):
        while True:
            for msg in self._unpacker:
                return msg
            try:
                data = self._sock.recv(1 << 16)
            except ssl.SSLError as e:  # e.g. mutual TLS refused after the handshake
                raise _conn.tls_error(e, *self._where) from None
            except ConnectionResetError:
                data = b""
            if not data:
                raise ProtocolError(closed)
            self._unpacker.feed(data)

    def _send(self, msg):
        if self._sock is None:
            raise Closed("the client is closed")
        self._sock.sendall(msgpack.packb(msg, use_bin_type=True))

    def _call(self, req):
        self._qid += 1
        self._send(["Q", self._qid, req])
        msg = self._recv()
        t, rid, code, message, _ = _conn.parse_reply(msg)
        if t == "R" and rid == self._qid and len(msg) == 3:
            return msg[2]
        if t == "ERR" and rid == self._qid:
            if code == "NOT_FOUND":
                raise NotFound(code, message)
            raise QueryError(code, message)
        if t == "ERR":  # about the session: UNAUTHORIZED, FENCED, ...
            raise _conn.fatal(code, message, "query")
        raise ProtocolError("unexpected reply %r to query %d" % (msg, self._qid))

    @staticmethod
    def _range(req, start, end):
        start, end = query_time(start, "start"), query_time(end, "end")
        if start is not None:
            req["from"] = start
        if end is not None:
            req["to"] = end
        return req

    def stats(self):
        """Global store statistics (as GET /stats)."""
        return self._call({"op": "stats"})

    def symbol(self, sym):
        """A symbol's aggregates: count, volume, notional, vwap, OHLC, first/last ts."""
        return self._call({"op": "symbol", "sym": sym})

    def trades(self, sym, start=None, end=None, limit=None, page=PAGE_MAX):
        """Every trade of sym with start <= ts < end, in arrival order, as an
        iterator that follows the cursors page by page (`page` trades a
        query); at most `limit` trades if given. The first page is fetched
        now, so NotFound is raised by this call."""
        if limit is not None and limit < 0:
            raise ValueError("limit: >= 0")
        req = self._range({"op": "trades", "sym": sym, "cursor": 0}, start, end)
        page = max(1, min(int(page), PAGE_MAX))
        first = self._page(req, page, limit)
        return self._iter(req, page, limit, first)

    def _page(self, req, page, left):
        req["limit"] = page if left is None else max(1, min(page, left))
        return self._call(req)

    def _iter(self, req, page, left, r):
        while True:
            rows = r["trades"]
            if left is not None:
                rows = rows[:left]
                left -= len(rows)
            yield from rows
            if r.get("next_cursor") is None or left == 0:
                return
            req["cursor"] = r["next_cursor"]
            r = self._page(req, page, left)

    def bars(self, sym, interval, start=None, end=None):
        """OHLCV bars of `interval` (int ns, timedelta, or a duration string
        such as "5m"; a bare number in a string is seconds)."""
        req = {"op": "bars", "sym": sym, "interval": _interval(interval)}
        return self._call(self._range(req, start, end))

    def top(self, n=10, by="count"):
        """The top n symbols by "count", "volume" or "notional"."""
        return self._call({"op": "top", "top": n, "by": by})

    def schema(self):
        """The record kinds and their slots."""
        return self._call({"op": "schema"})

    def delete(self, sym, start, end):
        """Deletes sym's trades with start <= ts < end; answered once durable:
        {"symbol", "from", "to", "deleted": N}."""
        if start is None or end is None:
            raise ValueError("delete: start and end are both required")
        return self._call(self._range({"op": "delete", "sym": sym}, start, end))

    def subscribe(self, syms, from_="now", gaps=False):
        """Trades of `syms` (a list of symbols, or "*") as they become
        durable, from `from_`: "now", "start" (everything still stored), or
        a cursor {sym: position} saved from an earlier Subscription.cursor.
        Returns a Subscription (an iterator; see its doc). While it is open
        this Client serves nothing else: use another Client for queries."""
        if not hasattr(self, "_slot_names"):
            self._slot_names = {k["name"]: [s["name"] for s in k["slots"]]
                                for k in self.schema()["kinds"]}
        self._qid += 1
        return Subscription(self, self._qid, syms, from_, gaps, self._slot_names)

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
