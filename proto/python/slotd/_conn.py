"""What the sender and the query client share: HELLO, reply reading, and the
exception a session-level ERR maps to (PROTOCOL.md 2.2, 7)."""
import ssl

import msgpack

from .errors import Fenced, ProtocolError, TlsError, Unauthorized

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


def tls_context(tls, cafile, certfile, keyfile):
    """The SSLContext to use, or None for plain TCP. tls=True makes one that
    verifies the server against cafile (None: the system's CAs) and its
    host name, TLS 1.2 at least; an SSLContext is used as it is."""
    if not tls:
        if cafile or certfile or keyfile:
            raise ValueError("cafile, certfile and keyfile need tls=True")
        return None
    if isinstance(tls, ssl.SSLContext):
        if cafile or certfile or keyfile:
            raise ValueError("tls=SSLContext: load cafile/certfile into the context itself")
        return tls
    if tls is not True:
        raise TypeError("tls: True, False or an ssl.SSLContext")
    if keyfile and not certfile:
        raise ValueError("keyfile needs certfile (the client certificate)")
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def tls_error(e, host, port):
    """A TlsError naming what failed, from an ssl.SSLError."""
    what = getattr(e, "reason", None) or str(e)
    hint = ""
    if isinstance(e, ssl.SSLCertVerificationError):
        what = "certificate verify failed: %s" % e.verify_message
        hint = " (is cafile the CA that signed slotd's certificate, for this host name?)"
    elif getattr(e, "reason", None) in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE"):
        hint = " (does this port speak TLS? see --tls-port)"
    elif "CERTIFICATE_REQUIRED" in str(getattr(e, "reason", "")).upper():
        hint = " (slotd asks for a client certificate: certfile, keyfile)"
    return TlsError("TLS with %s:%s failed: %s%s" % (host, port, what, hint))


def closed_before_welcome(host, port, tls):
    """What a connection closed before the WELCOME most often means."""
    hint = "" if tls else " (if the port is a --tls-port, use tls=True)"
    return "slotd at %s:%s closed the connection before answering HELLO%s" % (host, port, hint)
