"""--auth-file: a credential per client (name:salt:sha256hex:perms), checked
on HELLO and on HTTP (Bearer name:secret); perms per request; failures
refused, counted in /metrics, nothing stored; secrets never in the logs,
/stats or error messages; SIGHUP reloads the file; over TLS too.
"""
import hashlib
import json
import os
import signal
import subprocess
import tempfile

from harness import Client, Results, Slotd, wait_for

SECRETS = {"feed-1": "s3cret-feed-1-Xq9", "reader": "r3ader-Pz7w", "feed-2": "f2-secret-K8m",
           "watcher": "w4tcher-Lm3q"}
PERMS = {"feed-1": "ingest,query", "reader": "query", "feed-2": "ingest", "watcher": "subscribe"}


def line(name, secret, perms):
    salt = os.urandom(8).hex()
    return "%s:%s:%s:%s\n" % (name, salt, hashlib.sha256((salt + secret).encode()).hexdigest(),
                              perms)


def write_auth(path, names):
    with open(path, "w") as f:
        f.write("# test credentials\n\n")
        for n in names:
            f.write(line(n, SECRETS[n], PERMS[n]))


def hello(s, name, secret, port=None):
    """The reply to HELLO (WELCOME or ERR) and the raw client."""
    c = Client(port or s.tcp_port, hello=False)
    c.send(["HELLO", {"client": name, "token": secret}])
    return c.recv(), c


def refused(s, name, secret):
    r, c = hello(s, name, secret)
    assert r[0] == "ERR" and r[2] == "UNAUTHORIZED", r
    assert c.closed()
    c.close()
    return r


def bearer(name, secret):
    return {"Authorization": "Bearer %s:%s" % (name, secret)}


def trades(seq):
    return [{"sym": "AUTH", "ts": seq, "px": "2.5", "qty": 1}]


def stored(s):
    status, _, body = s.http_get("/symbols/AUTH/trades", bearer("reader", SECRETS["reader"]))
    return 0 if status == 404 else body.count(b'"ts"')


def test_tcp():
    d = tempfile.mkdtemp(prefix="slotd-auth-")
    path = os.path.join(d, "auth")
    write_auth(path, ["feed-1", "reader"])
    with Slotd(["--auth-file", path]) as s:
        r, c = hello(s, "feed-1", SECRETS["feed-1"])
        assert r[0] == "WELCOME", r
        c.send_batch(1, trades(1))
        assert c.recv() == ["ACK", 1, 1]
        assert c.query(3, {"op": "symbol", "sym": "AUTH"})[2]["count"] == 1
        c.close()
        before = s.metric("auth_failures_total")
        msgs = [refused(s, "feed-1", "wrong")[3],                # wrong secret
                refused(s, "nobody", SECRETS["feed-1"])[3],      # unknown name
                refused(s, "reader", SECRETS["feed-1"])[3]]      # another client's secret
        c = Client(s.tcp_port, hello=False)                      # no secret at all
        c.send(["HELLO", {"client": "feed-1"}])
        assert c.recv()[2] == "UNAUTHORIZED"
        c.close()
        assert len(set(msgs)) == 1, msgs  # which part was wrong is not said
        # reader may query, not ingest: refused, closed, nothing stored
        r, c = hello(s, "reader", SECRETS["reader"])
        assert r[0] == "WELCOME"
        assert c.query(4, {"op": "symbol", "sym": "AUTH"})[2]["count"] == 1
        c.send_batch(1, trades(2))
        r = c.recv()
        assert r[0] == "ERR" and r[2] == "UNAUTHORIZED" and "may not" in r[3], r
        assert c.closed()
        c.close()
        assert stored(s) == 1
        assert s.metric("auth_failures_total") == before + 5
        # the file is re-read on SIGHUP: feed-2 (ingest only) appears
        write_auth(path, ["feed-1", "reader", "feed-2"])
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "clients=3" in s.logs(), 10, "auth file reloaded")
        r, c = hello(s, "feed-2", SECRETS["feed-2"])
        assert r[0] == "WELCOME", r
        c.send_batch(1, trades(3))
        assert c.recv() == ["ACK", 1, 1]
        r = c.query(5, {"op": "symbol", "sym": "AUTH"})
        assert r[0] == "ERR" and r[2] == "UNAUTHORIZED", r
        c.close()
        # a broken file keeps the table in use
        with open(path, "a") as f:
            f.write("not a line\n")
        s.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "auth_reload_failed" in s.logs(), 10, "failed reload logged")
        assert hello(s, "feed-2", SECRETS["feed-2"])[0][0] == "WELCOME"
        assert stored(s) == 2
        _, _, st = s.http_get("/stats", bearer("reader", SECRETS["reader"]))
        logs = s.logs()
        for secret in SECRETS.values():
            assert secret not in logs and secret.encode() not in st
        hashes = [ln.split(":")[2] for ln in open(path) if ln.count(":") == 3]
        assert len(hashes) == 3 and not any(h in logs for h in hashes)


