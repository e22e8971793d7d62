"""TLS on the TCP port (--tls-port) and HTTPS (--tls-http-port): a Python
ssl client speaking the protocol and HTTP over TLS; a plain client, garbage
and a stalled handshake on the TLS port closed without hurting others;
mutual TLS with a good, a missing, an expired and a wrong-CA certificate;
SIGHUP reloading the certificate while an old connection goes on.

Certificates are made by the openssl command in a temp dir at start.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import msgpack

from harness import Client, Results, Slotd, wait_for

D = tempfile.mkdtemp(prefix="slotd-tls-certs-")


def p(name):
    return os.path.join(D, name)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def make_ca(name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", p(name + ".key"), "-out", p(name + ".pem"), "-days", "2",
            "-subj", "/CN=" + name)


def make_cert(name, cn, ca, days="2", ext="subjectAltName=DNS:localhost,IP:127.0.0.1"):
    with open(p(name + ".ext"), "w") as f:
        f.write(ext + "\n")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", p(name + ".key"), "-out", p(name + ".csr"), "-subj", "/CN=" + cn)
    openssl("x509", "-req", "-in", p(name + ".csr"), "-CA", p(ca + ".pem"), "-CAkey",
            p(ca + ".key"), "-CAcreateserial", "-out", p(name + ".pem"), "-days", days,
            "-extfile", p(name + ".ext"))


make_ca("ca")
make_ca("ca2")       # the reloaded server certificate's CA
make_ca("other-ca")  # nobody trusts it
make_cert("server", "localhost", "ca")
make_cert("server2", "localhost", "ca2")
make_cert("client", "feed-1", "ca", ext="extendedKeyUsage=clientAuth")
make_cert("expired", "feed-1", "ca", days="-1", ext="extendedKeyUsage=clientAuth")
make_cert("stranger", "feed-1", "other-ca", ext="extendedKeyUsage=clientAuth")
# the files slotd reads: copies, so the reload test can replace them
shutil.copy(p("server.pem"), p("live.pem"))
shutil.copy(p("server.key"), p("live.key"))

TLS_ARGS = ["--tls-port", "0", "--tls-http-port", "0", "--tls-cert", p("live.pem"),
            "--tls-key", p("live.key")]


def client_ctx(ca="ca", cert=None):
    ctx = ssl.create_default_context(cafile=p(ca + ".pem"))
    if cert:
        ctx.load_cert_chain(p(cert + ".pem"), p(cert + ".key"))
    return ctx


class TlsClient(Client):
    """harness.Client over TLS (the protocol is unchanged)."""

    def __init__(self, port, ctx, name="test", hello=True):
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.welcome = None
        if hello:
            self.send(["HELLO", {"client": name}])
            self.welcome = self.recv()
            assert self.welcome[0] == "WELCOME", self.welcome


def https_get(s, path, ctx=None):
    import http.client
    conn = http.client.HTTPSConnection("127.0.0.1", s.tls_http_port, timeout=30,
                                       context=ctx or client_ctx())
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def trades(seq, n=3):
    return [{"sym": "TLS", "ts": seq * 100 + i, "px": "1.5", "qty": 2} for i in range(n)]


def ingest_query(s, name, seq, ctx=None):
    """HELLO, one batch, its ACK and a query over TLS; returns the count."""
    c = TlsClient(s.tls_port, ctx or client_ctx(), name)
    try:
        c.send_batch(seq, trades(seq))
        assert c.recv() == ["ACK", seq, 3]
        r = c.query(7, {"op": "symbol", "sym": "TLS"})
        assert r[0] == "R" and r[1] == 7, r
        return r[2]["count"]
    finally:
        c.close()


def refused(s, ctx):
    """A TLS client with ctx on the TLS port cannot get a WELCOME."""
    try:
        c = TlsClient(s.tls_port, ctx, "feed-1")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, EOFError):
        return True
    c.close()
    return False


def test_ingest_query_https():
    with Slotd(TLS_ARGS) as s:
        assert s.tls_port and s.tls_http_port
        assert ingest_query(s, "feed-tls", 1) == 3
        # the plain listener goes on beside the TLS one, same store
        c = Client(s.tcp_port, "feed-plain")
        c.send_batch(1, trades(2))
        assert c.recv() == ["ACK", 1, 3]
        c.close()
        status, body = https_get(s, "/stats")
        assert status == 200 and b'"trades"' in body, body
        status, body = https_get(s, "/symbols/TLS/trades")
        assert status == 200 and body.count(b'"ts"') == 6, body
        assert s.metric("tls_handshakes_total") >= 3
        assert s.metric("tls_failures_total") == 0
        # a second answer on one kept-alive HTTPS connection
        import http.client
        conn = http.client.HTTPSConnection("127.0.0.1", s.tls_http_port, context=client_ctx())
        for _ in range(2):
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            assert r.status == 200
            r.read()
        conn.close()
        # a client that does not trust the server's CA gives up itself
        assert refused(s, client_ctx("other-ca"))


def test_plain_client_on_tls_port():
    with Slotd(TLS_ARGS) as s:
        before = s.metric("tls_failures_total")
        raw = socket.create_connection(("127.0.0.1", s.tls_port), timeout=10)
        raw.sendall(msgpack.packb(["HELLO", {"client": "plain"}]))
        got = b""
        try:
            while True:
                data = raw.recv(4096)
                if not data:
                    break
                got += data
        except ConnectionResetError:
            pass
        raw.close()
        assert b"WELCOME" not in got  # at most a TLS alert, then the close
        # plain HTTP on the HTTPS port: closed, no answer in clear text
        raw = socket.create_connection(("127.0.0.1", s.tls_http_port), timeout=10)
        raw.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            got = raw.recv(4096)
        except ConnectionResetError:
            got = b""
        raw.close()
        assert b"HTTP/1.1" not in got, got
        wait_for(lambda: s.metric("tls_failures_total") >= before + 2, 10, "failures counted")
        assert ingest_query(s, "after-plain", 1) == 3
        assert "tls_error" in s.logs()


def test_mutual_tls():
    args = TLS_ARGS + ["--tls-client-ca", p("ca.pem")]
    with Slotd(args) as s:
        assert ingest_query(s, "feed-1", 1, client_ctx(cert="client")) == 3
        status, _ = https_get(s, "/stats", client_ctx(cert="client"))
        assert status == 200
        before = s.metric("tls_failures_total")
        assert refused(s, client_ctx())                     # no certificate
        assert refused(s, client_ctx(cert="expired"))       # expired
        assert refused(s, client_ctx(cert="stranger"))      # signed by another CA
        try:
            https_get(s, "/stats")
            assert False, "HTTPS without a client certificate answered"
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
            pass
        wait_for(lambda: s.metric("tls_failures_total") >= before + 4, 10, "refusals counted")
        assert ingest_query(s, "feed-1", 2, client_ctx(cert="client")) == 6


def test_garbage_and_stalled_handshakes():
    # the HELLO deadline bounds a TLS handshake too (4 s: under valgrind a
    # good client's handshake beside three bad ones took over 1 s)
    with Slotd(TLS_ARGS + ["--hello-timeout", "4s"]) as s:
        stalled = socket.create_connection(("127.0.0.1", s.tls_port), timeout=30)
        stalled.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello, then nothing
        stalled_http = socket.create_connection(("127.0.0.1", s.tls_http_port), timeout=30)
        stalled_http.sendall(b"\x16\x03\x01")
        garbage = socket.create_connection(("127.0.0.1", s.tls_port), timeout=30)
        garbage.sendall(os.urandom(3000))
        garbage_http = socket.create_connection(("127.0.0.1", s.tls_http_port), timeout=30)
        garbage_http.sendall(b"\x16\x03\x03\x00\x05" + os.urandom(2000))
        # a good client meanwhile, over both ports
        assert ingest_query(s, "good", 1) == 3
        assert https_get(s, "/healthz")[0] == 200

        def closed(sock):
            try:
                while sock.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            return True
        for sock in (garbage, garbage_http, stalled, stalled_http):
            sock.settimeout(30)  # the HTTPS head timeout is 10 s
            assert closed(sock)
            sock.close()
        assert ingest_query(s, "good", 2) == 6


def test_pipelined():
    """Many batches sent before any ACK is read: reading pauses with
    decrypted input still buffered in TLS, and must resume from there (no
    socket read would come for it: the client waits for its ACKs)."""
    n = 30000
    with Slotd(TLS_ARGS + ["--fsync", "always"]) as s:
        c = TlsClient(s.tls_port, client_ctx(), "pipe")
        # One thread (an SSL object is not for concurrent use): everything
        # is sent first; the ~400 KB of ACKs wait in slotd meanwhile.
        c.sock.sendall(b"".join(msgpack.packb(["T", seq, trades(seq, 1)])
                                for seq in range(1, n + 1)))
        for seq in range(1, n + 1):
            assert c.recv() == ["ACK", seq, 1]
        c.close()


def test_https_pipelined():
    """Requests pipelined in one TLS write are answered in order, each."""
    with Slotd(TLS_ARGS) as s:
        assert ingest_query(s, "feed", 1) == 3
        raw = socket.create_connection(("127.0.0.1", s.tls_http_port), timeout=30)
        c = client_ctx().wrap_socket(raw, server_hostname="localhost")
        paths = ["/healthz", "/stats", "/symbols/TLS/trades"] * 40
        c.sendall(b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % x.encode() for x in paths))
        got = b""
        while got.count(b"HTTP/1.1 200 OK") < len(paths):
            data = c.recv(1 << 16)
            assert data, "closed after %d answers" % got.count(b"HTTP/1.1 200 OK")
            got += data
        c.close()


def test_sighup_reload():
    shutil.copy(p("server.pem"), p("live.pem"))
    shutil.copy(p("server.key"), p("live.key"))
    with Slotd(TLS_ARGS) as s:
        old = TlsClient(s.tls_port, client_ctx(), "old-conn")
        old.send_batch(1, trades(1))
        assert old.recv() == ["ACK", 1, 3]
        # renewed certificate (another CA, so which one is served shows)
        shutil.copy(p("server2.pem"), p("live.pem"))
        shutil.copy(p("server2.key"), p("live.key"))
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "tls_reloaded" in s.logs(), 10, "reload logged")
        assert ingest_query(s, "new-conn", 1, client_ctx("ca2")) == 6
        assert refused(s, client_ctx("ca"))  # the old certificate is no longer served
        status, _ = https_get(s, "/healthz", client_ctx("ca2"))
        assert status == 200
        # the connection from before the reload goes on with its session
        old.send_batch(2, trades(2))
        assert old.recv() == ["ACK", 2, 3]
        # a broken file: the certificate in use stays
        with open(p("live.pem"), "w") as f:
            f.write("not a certificate\n")
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "tls_reload_failed" in s.logs(), 10, "failed reload logged")
        assert ingest_query(s, "new-conn", 2, client_ctx("ca2")) == 12
        old.close()
        assert s.stop() == 0


def test_flags():
    s = Slotd()
    try:
        assert s.start(["--tls-port", "0"], expect_exit=True) == 2
        assert "need --tls-cert and --tls-key" in s.logs()
        assert s.start(["--tls-cert", p("server.pem"), "--tls-key", p("server.key")],
                       expect_exit=True) == 2
        assert "--tls-port or --tls-http-port" in s.logs()
        # a key that is not the certificate's: start-up fails, naming the flag
        assert s.start(TLS_ARGS[:4] + ["--tls-cert", p("server.pem"), "--tls-key",
                                       p("client.key")], expect_exit=True) == 1
        assert "--tls-key" in s.logs()
    finally:
        shutil.rmtree(s.data_dir, ignore_errors=True)


if __name__ == "__main__":
    r = Results()
    try:
        for t in (test_ingest_query_https, test_plain_client_on_tls_port, test_mutual_tls,
                  test_garbage_and_stalled_handshakes, test_pipelined, test_https_pipelined,
                  test_sighup_reload, test_flags):
            r.run(t)
    finally:
        shutil.rmtree(D, ignore_errors=True)
    r.finish()
