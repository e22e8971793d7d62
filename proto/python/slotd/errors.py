"""The exceptions of the slotd client. Every one derives from slotd.Error.

Errors the server sent carry its `code` (e.g. "UNAUTHORIZED") and
`message`; branch on the code, never on the message (PROTOCOL.md 3.5).
"""


class Error(Exception):
    """Base of every slotd client error."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.message = message
        self.code = code


class WouldBlock(Error):
    """Non-blocking sender: max_buffered bytes of batches await their ACK.
    The record was not taken; call process() and try again."""


class Timeout(Error):
    """The retry budget (or the call's own timeout) ran out. The message says
    what blocked. Nothing is dropped: the batches stay queued (and spooled)."""


class Unauthorized(Error):
    """slotd refused the token (UNAUTHORIZED). Fatal: the sender stops."""


class TlsError(Error):
    """The TLS handshake or a TLS record failed: the server's certificate is
    not trusted (wrong cafile, expired, another host name), the server
    refused ours (mutual TLS), or the port does not speak TLS. Fatal."""


class Fenced(Error):
    """Another connection took this client name (FENCED). Fatal."""


class ProtocolError(Error):
    """MALFORMED, BAD_MESSAGE, TOO_LARGE (message size), NOT_HELLO, or a
    reply the library cannot read: a bug or a server with smaller limits."""


class SpoolError(Error):
    """The spool cannot be read or written, or is damaged (the message names
    the file and the offset)."""


class SpoolLocked(SpoolError):
    """Another sender (in this or another process) holds the spool."""


class Closed(Error):
    """The sender or client was closed."""


class BatchError(Error):
    """A batch the server refused for its data, given up (docs/clients.md).

    code     the server's code, e.g. "BAD_VALUE"
    seq      the batch's sequence number
    index    0-based index of the first bad record in the batch (None if the
             error concerns the whole batch)
    field    the slot the server's message names ("px"), or None
    message  the server's message, e.g. "trade 3: px: more than 8 decimals"
    """

    def __init__(self, code, seq, index, field, message):
        text = "batch %d refused with %s and given up: %s" % (seq, code, message)
        super().__init__(text, code)
        self.message = message
        self.seq = seq
        self.index = index
        self.field = field

    def __reduce__(self):
        return (BatchError, (self.code, self.seq, self.index, self.field, self.message))


class QueryError(Error):
    """A query failed: code (BAD_QUERY, NOT_FOUND, ...) and message."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code, message), code)
        self.message = message


class NotFound(QueryError):
    """The query named an unknown symbol (or one with no stored trades)."""


class SubscribeError(Error):
    """slotd refused or ended a subscription: BAD_SUB (the message names the
    bad key), CURSOR_GONE (retention dropped trades at the cursor; subscribe
    with gaps=True or from a later position)."""