def test_http():
    d = tempfile.mkdtemp(prefix="slotd-auth-")
    path = os.path.join(d, "auth")
    write_auth(path, ["feed-1", "reader", "feed-2"])
    with Slotd(["--auth-file", path]) as s:
        r, c = hello(s, "feed-1", SECRETS["feed-1"])
        c.send_batch(1, trades(1))
        assert c.recv() == ["ACK", 1, 1]
        c.close()
        before = s.metric("auth_failures_total")
        for headers in ({}, bearer("reader", "wrong"), bearer("feed-1", SECRETS["reader"]),
                        {"Authorization": "Bearer " + SECRETS["reader"]}):
            status, _, body = s.http_get("/symbols/AUTH/trades", headers)
            assert status == 401 and b'"ts"' not in body, (headers, status, body)
        # feed-2 may only ingest: a query is 403, a DELETE by reader too
        status, _, body = s.http_get("/symbols/AUTH/trades", bearer("feed-2", SECRETS["feed-2"]))
        assert status == 403 and b'"ts"' not in body, (status, body)
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", s.http_port, timeout=30)
        conn.request("DELETE", "/symbols/AUTH/trades", headers=bearer("reader", SECRETS["reader"]))
        assert conn.getresponse().status == 403
        conn.close()
        assert s.metric("auth_failures_total") == before + 6
        status, _, body = s.http_get("/symbols/AUTH/trades", bearer("reader", SECRETS["reader"]))
        assert status == 200 and body.count(b'"ts"') == 1
        # the probes and /metrics stay open
        assert s.http_get("/healthz")[0] == 200 and s.http_get("/metrics")[0] == 200
        assert "http_auth_failed" in s.logs()
        for secret in SECRETS.values():
            assert secret not in s.logs()


