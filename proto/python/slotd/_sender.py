"""slotd.Sender: records in, each stored exactly once or reported (docs/clients.md).

No background thread: in blocking mode the I/O happens inside trade()/send()
(non-blocking sends at every seal; a wait only when max_buffered is full),
flush() and close(); in non-blocking mode inside process(), which the
application calls when fileno() is ready or next_timeout() has passed. A
thread would put a lock on every trade() call and compete for the GIL with
the producer; the cost of doing without is that an idle blocking sender seals
its open batch (linger) only at its next call or flush().

One sender is used by one thread at a time.
"""
import collections
import errno
import math
import os
import re
import select
import selectors
import socket
import ssl
import time

import msgpack

from . import _conn
from ._spool import COMPACT_BYTES, Spool
from ._values import fixed, ts_ns, value
from .errors import BatchError, Closed, ProtocolError, SpoolError, Timeout, TlsError, WouldBlock

# docs/clients.md, "Replies and what the library does with each".
TRANSIENT = frozenset(("STORE_FULL", "JOURNAL", "NOT_READY"))
PERMANENT = frozenset(("BAD_VALUE", "UNKNOWN_FIELD", "MISSING_FIELD", "WRONG_TYPE", "BAD_SYMBOL",
                       "UNKNOWN_KIND", "KIND_MISMATCH", "SYMBOL_LIMIT", "TOO_LARGE"))
_FIELD = re.compile(r"trade (\d+): ([^:]+): ")   # PROTOCOL.md 3.5: "trade <index>: <slot>: "
_DISCONNECTED, _CONNECTING, _HANDSHAKE, _HELLO, _READY = range(5)
_INT_MIN, _INT_END = -(1 << 63), 1 << 64          # what msgpack can carry
_now = time.monotonic


class _Batch:
    """A sealed batch. msg is the whole ["T", seq, trades(, kind)] message once
    the seq is known; size is what it counts against max_buffered."""
    __slots__ = ("seq", "sealed", "ntrades", "kind", "body", "msg", "size", "given_up")

    def __init__(self, seq, sealed, ntrades, kind, body):
        self.seq, self.sealed, self.ntrades, self.kind, self.body = seq, sealed, ntrades, kind, body
        self.msg = None
        self.size = len(body) + 16
        self.given_up = False

    def build(self):
        head = b"\x94\xa1T" if self.kind else b"\x93\xa1T"
        tail = msgpack.packb(self.kind) if self.kind else b""
        self.msg = head + msgpack.packb(self.seq) + self.body + tail
        self.body = None  # the message holds it: keep one copy

    def settle(self):
        """Give the batch up: from now on it is the empty batch that settles
        its seq (PROTOCOL.md 5.1), so the later ones flow."""
        self.given_up = True
        self.msg = b"\x93\xa1T" + msgpack.packb(self.seq) + b"\x90"


def _num(v, what):
    if type(v) is int:
        if _INT_MIN <= v < _INT_END:
            return v
        raise OverflowError("%s: %d does not fit 64 bits" % (what, v))
    return fixed(v, what)


