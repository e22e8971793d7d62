"""What the sender and the query client share: HELLO, reply reading, and the
exception a session-level ERR maps to (PROTOCOL.md 2.2, 7)."""
import msgpack

from .errors import Fenced, ProtocolError, Unauthorized

# HELLO answers that mean "try again later" (docs/clients.md, replies table).
HELLO_TRANSIENT = frozenset(("NOT_READY", "TOO_MANY_CONNECTIONS", "TOO_MANY_CLIENTS", "IDLE_TIMEOUT"))


def hello(client, token):
    args = {"client": client}
    if token is not None:
        args["token"] = token
    return msgpack.packb(["HELLO", args], use_bin_type=True)


def unpacker():
    # Query results can be large (a 10,000-trade page); batches never come back.
    return msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=256 << 20)


def check_name(client, token):
    if not isinstance(client, str) or not 1 <= len(client.encode()) <= 64 or "\0" in client:
        raise ValueError("client: a name of 1-64 bytes without NUL, got %r" % (client,))
    if token is not None and not isinstance(token, str):
        raise TypeError("token: str or None")


def fatal(code, message, where):
    """The exception for a session error that ends the connection for good."""
    text = "%s: %s from slotd: %s" % (where, code, message)
    if code == "UNAUTHORIZED":
        return Unauthorized(text, code)
    if code == "FENCED":
        return Fenced(text, code)
    return ProtocolError(text, code)


def parse_reply(msg):
    """(type, id, code, message, index) of a reply; ProtocolError if it is
    not one slotd sends."""
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], str):
        raise ProtocolError("unreadable reply from slotd: %r" % (msg,))
    t = msg[0]
    if t == "ERR" and len(msg) == 5:
        return t, msg[1], msg[2], msg[3], msg[4]
    if t in ("ACK", "R", "WELCOME") and len(msg) >= 2:
        return t, msg[1], None, None, None
    raise ProtocolError("unreadable reply from slotd: %r" % (msg,))