def sse_head(s, name):
    """The status line and the first bytes of GET /subscribe as name (an
    SSE answer streams on: read its head, then close)."""
    import socket
    c = socket.create_connection(("127.0.0.1", s.http_port), timeout=30)
    c.sendall(("GET /subscribe?syms=AUTH&from=start HTTP/1.1\r\nHost: x\r\n"
               "Authorization: Bearer %s:%s\r\n\r\n" % (name, SECRETS[name])).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        got = c.recv(4096)
        if not got:
            break
        data += got
    c.close()
    return data


def test_http_subscribe_perm():
    """GET /subscribe needs the subscribe perm, as SUB does over TCP: a
    client with query alone gets 403 naming it, one with subscribe alone is
    served the event stream."""
    d = tempfile.mkdtemp(prefix="slotd-auth-")
    path = os.path.join(d, "auth")
    write_auth(path, ["feed-1", "reader", "watcher"])
    with Slotd(["--auth-file", path]) as s:
        r, c = hello(s, "feed-1", SECRETS["feed-1"])
        c.send_batch(1, trades(1))
        assert c.recv() == ["ACK", 1, 1]
        c.close()
        head = sse_head(s, "reader")
        assert head.startswith(b"HTTP/1.1 403") and b"may not subscribe" in head + \
            sse_body(s, "reader"), head
        head = sse_head(s, "watcher")
        assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head, head


def sse_body(s, name):
    status, _, body = s.http_get("/subscribe?syms=AUTH&from=start", bearer(name, SECRETS[name]))
    assert status == 403, (status, body)
    return body


def test_flags():
    d = tempfile.mkdtemp(prefix="slotd-auth-")
    path = os.path.join(d, "auth")
    with open(path, "w") as f:
        f.write("feed-1:salt:abc:ingest\n")
    s = Slotd()
    try:
        assert s.start(["--auth-file", path, "--token", "x"], expect_exit=True) == 2
        assert "--auth-file and --token" in s.logs()
        assert s.start(["--auth-file", path], expect_exit=True) == 1
        assert "line 1: the hash must be 64 hex digits" in s.logs()
        assert s.start(["--auth-file", os.path.join(d, "missing")], expect_exit=True) == 1
        assert "auth_load_failed" in s.logs()
    finally:
        import shutil
        shutil.rmtree(s.data_dir, ignore_errors=True)


def test_slotload_with_per_client_names():
    """slotload --client NAME: fixed client names (NAME-0, NAME-1), so an
    --auth-file can list them; a run under names without a line, or with
    another name's secret, is refused UNAUTHORIZED and stores nothing. A
    second run under the same names goes on after their last_seq."""
    here = os.path.dirname(os.path.abspath(__file__))
    build = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(
        os.path.dirname(os.environ.get("SLOTD_BIN") or os.path.join(here, "..", "..", "build",
                                                                     "server", "slotd")), "..")
    sl = os.path.join(build, "load", "slotload")
    if not os.path.exists(sl):
        print("skip: no slotload beside slotd")
        return
    d = tempfile.mkdtemp(prefix="slotd-auth-sl-")
    path, tok, other = (os.path.join(d, n) for n in ("auth", "tok", "other"))
    with open(path, "w") as f:
        for i in range(2):
            f.write(line("bench-%d" % i, "bench-secret", "ingest"))
        f.write(line("reader", SECRETS["reader"], "query"))
    with open(tok, "w") as f:
        f.write("bench-secret\n")
    with open(other, "w") as f:
        f.write(SECRETS["reader"] + "\n")
    with Slotd(["--auth-file", path]) as s:
        def run(*args):
            return subprocess.run([sl, "--port", str(s.tcp_port), "--http-port", "0", "--trades",
                                   "10k", "--connections", "2", "--batch", "500", "--json",
                                   "--no-progress"] + list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, timeout=120)

        def total():
            status, _, body = s.http_get("/stats", bearer("reader", SECRETS["reader"]))
            assert status == 200, body
            return json.loads(body)["trades"]
        for bad in (["--client", "stranger", "--token-file", tok],     # no line for its names
                    ["--client", "bench", "--token-file", other],      # another name's secret
                    ["--token-file", tok]):                          # generated names
            p = run(*bad)
            assert p.returncode != 0 and "UNAUTHORIZED" in p.stdout + p.stderr, (bad, p.stderr)
        assert total() == 0
        for k in (1, 2):
            p = run("--client", "bench", "--token-file", tok)
            assert p.returncode == 0, p.stderr[-2000:]
            assert total() == 10_000 * k
        status, _, body = s.http_get("/clients", bearer("reader", SECRETS["reader"]))
        seqs = {c["name"]: c["last_seq"] for c in json.loads(body)["clients"]}
        assert seqs == {"bench-0": 20, "bench-1": 20}, seqs
        assert "bench-secret" not in s.logs()


if __name__ == "__main__":
    r = Results()
    for t in (test_tcp, test_http, test_http_subscribe_perm, test_flags,
              test_slotload_with_per_client_names):
        r.run(t)
    r.finish()
