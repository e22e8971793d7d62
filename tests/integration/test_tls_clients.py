"""The client libraries over TLS (issue #18): the Python Sender (blocking and
non-blocking) and Client, and the C client (tests/client/client_drive.c),
against --tls-port, with per-client credentials from --auth-file:

  - ingest and query over TLS, every trade stored once and counted
  - mutual TLS: with the client certificate it works; without one the
    client gets TlsError, nothing stored
  - a CA that did not sign slotd's certificate, or an expired one: TlsError
    (SLOTD_ETLS) naming the verification failure, nothing sent
  - a plain client on the TLS port and a TLS client on the plain port: a
    clean error that says which, nothing stored
  - a wrong secret over TLS: Unauthorized; --tls-client-names: another
    name than the certificate's CN: Unauthorized
  - --tls-port/--tls-http-port HOST:PORT: TLS on an address of its own
  - slotload over TLS and slotload/slotctl --token-file (no secret in argv)

Certificates come from test_tls.py's helpers (made by the openssl command).
"""
import os
import selectors
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "proto", "python"))
sys.path.insert(0, HERE)

import slotd  # noqa: E402
import test_tls as T  # noqa: E402  (makes the certificates)
from harness import Results, Slotd  # noqa: E402
from test_client_c import drive, drive_args  # noqa: E402
from test_auth import SECRETS, write_auth  # noqa: E402

TS0 = 1767225600000000000
CA, OTHER = T.p("ca.pem"), T.p("other-ca.pem")
CERT, KEY = T.p("client.pem"), T.p("client.key")


def count(s, sym, **tls):
    with slotd.Client(port=s.tls_port, tls=True, cafile=CA, **tls) as c:
        try:
            return c.symbol(sym)["count"]
        except slotd.NotFound:
            return 0


def send(s, name, sym, n, **opts):
    with slotd.Sender(port=s.tls_port, client=name, tls=True, cafile=CA, batch_size=100,
                      **opts) as snd:
        for i in range(n):
            snd.trade(sym, TS0 + i, "1.25", i + 1, id=i)
        snd.flush()


def expect(exc, fn, *words):
    try:
        fn()
    except exc as e:
        for w in words:
            assert w in str(e), (w, str(e))
        return e
    raise AssertionError("%s not raised" % exc.__name__)


def test_python_ingest_query():
    with Slotd(T.TLS_ARGS) as s:
        send(s, "py-tls", "PYT", 2500)
        assert count(s, "PYT") == 2500
        # non-blocking: driven by a selector on fileno()/events()
        snd = slotd.Sender(port=s.tls_port, client="py-nb", tls=True, cafile=CA,
                           server_hostname="localhost", blocking=False, batch_size=50,
                           linger=0.01)
        sel = selectors.DefaultSelector()
        for i in range(1000):
            snd.trade("PYNB", TS0 + i, "2", 1)
        while snd.pending or snd.stats["open_records"]:
            fd, ev = snd.fileno(), snd.events()
            if fd >= 0 and ev:
                sel.register(fd, ev)
            t = snd.next_timeout()
            sel.select(1.0 if t is None else min(t, 1.0))
            if fd >= 0 and ev:
                sel.unregister(fd)
            snd.process()
        assert snd.stats["batches_acked"] == 20, snd.stats
        snd.close()
        assert count(s, "PYNB") == 1000
        # an SSLContext of the caller's own
        ctx = T.client_ctx()
        with slotd.Client(port=s.tls_port, tls=ctx) as c:
            assert c.symbol("PYT")["count"] == 2500
            # a subscription's pushes go through the same TLS seam as replies
            got = []
            for t in c.subscribe(["PYT"], from_="start"):
                got.append(t["ts"] - TS0)
                if len(got) == 2500:
                    break
            assert got == list(range(2500)), got[:10]
        assert s.metric("tls_failures_total") == 0


