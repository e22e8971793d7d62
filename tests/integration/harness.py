"""Integration-test harness: a real slotd on loopback ports, real sockets.

    with Slotd() as s:
        with s.sender("feed-1") as snd:       # the official Python client
            snd.trade("AAPL", 1, "187.25", 10)
        status, headers, body = s.http_get("/stats")
        c = s.connect("feed-1")               # raw protocol: HELLO/WELCOME done
        c.send_batch(2, [{"sym": "AAPL", "ts": 2, "px": "187.5", "qty": 10}])
        assert c.recv() == ["ACK", 2, 1]

Tests send through the official client (Slotd.sender, send_batches) unless
they test the server's reply to a given message: error codes under
pipelining, seq rules, framing, limits, ordering on one connection. Those
use the raw Client, which adds nothing of its own.

Runs under Debian's /usr/bin/python3 (python3-msgpack). Nothing is mocked.
"""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack

# The official Python client (proto/python/): tests that are not about the
# raw protocol send through it (Slotd.sender).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "proto", "python"))

RSS_SCALE = float(os.environ.get("SLOTD_RSS_SCALE") or 1)
SLOTD_BIN = os.environ.get("SLOTD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "server", "slotd")


class Client:
    def __init__(self, port, name=None, token=None, hello=True, timeout=30.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                         max_buffer_size=64 << 20)
        self.welcome = None
        if hello:
            args = {"client": name or "test"}
            if token is not None:
                args["token"] = token
            self.send(["HELLO", args])
            self.welcome = self.recv()
            assert self.welcome[0] == "WELCOME", self.welcome

    def send(self, msg):
        self.sock.sendall(msgpack.packb(msg, use_bin_type=True))

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_batch(self, seq, trades, kind=None):
        msg = ["T", seq, trades] if kind is None else ["T", seq, trades, kind]
        self.send(msg)

    def recv(self):
        """The next reply; raises EOFError if the server closed the connection."""
        while True:
            for obj in self.unpacker:
                return obj
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("connection closed by slotd")
            self.unpacker.feed(data)

    def closed(self, timeout=10.0):
        """True once the server has closed the connection (reading what remains)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(1 << 16)
                if not data:
                    return True
                self.unpacker.feed(data)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def query(self, qid, req):
        self.send(["Q", qid, req])
        return self.recv()

    def close(self):
        self.sock.close()


class Slotd:
    def __init__(self, extra_args=(), data_dir=None, keep_data=False, preexec=None,
                 probe_token=None):
        self.extra_args = list(extra_args)
        # --http-probes-auth: /readyz needs this bearer token (default: --token's)
        self.probe_token = probe_token
        self.preexec = preexec
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="slotd-test-")
        self.keep_data = keep_data
        self.proc = None
        self.log_path = None

    # -- process --------------------------------------------------------
    def start(self, extra_args=None, wait_ready=True, expect_exit=False):
        args = self.extra_args if extra_args is None else list(extra_args)
        port_file = os.path.join(self.data_dir, "ports")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.log_path = tempfile.mktemp(prefix="slotd-log-", suffix=".txt")
        self.log = open(self.log_path, "w")
        cmd = [SLOTD_BIN, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
               "--data-dir", self.data_dir, "--port-file", port_file] + args
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log,
                                     preexec_fn=self.preexec)
        if expect_exit:  # a start that must fail: wait for the exit code
            try:
                rc = self.proc.wait(60)
            finally:
                self.log.close()
            self.proc = None
            return rc
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("slotd exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            if os.path.exists(port_file):
                text = open(port_file).read()
                if text.endswith("\n"):
                    # "TCP HTTP" or, with TLS listeners, "TCP HTTP TLS HTTPS"
                    ports = [int(x) for x in text.split()]
                    self.tcp_port, self.http_port = ports[:2]
                    self.tls_port, self.tls_http_port = (ports[2:] + [None, None])[:2]
                    break
            time.sleep(0.02)
        else:
            raise RuntimeError("slotd did not start:\n" + self.logs())
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                token = self.probe_token
                if token is None and "--token" in self.extra_args:
                    token = self.extra_args[self.extra_args.index("--token") + 1]
                auth = {"Authorization": "Bearer " + token} if token else None
                status, _, _ = self.http_get("/readyz", auth)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("slotd not ready:\n" + self.logs())

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Signal slotd and return its exit code."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise RuntimeError("slotd did not stop within %ss:\n%s" % (timeout, self.logs()))
        finally:
            self.log.close()
        self.proc = None
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self, extra_args=None):
        self.stop()
        return self.start(extra_args)

    def logs(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def rss_bytes(self):
        """Resident bytes of slotd, divided by SLOTD_RSS_SCALE: under
        ThreadSanitizer every byte also costs shadow memory, and
        scripts/test.sh --tsan sets the scale so RSS bounds keep their sense."""
        with open("/proc/%d/statm" % self.proc.pid) as f:
            rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        return int(rss / RSS_SCALE)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.stop()
            else:
                self.log.close()
        if self.own_dir and not self.keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if exc[0] is not None:
            sys.stderr.write("---- slotd log ----\n" + self.logs()[-20000:] + "\n")
        return False

    # -- clients --------------------------------------------------------
    def connect(self, name=None, token=None, hello=True):
        return Client(self.tcp_port, name, token, hello)

    def pause(self):
        """SIGSTOP: slotd keeps its sockets but answers nothing until resume()."""
        self.proc.send_signal(signal.SIGSTOP)
        time.sleep(0.5)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def sender(self, name, **opts):
        """An official slotd.Sender for this server (opts as slotd.Sender's)."""
        import slotd
        return slotd.Sender(port=self.tcp_port, client=name, **opts)

    def http_raw(self, data, timeout=10.0):
        s = socket.create_connection(("127.0.0.1", self.http_port), timeout=timeout)
        out = b""
        try:
            s.sendall(data)
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        finally:
            s.close()
        return out

    def http_get(self, path, headers=None):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        try:
            conn.request("GET", path, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            conn.close()

    def metric(self, name):
        """The value of /metrics' slotd_<name> (a metric without labels)."""
        _, _, body = self.http_get("/metrics")
        for line in body.decode().splitlines():
            if line.startswith("slotd_" + name + " "):
                return float(line.split()[1])
        raise AssertionError("no metric slotd_" + name)

    def http_json(self, path):
        status, _, body = self.http_get(path)
        return status, json.loads(body)


def send_batches(s, client, first, count, gen, window=8, **opts):
    """Batches first..first+count-1 (gen(seq) -> trades, array or map form,
    all of one size) through the official Python sender, one sealed batch
    per seq: it resumes at the name's last_seq + 1, which must be `first`.
    Returns once every batch is acknowledged."""
    size = len(gen(first))
    with s.sender(client, batch_size=size, linger=3600, window=window, **opts) as snd:
        for seq in range(first, first + count):
            b = gen(seq)
            assert len(b) == size, (seq, len(b), size)
            for t in b:
                if isinstance(t, dict):
                    snd.send(t)
                else:
                    snd.trade(*t)
        snd.flush()
        st = snd.stats
    assert st["batches_acked"] == count and st["trades_acked"] == count * size, st
    assert not st["batches_given_up"], st
    c = s.connect(client, opts.get("token"))
    assert c.welcome[1]["last_seq"] == first + count - 1, (c.welcome, first, count)
    c.close()


def random_decimal(rng):
    """A random price or quantity as exact text, 8 decimals: values that
    compact pages cannot narrow much (tests that must fill a store)."""
    return "%d.%08d" % (rng.randrange(10 ** 6), rng.randrange(10 ** 8))


def wait_for(pred, timeout=30, what="condition"):
    """Poll pred() until true; AssertionError after `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def stream_until_dead(s, name, first_seq, acked, batch_of, size, window=8):
    """Pipeline batch_of(seq) (each `size` trades) from first_seq on, `window`
    in flight, appending each acknowledged seq to `acked`, until the
    connection dies (the server was killed)."""
    c = s.connect(name)
    seq, pending = first_seq, []
    try:
        while True:
            while len(pending) < window:
                c.send_batch(seq, batch_of(seq))
                pending.append(seq)
                seq += 1
            r = c.recv()
            assert r == ["ACK", pending[0], size], r
            acked.append(pending.pop(0))
    except (EOFError, ConnectionResetError, BrokenPipeError, OSError):
        return


@contextlib.contextmanager
def small_tmpfs(size="4m"):
    """A fresh tmpfs of `size` mounted for the block; yields its path, or None
    where mounting is not allowed (the caller skips)."""
    mnt = tempfile.mkdtemp(prefix="slotd-tmpfs-")
    if subprocess.call(["mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", mnt]) != 0:
        os.rmdir(mnt)
        print("skip: cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.call(["umount", "-l", mnt])
        os.rmdir(mnt)


@contextlib.contextmanager
def nearly_full_disk():
    """A 4 MiB tmpfs with 3 MiB taken by a filler file: yields (data_dir,
    filler) — unlink the filler and space returns — or None where mounting
    is not allowed (the caller skips)."""
    with small_tmpfs() as mnt:
        if mnt is None:
            yield None
            return
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (3 << 20))
        data = os.path.join(mnt, "data")
        os.mkdir(data)
        yield data, filler


class Results:
    """Minimal runner: each check is a function; prints 'N passed, N failed'."""

    def __init__(self):
        self.passed = self.failed = 0

    def run(self, fn, *args):
        name = fn.__name__
        t0 = time.time()
        try:
            fn(*args)
        except Exception:
            import traceback
            self.failed += 1
            print("FAIL %s (%.1fs)" % (name, time.time() - t0))
            traceback.print_exc()
        else:
            self.passed += 1
            print("ok   %s (%.1fs)" % (name, time.time() - t0))
        sys.stdout.flush()

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)