class Sender:
    """Streams records to slotd under one client name, exactly once.

    Sender(host="127.0.0.1", port=7400, client="feed-1", token=None,
           batch_size=1000, linger=0.005, window=32, max_buffered=64 << 20,
           spool=None, spool_sync=True, backoff=(0.05, 2.0), retry_timeout=60.0,
           blocking=True, tls=False, cafile=None, certfile=None, keyfile=None,
           server_hostname=None)

    Records go into an open batch; it is sealed (given the next seq, written
    to the spool if any) at batch_size records, when `linger` seconds have
    passed since its first record (checked at each call), on flush(), or when
    a record of another kind arrives. At most `window` sealed batches are in
    flight; sealed batches not yet acknowledged are bounded by max_buffered
    bytes: past it trade()/send() wait (blocking) or raise WouldBlock.

    Timestamps: int ns since the epoch or datetime (a naive datetime is UTC).
    Prices and quantities: str (exact), int (whole units), float (rounded to
    1e-8 by slotd) or Decimal (sent as its exact decimal string); bool is a
    TypeError.

    tls=True speaks TLS (a --tls-port), as in Client: cafile, certfile,
    keyfile, server_hostname (default: host), or tls=an ssl.SSLContext. The
    TLS runs through memory BIOs, so fileno()/events()/process() work alike.
    A failed handshake (untrusted certificate, ours refused) is fatal:
    TlsError; a connection lost otherwise is retried as over TCP.
    """

    def __init__(self, host="127.0.0.1", port=7400, client=None, token=None, batch_size=1000,
                 linger=0.005, window=32, max_buffered=64 << 20, spool=None, spool_sync=True,
                 backoff=(0.05, 2.0), retry_timeout=60.0, blocking=True, tls=False,
                 cafile=None, certfile=None, keyfile=None, server_hostname=None):
        if client is None:
            raise ValueError("client: a client name is required (Sender(client='feed-1'))")
        _conn.check_name(client, token)
        if not 1 <= batch_size <= 100_000:
            raise ValueError("batch_size: 1..100000 (the server's --max-batch default)")
        if window < 1 or max_buffered < 1 or linger < 0 or retry_timeout <= 0:
            raise ValueError("window, max_buffered and retry_timeout must be positive, linger >= 0")
        if not 0 < backoff[0] <= backoff[1]:
            raise ValueError("backoff: (min, max) seconds with 0 < min <= max")
        self.host, self.port, self.client = host, port, client
        self._ssl = _conn.tls_context(tls, cafile, certfile, keyfile)
        self._sni = server_hostname or host
        self._tls = None              # ssl.SSLObject of this connection (TLS only)
        self._tls_in = self._tls_out = None  # its memory BIOs: ciphertext in, out
        self._raw = bytearray()       # ciphertext not yet sent (TLS only)
        self.batch_size, self.linger, self.window = batch_size, linger, window
        self.max_buffered, self.retry_timeout, self.blocking = max_buffered, retry_timeout, blocking
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.errors = []             # every BatchError, oldest first
        self._reported = 0           # errors already raised by flush()
        self._hello = _conn.hello(client, token)
        self._pack = msgpack.Packer(use_bin_type=True).pack
        self._open, self._open_kind, self._seal_at = [], "", 0.0
        self._queue = collections.deque()   # sealed, not acknowledged, seq order
        self._next = 0                # index in _queue of the next batch to send
        self._inflight = collections.deque()  # (seq, gen) sent on this connection
        self._gen = 0                 # bumped at every rewind: replies to older sends are stale
        self._buffered = 0
        self._next_seq = None         # unknown until the first WELCOME (or the spool)
        self._sealed = 0
        self._sock, self._state = None, _DISCONNECTED
        self._wbuf = bytearray()
        self._unpacker = None
        self._retry_at = 0.0          # no (re)connect before
        self._hold_until = 0.0        # no resend before (transient error back-off)
        self._backoff_cur = self.backoff[0]
        self._obstacle = None
        self._t_progress = _now()
        self._fatal = None
        self._closed = False
        self._dead = False            # _fatal or _closed: the one test on the hot path
        self._max_sent = 0
        self._stats = collections.Counter()
        self._spool = None
        if spool is not None:
            self._spool = Spool(spool, spool_sync)
            self._sealed = self._spool.sealed
            if self._spool.history:  # seqs continue the spool's
                self._next_seq = self._spool.last_seq + 1
            for r in self._spool.pending:
                b = _Batch(r.seq, r.sealed, r.ntrades, r.kind, r.body)
                b.build()
                self._queue.append(b)
                self._buffered += b.size
            self._spool.pending = None
        self._step()  # start connecting

    # -- records -------------------------------------------------------
    def trade(self, sym, ts, px, qty, side=None, id=None):
        """Appends one `trade` (array form). side: None, "B", "S" (or "buy",
        "sell", "U"); id: None or a uint64."""
        if self._dead:
            self._check()
        if type(sym) is not str:
            raise TypeError("sym: expected str, got %s" % type(sym).__name__)
        if type(ts) is not int or not 0 <= ts < _INT_END:
            ts = ts_ns(ts)
            if not _INT_MIN <= ts < _INT_END:
                raise OverflowError("ts: %d does not fit 64 bits" % ts)
        t = type(px)  # the common types inline: this is the hot path
        if t is not str and t is not float and (t is not int or not _INT_MIN <= px < _INT_END):
            px = _num(px, "px")
        t = type(qty)
        if t is not str and t is not float and (t is not int or not _INT_MIN <= qty < _INT_END):
            qty = _num(qty, "qty")
        if id is not None:
            if type(id) is not int or not 0 <= id < _INT_END:
                raise TypeError("id: expected an int 0..2^64-1, got %r" % (id,))
            if side is not None and type(side) is not str:
                raise TypeError("side: expected str or None")
            rec = [sym, ts, px, qty, side, id]
        elif side is not None:
            if type(side) is not str:
                raise TypeError("side: expected str or None")
            rec = [sym, ts, px, qty, side]
        else:
            rec = [sym, ts, px, qty]
        o = self._open
        if o and not self._open_kind and self._buffered < self.max_buffered and _now() < self._seal_at:
            o.append(rec)  # what _append does when nothing is due
            if len(o) >= self.batch_size:
                self._seal()
                self._step()
            return
        self._append(rec, "")

    def send(self, record, kind=None):
        """Appends any record in map form: {"sym": ..., slot: value, ...}.
        kind names its kind ("option_trade"); None lets slotd infer it
        (PROTOCOL.md 3.1). datetime and Decimal values are converted as in
        trade(); other values go as given and slotd checks them."""
        self._check()
        if not isinstance(record, dict):
            raise TypeError("record: expected a dict (map form)")
        if not isinstance(record.get("sym"), str):
            raise TypeError("record: 'sym' must be a str")
        if kind is not None and not isinstance(kind, str):
            raise TypeError("kind: str or None")
        rec = {}
        for k, v in record.items():
            if not isinstance(k, str):
                raise TypeError("record: keys must be str, got %r" % (k,))
            v = value(v, k)
            if type(v) is int and not _INT_MIN <= v < _INT_END:
                raise OverflowError("%s: %d does not fit 64 bits" % (k, v))
            if v is not None and not isinstance(v, (int, float, str)):
                raise TypeError("%s: %s is not a slot value" % (k, type(v).__name__))
            rec[k] = v
        kind = "" if kind in (None, "trade") else kind
        if len(kind.encode()) > 255:
            raise ValueError("kind: at most 255 bytes")
        self._append(rec, kind)

    def _append(self, rec, kind):
        if self._open:
            if kind != self._open_kind or _now() >= self._seal_at:
                self._seal()
        if self._buffered >= self.max_buffered:
            self._room()
        if not self._open:
            self._seal_at = _now() + self.linger
            self._open_kind = kind
        self._open.append(rec)
        if len(self._open) >= self.batch_size:
            self._seal()
            self._step()

    def _room(self):
        """Waits for max_buffered to have room, or raises (the record is not taken)."""
        if not self.blocking:
            self._step()
            self._check()
            if self._buffered >= self.max_buffered:
                raise WouldBlock("max_buffered (%d bytes) of sealed batches await their ACK: "
                                 "call process()" % self.max_buffered)
            return
        self._run_until(lambda: self._buffered < self.max_buffered, None)

    def _seal(self):
        if not self._open:
            return
        body = self._pack(self._open)
        n = len(self._open)
        self._open = []
        self._sealed += n
        b = _Batch(None, self._sealed, n, self._open_kind, body)
        if not self._queue:
            self._t_progress = _now()
        self._queue.append(b)
        self._buffered += b.size
        if self._next_seq is not None:
            self._assign(b)

    def _assign(self, b):
        b.seq = self._next_seq
        self._next_seq += 1
        if self._spool is not None:
            try:  # written (and synced) before it can be sent: exactly once across a crash
                self._spool.append_batch(b.seq, b.sealed, b.ntrades, b.kind, b.body)
            except SpoolError as e:
                self._stop(e)
                raise
        b.build()

    # -- waiting -------------------------------------------------------
    def flush(self, timeout=None):
        """Seals the open batch and returns once every batch sealed so far is
        done (acknowledged, or given up). Raises the first BatchError not
        raised before (all are in .errors), Timeout when the retry budget
        (or `timeout` seconds) runs out — nothing is dropped then — or a fatal
        error (Unauthorized, Fenced, ProtocolError, SpoolError)."""
        self._check()
        self._seal()
        self._run_until(lambda: not self._queue, timeout)
        if self._reported < len(self.errors):
            first, more = self.errors[self._reported], len(self.errors) - self._reported - 1
            self._reported = len(self.errors)
            if more:
                first.args = (first.args[0] + " (and %d more in sender.errors)" % more,)
            raise first

    def _run_until(self, done, timeout):
        start = _now()
        deadline = math.inf if timeout is None else start + timeout
        while True:
            self._step()
            self._check()
            if done():
                return
            now = _now()
            budget_end = max(self._t_progress, start) + self.retry_timeout
            if now >= budget_end:
                raise Timeout(self._stuck("retry budget of %gs spent" % self.retry_timeout))
            if now >= deadline:
                raise Timeout(self._stuck("timeout of %gs spent" % timeout))
            self._wait(min(budget_end, deadline, self._timer()) - now)

    def _timer(self):
        """When _step has something to do without I/O (inf: nothing)."""
        t = math.inf
        if self._open:
            t = self._seal_at
        if self._sock is None and self._wants_connection():
            t = min(t, self._retry_at)
        if self._hold_until > _now():
            t = min(t, self._hold_until)
        return t

    def _wait(self, seconds):
        seconds = max(0.0, seconds)
        if self._sock is None:
            time.sleep(seconds)
            return
        w = [self._sock] if self._wants_write() else []
        select.select([self._sock], w, [], seconds)

    def _wants_write(self):
        if self._state == _CONNECTING or self._raw:
            return True
        # HELLO waits in _wbuf until the TLS handshake is done
        return bool(self._wbuf) and (self._tls is None or self._state != _HANDSHAKE)

    def _stuck(self, head):
        q = self._queue
        seqs = [b.seq for b in q if b.seq is not None]
        what = "%d batch(es), %d trades, unacknowledged" % (len(q), sum(b.ntrades for b in q))
        if seqs:
            what += " (seqs %d..%d)" % (seqs[0], seqs[-1])
        return "%s: %s; last obstacle: %s" % (head, what, self._obstacle or
                                               "none seen (slotd is slow to acknowledge)")

    # -- the engine ----------------------------------------------------
    def _wants_connection(self):
        return bool(self._queue) or self._next_seq is None

    def _step(self):
        """Whatever can be done now without blocking."""
        if self._fatal is not None or self._closed:
            return
        now = _now()
        if self._open and now >= self._seal_at:
            self._seal()
        if self._sock is None:
            if now < self._retry_at or not self._wants_connection():
                return
            self._connect()
            if self._sock is None:
                return
        if self._state == _CONNECTING:
            _, w, _ = select.select([], [self._sock], [], 0)
            if not w:
                return
            err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._lost("cannot connect to %s:%s: %s" % (self.host, self.port, _strerror(err)))
                return
            self._state = _HELLO
            self._wbuf += self._hello
            if self._ssl is not None and not self._tls_start():
                return
        if not self._read():
            return
        if self._state == _READY:
            self._fill(now)
        if self._wbuf or self._raw:
            self._write()

    def _tls_start(self):
        self._tls_in, self._tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
        try:
            self._tls = self._ssl.wrap_bio(self._tls_in, self._tls_out,
                                           server_hostname=self._sni)
        except (ssl.SSLError, ValueError) as e:
            self._stop(TlsError("TLS with %s:%s: %s" % (self.host, self.port, e)))
            return False
        self._state = _HANDSHAKE
        return self._decrypt(b"") is not None  # the ClientHello goes out

    def _decrypt(self, data):
        """Ciphertext in, plaintext out (b"" while there is none); None when
        the connection is gone (lost, or TLS failed: fatal)."""
        self._tls_in.write(data)
        out = []
        try:
            if self._state == _HANDSHAKE:
                self._tls.do_handshake()
                self._state = _HELLO
            while True:
                chunk = self._tls.read(1 << 16)
                if not chunk:  # close_notify: the socket's end follows
                    break
                out.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._lost("slotd closed the TLS session")
            return None
        except ssl.SSLError as e:
            self._stop(_conn.tls_error(e, self.host, self.port))
            return None
        self._raw += self._tls_out.read()  # handshake records, alerts
        return b"".join(out)

    def _connect(self):
        self._stats["connects"] += 1
        try:
            family, stype, proto, _, addr = socket.getaddrinfo(self.host, self.port,
                                                               type=socket.SOCK_STREAM)[0]
            s = socket.socket(family, stype, proto)
        except OSError as e:
            self._lost("cannot connect to %s:%s: %s" % (self.host, self.port, e))
            return
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rc = s.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            s.close()
            self._lost("cannot connect to %s:%s: %s" % (self.host, self.port, _strerror(rc)))
            return
        self._sock, self._state = s, _CONNECTING
        self._unpacker = _conn.unpacker()

    def _read(self):
        """Reads and handles what arrived; False if the connection is gone."""
        while True:
            try:
                data = self._sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError as e:
                self._lost("connection to %s:%s lost: %s" % (self.host, self.port, e))
                return False
            if not data:
                if self._state in (_HANDSHAKE, _HELLO):
                    self._lost(_conn.closed_before_welcome(self.host, self.port,
                                                             self._ssl is not None))
                else:
                    self._lost("slotd closed the connection")
                return False
            if self._tls is not None:
                data = self._decrypt(data)
                if data is None:
                    return False
                if not data:
                    continue
            self._unpacker.feed(data)
            try:
                for msg in self._unpacker:
                    self._reply(msg)
                    if self._sock is None:
                        return False
            except ProtocolError as e:
                self._stop(e)
                return False
            except ValueError as e:  # msgpack: not valid msgpack at all
                self._stop(ProtocolError("unreadable reply from slotd: %s" % e))
                return False

    def _write(self):
        buf = self._wbuf
        if self._tls is not None:
            if self._wbuf and self._state != _HANDSHAKE:
                try:
                    del self._wbuf[:self._tls.write(self._wbuf)]
                except ssl.SSLError as e:
                    self._stop(_conn.tls_error(e, self.host, self.port))
                    return
                self._raw += self._tls_out.read()
            buf = self._raw
        while buf:
            try:
                n = self._sock.send(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self._lost("connection to %s:%s lost: %s" % (self.host, self.port, e))
                return
            del buf[:n]

    def _fill(self, now):
        if now < self._hold_until:
            return
        q, inflight = self._queue, self._inflight
        while len(inflight) < self.window and self._next < len(q):
            b = q[self._next]
            if b.seq is None:
                break
            self._wbuf += b.msg
            inflight.append((b.seq, self._gen))
            self._next += 1
            self._stats["batches_sent"] += 1
            if b.seq <= self._max_sent:
                self._stats["batches_resent"] += 1
            else:
                self._max_sent = b.seq

    def _reply(self, msg):
        t, rid, code, message, index = _conn.parse_reply(msg)
        if self._state == _HELLO:
            if t == "WELCOME":
                self._welcome(msg[1])
            elif t == "ERR" and code in _conn.HELLO_TRANSIENT:
                self._lost("HELLO answered %s: %s" % (code, message))
            else:
                self._stop(_conn.fatal(code or t, message, "HELLO"))
            return
        if t == "ERR" and rid == 0:  # about the session, not a batch
            if code in ("IDLE_TIMEOUT", "NOT_READY"):
                self._lost("slotd closed the connection: %s: %s" % (code, message))
            else:
                self._stop(_conn.fatal(code, message, "connection"))
            return
        if not self._inflight:
            raise ProtocolError("reply %r to no request" % (msg,))
        seq, gen = self._inflight.popleft()
        if rid != seq:
            raise ProtocolError("reply %r, expected one for batch %d" % (msg, seq))
        if t == "ACK":
            self._acked(seq)
        elif t != "ERR":
            raise ProtocolError("reply %r to batch %d" % (msg, seq))
        elif code in TRANSIENT or code == "BLOCKED":
            if gen == self._gen:  # older sends were rewound already
                self._obstacle = "%s for batch %d: %s" % (code, seq, message)
                self._rewind(True)
        elif code in PERMANENT:
            self._give_up(seq, code, message, index)
            if gen == self._gen:
                self._rewind(False)
        else:
            self._stop(_conn.fatal(code, message, "batch %d" % seq))

    def _welcome(self, info):
        last = info.get("last_seq", 0) if isinstance(info, dict) else 0
        self._state = _READY
        self._stats["welcomes"] += 1
        if self._next_seq is None or self._next_seq <= last:
            # Without spool history the first WELCOME says where this name is.
            self._next_seq = last + 1
            for b in self._queue:
                if b.seq is None:
                    self._assign(b)
        if self._queue and self._queue[0].seq is not None and self._queue[0].seq <= last:
            self._acked(last)  # stored before the connection was lost

    def _acked(self, seq):
        q = self._queue
        while q and q[0].seq is not None and q[0].seq <= seq:
            b = q.popleft()
            self._buffered -= b.size
            if self._next:
                self._next -= 1
            if not b.given_up:
                self._stats["batches_acked"] += 1
                self._stats["trades_acked"] += b.ntrades
        self._t_progress = _now()
        self._backoff_cur = self.backoff[0]
        if self._spool is not None:
            try:
                self._spool.ack(seq)
                if not q and self._spool.size > COMPACT_BYTES:
                    self._spool.compact()
            except SpoolError as e:
                self._stop(e)

    def _give_up(self, seq, code, message, index):
        for b in self._queue:
            if b.seq == seq:
                if not b.given_up:
                    m = _FIELD.match(message or "")
                    self.errors.append(BatchError(code, seq, index, m.group(2) if m else None,
                                                  message))
                    self._stats["batches_given_up"] += 1
                    b.settle()
                return

    def _rewind(self, backoff):
        """Resend every unacknowledged batch, in order (after a back-off)."""
        self._next = 0
        self._gen += 1
        if backoff:
            self._hold_until = _now() + self._delay()
            self._stats["retries"] += 1

    def _delay(self):
        d = self._backoff_cur
        self._backoff_cur = min(d * 2, self.backoff[1])
        return d

    def _drop_connection(self):
        if self._sock is not None:
            self._sock.close()
        self._sock, self._state = None, _DISCONNECTED
        self._tls = self._tls_in = self._tls_out = None
        self._raw.clear()
        self._inflight.clear()
        self._wbuf.clear()
        self._next = 0
        self._gen += 1

    def _lost(self, reason):
        self._drop_connection()
        self._obstacle = reason
        self._retry_at = _now() + self._delay()
        self._stats["disconnects"] += 1

    def _stop(self, exc):
        """A fatal error: the sender stops; every call raises it."""
        if self._fatal is None:
            self._fatal = exc
        self._dead = True
        self._drop_connection()

    def _check(self):
        if self._closed:
            raise Closed("the sender is closed")
        if self._fatal is not None:
            raise self._fatal.with_traceback(None)

    # -- non-blocking mode ---------------------------------------------
    def fileno(self):
        """The socket to watch (it changes across reconnects), or -1 while
        there is none (waiting for the back-off: see next_timeout())."""
        return self._sock.fileno() if self._sock is not None else -1

    def events(self):
        """selectors.EVENT_READ / EVENT_WRITE the socket is waited for (0: none)."""
        if self._sock is None:
            return 0
        if self._wants_write():
            return selectors.EVENT_READ | selectors.EVENT_WRITE
        return selectors.EVENT_READ

    def next_timeout(self):
        """Seconds until process() has timed work to do (linger, back-off),
        or None if it only waits for the socket."""
        t = self._timer()
        return None if t == math.inf else max(0.0, t - _now())

    def process(self):
        """Makes what progress is possible without blocking; returns the
        number of sealed batches not yet done. Raises a fatal error, and
        Timeout each time retry_timeout passes without progress (the
        batches stay queued)."""
        self._check()
        self._step()
        self._check()
        if self._queue and _now() - self._t_progress >= self.retry_timeout:
            self._t_progress = _now()
            raise Timeout(self._stuck("retry budget of %gs spent" % self.retry_timeout))
        return len(self._queue)

    # -- state ---------------------------------------------------------
    @property
    def sealed(self):
        """Trades sealed into batches, ever, under this spool: after a crash,
        resume the source at this trade number (docs/clients.md)."""
        return self._sealed

    @property
    def pending(self):
        """Sealed batches not yet done."""
        return len(self._queue)

    @property
    def stats(self):
        s = dict(self._stats)
        for k in ("connects", "welcomes", "disconnects", "batches_sent", "batches_resent",
                  "batches_acked", "trades_acked", "batches_given_up", "retries"):
            s.setdefault(k, 0)
        s.update(sealed=self._sealed, queued_batches=len(self._queue),
                 queued_bytes=self._buffered, inflight=len(self._inflight),
                 open_records=len(self._open), connected=self._state == _READY)
        return s

    # -- the end -------------------------------------------------------
    def close(self, flush=True, timeout=None):
        """flush(timeout) (unless flush=False or the sender stopped on a fatal
        error), then releases the socket and the spool. Batches still
        unacknowledged stay in the spool; without one they are lost."""
        if self._closed:
            return
        try:
            if flush and self._fatal is None:
                self.flush(timeout)
        finally:
            self._drop_connection()
            self._closed = self._dead = True
            if self._spool is not None:
                self._spool.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # On an exception: close without flushing, and without hiding it.
        self.close(flush=exc_type is None)
        return False

    def __del__(self):
        try:
            if not self._closed:
                self.close(flush=False)
        except Exception:
            pass


def _strerror(err):
    try:
        return os.strerror(err)
    except ValueError:
        return "error %d" % err