def test_python_mutual_tls():
    with Slotd(T.TLS_ARGS + ["--tls-client-ca", CA]) as s:
        send(s, "feed-1", "MTLS", 300, certfile=CERT, keyfile=KEY)
        assert count(s, "MTLS", certfile=CERT, keyfile=KEY) == 300
        before = s.metric("tls_failures_total")
        expect(slotd.TlsError, lambda: count(s, "MTLS"), "TLS with 127.0.0.1:")

        def no_cert():
            send(s, "feed-nocert", "NOCERT", 10, retry_timeout=5)
        expect(slotd.TlsError, no_cert, "TLS with")
        assert s.metric("tls_failures_total") >= before + 2
        assert count(s, "NOCERT", certfile=CERT, keyfile=KEY) == 0


def test_certificate_names_the_client():
    """--tls-client-names: on the TLS port a client may only use the name its
    certificate's CN carries (client.pem: CN feed-1); refused and counted,
    nothing stored; the flag needs --tls-client-ca."""
    with Slotd(T.TLS_ARGS + ["--tls-client-ca", CA, "--tls-client-names"]) as s:
        send(s, "feed-1", "CN1", 5, certfile=CERT, keyfile=KEY)
        before = s.metric("auth_failures_total")

        def other():
            send(s, "feed-2", "CN2", 5, certfile=CERT, keyfile=KEY)
        expect(slotd.Unauthorized, other, "the client certificate does not name this client")
        assert s.metric("auth_failures_total") == before + 1
        assert count(s, "CN1", client="feed-1", certfile=CERT, keyfile=KEY) == 5
        assert count(s, "CN2", client="feed-1", certfile=CERT, keyfile=KEY) == 0
        # the plain port is not bound by certificates
        with slotd.Sender(port=s.tcp_port, client="feed-2") as snd:
            snd.trade("CN3", TS0, "1", 1)
    s = Slotd()
    try:
        assert s.start(T.TLS_ARGS + ["--tls-client-names"], expect_exit=True) == 2
        assert "--tls-client-names needs --tls-client-ca" in s.logs()
    finally:
        shutil.rmtree(s.data_dir, ignore_errors=True)


def test_python_refusals():
    with Slotd(T.TLS_ARGS) as s:
        # a CA that did not sign slotd's certificate
        e = expect(slotd.TlsError, lambda: slotd.Client(port=s.tls_port, tls=True, cafile=OTHER),
                   "certificate verify failed", "cafile")
        assert e.code is None

        def sender_wrong_ca():
            with slotd.Sender(port=s.tls_port, client="wrong-ca", tls=True, cafile=OTHER) as snd:
                snd.trade("WRONGCA", TS0, "1", 1)
        expect(slotd.TlsError, sender_wrong_ca, "certificate verify failed")
        # another host name than the certificate's
        expect(slotd.TlsError, lambda: slotd.Client(port=s.tls_port, tls=True, cafile=CA,
                                                    server_hostname="elsewhere.example"),
               "certificate verify failed")
        # a plain client on the TLS port
        expect(slotd.ProtocolError, lambda: slotd.Client(port=s.tls_port), "tls=True")

        def plain_sender():
            with slotd.Sender(port=s.tls_port, client="plain", retry_timeout=4) as snd:
                snd.trade("PLAIN", TS0, "1", 1)
                snd.flush()
        expect(slotd.Timeout, plain_sender, "tls=True")
        # a TLS client on the plain port
        expect(slotd.TlsError, lambda: slotd.Client(port=s.tcp_port, tls=True, cafile=CA),
               "does this port speak TLS")
        # options that need tls=True
        expect(ValueError, lambda: slotd.Client(port=s.tcp_port, cafile=CA), "tls=True")
        for sym in ("WRONGCA", "PLAIN"):
            assert count(s, sym) == 0
        # the plain listener still works for everyone else
        with slotd.Sender(port=s.tcp_port, client="plain-ok") as snd:
            snd.trade("PLAINOK", TS0, "1", 1)
        assert count(s, "PLAINOK") == 1


