"""slotd: the official Python client of slotd.

    import slotd
    with slotd.Sender(port=7400, client="feed-1", spool="feed-1.spool") as s:
        s.trade("AAPL", 1767225600000000000, "187.25", 100, side="B", id=1)
    # leaving the block flushed: every trade is stored exactly once

    with slotd.Client(port=7400) as c:
        print(c.symbol("AAPL"))

    # over TLS, as a client of --auth-file (its secret as the token)
    slotd.Sender(host="db1", port=7443, client="feed-1", token=secret,
                 tls=True, cafile="ca.pem")

    with slotd.Client(port=7400) as c:
        for t in c.subscribe(["AAPL"], from_="now"):   # or "*"; from_=saved cursor
            print(t)                                   # {"sym", "ts", "px": "187.25", ..., "pos"}

The delivery contract (batching, seal/send/ack, errors, retry budget,
spool) is docs/clients.md; the wire protocol proto/PROTOCOL.md.
"""
from ._client import Client
from ._sender import Sender
from .errors import (BatchError, Closed, Error, Fenced, NotFound, ProtocolError, QueryError,
                     SpoolError, SpoolLocked, SubscribeError, Timeout, TlsError, Unauthorized,
                     WouldBlock)

__version__ = "0.1.0"
__all__ = ["Sender", "Client", "Error", "BatchError", "Closed", "Fenced", "NotFound",
           "ProtocolError", "QueryError", "SpoolError", "SpoolLocked", "SubscribeError", "Timeout",
           "TlsError", "Unauthorized", "WouldBlock"]