def test_expired_server_certificate():
    """A server certificate past its date: both clients refuse it."""
    T.make_cert("server-expired", "localhost", "ca", days="-1")
    args = T.TLS_ARGS[:4] + ["--tls-cert", T.p("server-expired.pem"), "--tls-key",
                             T.p("server-expired.key")]
    with Slotd(args) as s:
        expect(slotd.TlsError, lambda: slotd.Client(port=s.tls_port, tls=True, cafile=CA),
               "certificate has expired")
        r, _ = c_drive(s, "c-expired", n=10, prefix="EXP", syms=1)
        assert r["rc"] == ETLS and "certificate verify failed" in r["err"]["message"], r


def test_python_credentials():
    d = tempfile.mkdtemp(prefix="slotd-tls-auth-")
    try:
        path = os.path.join(d, "auth")
        write_auth(path, ["feed-1", "reader"])
        with Slotd(T.TLS_ARGS + ["--auth-file", path]) as s:
            send(s, "feed-1", "CRED", 50, token=SECRETS["feed-1"])

            def reader_count():
                return count(s, "CRED", client="reader", token=SECRETS["reader"])
            assert reader_count() == 50

            def wrong():
                send(s, "feed-1", "CRED", 5, token="not-the-secret")
            e = expect(slotd.Unauthorized, wrong)
            assert "not-the-secret" not in str(e)
            assert reader_count() == 50
            assert "not-the-secret" not in s.logs()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_tls_on_its_own_host():
    """--tls-port HOST:PORT: e.g. plain on loopback only, TLS elsewhere (here
    127.0.0.2, another loopback address); each listener only where told."""
    import socket
    args = T.TLS_ARGS[4:] + ["--tls-port", "127.0.0.2:0", "--tls-http-port", "127.0.0.2:0"]
    with Slotd(args) as s:
        with slotd.Sender(host="127.0.0.2", port=s.tls_port, client="far", tls=True, cafile=CA,
                          server_hostname="localhost") as snd:
            snd.trade("FAR", TS0, "3", 1)
        with slotd.Client(host="127.0.0.2", port=s.tls_port, tls=True, cafile=CA,
                          server_hostname="localhost") as c:
            assert c.symbol("FAR")["count"] == 1
        for port in (s.tls_port, s.tls_http_port):  # not on --listen's / --http's host
            try:
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
                assert False, "TLS port %d open on 127.0.0.1" % port
            except ConnectionRefusedError:
                pass
        for port in (s.tcp_port, s.http_port):      # and the plain ones not on 127.0.0.2
            try:
                socket.create_connection(("127.0.0.2", port), timeout=5).close()
                assert False, "plain port %d open on 127.0.0.2" % port
            except ConnectionRefusedError:
                pass
        assert "listening_tls tcp=127.0.0.2:" in s.logs()
    s = Slotd()
    try:
        assert s.start(T.TLS_ARGS[4:] + ["--tls-port", "nohost:"], expect_exit=True) == 2
        assert "PORT, HOST:PORT or off" in s.logs()
    finally:
        shutil.rmtree(s.data_dir, ignore_errors=True)


def load_bin(name):
    build = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(
        os.path.dirname(os.environ.get("SLOTD_BIN") or os.path.join(HERE, "..", "..", "build",
                                                                     "server", "slotd")), "..")
    path = os.path.join(build, "load", name)
    return path if os.path.exists(path) else None


def test_slotload_slotctl_tls_token_file():
    """slotload --tls --tls-ca --token-file, and slotctl --token-file: the
    secret comes from a file, never the command line (what ps shows)."""
    sl, ctl = load_bin("slotload"), load_bin("slotctl")
    if not sl or not ctl:
        print("skip: no slotload/slotctl beside slotd")
        return
    secret = "tok-%s" % os.urandom(6).hex()
    d = tempfile.mkdtemp(prefix="slotd-tokfile-")
    try:
        good, bad = os.path.join(d, "good"), os.path.join(d, "bad")
        with open(good, "w") as f:
            f.write(secret + "\n")
        with open(bad, "w") as f:
            f.write("not-it\n")
        with Slotd(T.TLS_ARGS + ["--token", secret]) as s:
            base = [sl, "--port", str(s.tls_port), "--http-port", "0", "--trades", "20k",
                    "--connections", "2", "--batch", "500", "--json", "--no-progress", "--tls",
                    "--tls-ca", CA]
            p = subprocess.run(base + ["--token-file", good], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=120)
            assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
            assert '"trades": 20000' in p.stdout, p.stdout[-500:]
            assert secret not in p.stdout + p.stderr
            p = subprocess.run(base + ["--token-file", bad], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=120)
            assert p.returncode != 0 and "UNAUTHORIZED" in p.stdout + p.stderr, p.stderr[-500:]
            p = subprocess.run(base[:-3] + ["--tls-ca", CA], stdout=subprocess.PIPE,  # no --tls
                               stderr=subprocess.PIPE, text=True, timeout=60)
            assert p.returncode == 2 and "need --tls" in p.stderr, p.stderr
            p = subprocess.run(base + ["--token-file", os.path.join(d, "missing")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
            assert p.returncode == 2 and "missing: No such file" in p.stderr, p.stderr
            ctl_base = [ctl, "--http-port", str(s.http_port)]
            p = subprocess.run(ctl_base + ["--token-file", good, "clients"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=60)
            assert p.returncode == 0 and "slotload-" in p.stdout, (p.returncode, p.stderr)
            p = subprocess.run(ctl_base + ["--token-file", bad, "clients"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=60)
            assert p.returncode == 1 and secret not in p.stderr, (p.returncode, p.stderr)
    finally:
        shutil.rmtree(d, ignore_errors=True)


ETLS = -5013


def c_drive(s, name, port=None, **kw):
    kw.setdefault("tls_ca", CA)
    return drive(port or s.tls_port, name, timeout=300, tls=True, **kw)


def test_c_ingest():
    with Slotd(T.TLS_ARGS) as s:
        r, errors = c_drive(s, "c-tls", n=30000, syms=3, prefix="CT", batch=500)
        assert r["rc"] == 0 and not errors, (r, errors)
        assert r["stats"]["acked_trades"] == 30000, r
        r, errors = c_drive(s, "c-tls-nb", n=20000, syms=2, prefix="CN", batch=300,
                            nonblocking=True, tls_server_name="localhost")
        assert r["rc"] == 0 and not errors, (r, errors)
        assert sum(count(s, "CT%d" % i) for i in range(3)) == 30000
        assert sum(count(s, "CN%d" % i) for i in range(2)) == 20000
        assert s.metric("tls_handshakes_total") >= 4  # 2 senders, 2 queries: all TLS
        assert s.metric("tls_failures_total") == 0


def test_c_refusals():
    with Slotd(T.TLS_ARGS + ["--tls-client-ca", CA]) as s:
        r, _ = c_drive(s, "feed-1", n=1000, prefix="CM", syms=1, tls_cert=CERT, tls_key=KEY)
        assert r["rc"] == 0 and r["stats"]["acked_trades"] == 1000, r
        for kw in ({},                                          # no client certificate
                   {"tls_ca": OTHER, "tls_cert": CERT, "tls_key": KEY},  # untrusted server
                   {"tls_server_name": "elsewhere.example", "tls_cert": CERT, "tls_key": KEY}):
            r, errors = c_drive(s, "feed-x", n=10, prefix="CX", syms=1, **kw)
            assert r["rc"] == ETLS and r["err"]["code"] == ETLS, (kw, r)
            assert "TLS with 127.0.0.1:%d" % s.tls_port in r["err"]["message"], r
            assert errors and errors[-1]["code"] == ETLS, errors
        r, _ = c_drive(s, "feed-x", n=10, prefix="CX", syms=1, tls_ca=OTHER, tls_cert=CERT,
                       tls_key=KEY)
        assert "certificate verify failed" in r["err"]["message"], r
        # TLS to the plain port: refused as TLS, not retried until the budget
        r, _ = c_drive(s, "feed-x", port=s.tcp_port, n=10, prefix="CX", syms=1)
        assert r["rc"] == ETLS, r
        # an unreadable CA file: the sender is not made, the file is named
        p = subprocess.run(drive_args(s.tls_port, "feed-x", tls=True, tls_ca="/nonexistent.pem"),
                           stdout=subprocess.PIPE, text=True, timeout=60)
        assert p.returncode == 2 and '"new_rc": %d' % ETLS in p.stdout, p.stdout
        assert "/nonexistent.pem" in p.stdout, p.stdout
        assert count(s, "CX0", certfile=CERT, keyfile=KEY) == 0
        assert count(s, "CM0", certfile=CERT, keyfile=KEY) == 1000


def test_slotctl_over_tls():
    """slotctl --tls: export over HTTPS equals the plain export; an import
    into a second slotd over its TLS port stores the same trades (compared
    by a second export); the wrong CA and the plain port fail with exit 1
    and say why; --tls-ca without --tls is a usage error."""
    ctl = load_bin("slotctl")
    if not ctl:
        print("skip: no slotctl beside slotd")
        return
    d = tempfile.mkdtemp(prefix="slotd-ctl-tls-")

    def run(*args):
        return subprocess.run([ctl] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=120)
    try:
        with Slotd(T.TLS_ARGS) as a, Slotd(T.TLS_ARGS) as b:
            with slotd.Sender(port=a.tcp_port, client="ctl-src") as snd:
                for i in range(5000):
                    snd.trade("C%d" % (i % 7), TS0 + i, "%d.%02d" % (i, i % 100), 1 + i % 9,
                              "BS"[i % 2], i)
            tls = ["--tls", "--tls-ca", CA]
            plain = run("--http-port", str(a.http_port), "export", "--format", "jsonl")
            assert plain.returncode == 0 and plain.stdout.count(b"\n") == 5000, plain.stderr
            secure = run("--http-port", str(a.tls_http_port), *tls, "export", "--format", "jsonl")
            assert secure.returncode == 0 and secure.stdout == plain.stdout, secure.stderr
            f = os.path.join(d, "all.jsonl")
            with open(f, "wb") as out:
                out.write(plain.stdout)
            p = run("--port", str(b.tls_port), *tls, "import", f)
            assert p.returncode == 0, p.stderr
            again = run("--http-port", str(b.tls_http_port), *tls, "export", "--format", "jsonl")
            assert again.returncode == 0 and again.stdout == plain.stdout, again.stderr[-500:]
            p = run("--http-port", str(a.tls_http_port), "--tls", "--tls-ca", OTHER, "export")
            assert p.returncode == 1 and b"certificate verify failed" in p.stderr, p.stderr
            p = run("--http-port", str(a.http_port), *tls, "export")
            assert p.returncode == 1 and b"TLS" in p.stderr, p.stderr
            p = run("--http-port", str(a.tls_http_port), "--tls-ca", CA, "export")
            assert p.returncode == 2 and b"need --tls" in p.stderr, p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    r = Results()
    try:
        for t in (test_python_ingest_query, test_python_mutual_tls, test_python_refusals,
                  test_python_credentials, test_c_ingest, test_c_refusals,
                  test_tls_on_its_own_host, test_expired_server_certificate,
                  test_slotload_slotctl_tls_token_file, test_certificate_names_the_client,
                  test_slotctl_over_tls):
            r.run(t)
    finally:
        shutil.rmtree(T.D, ignore_errors=True)
    r.finish()
