"""Flags and the one duration grammar (issue #11), against the real binaries:

- every duration flag, slotload's --duration and the query `interval`
  accept the same forms (90s, 500ms, 5m, 1.5s; a bare number is seconds);
- a bad value names the flag, the value and what is accepted, in one line
  (no usage dump), exit code 2; from a --config file it also names file:line;
- --token and --token-file together are refused;
- a msgpack integer `interval` in a Q query is still ns (the wire's unit).
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOTD_BIN, Results, Slotd  # noqa: E402

SEC = 10 ** 9
TS0 = 1767225600 * SEC  # 2026-01-01


def run_slotd(args):
    """slotd with args that must make it exit at once: (code, stderr)."""
    p = subprocess.run([SLOTD_BIN, "--listen", "127.0.0.1:0", "--http", "off"] + args,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    return p.returncode, p.stderr.decode()


def expect_refused(args, line):
    code, err = run_slotd(args)
    assert code == 2, (args, code, err)
    assert err == line + "\n", (args, err)


def test_duration_flags_accept_the_grammar():
    with Slotd(["--idle-timeout", "5m", "--checkpoint-interval", "500ms", "--hello-timeout",
                "1.5s", "--client-ttl", "36h", "--retention", "1d", "--max-future", "90s"]) as s:
        assert s.http_get("/healthz")[0] == 200


def test_bad_values_name_flag_value_and_forms():
    expect_refused(["--idle-timeout", "5x"],
                   "slotd: --idle-timeout: '5x' is not a duration (e.g. 90s, 500ms, 5m)")
    expect_refused(["--idle-timeout", "8d"],
                   "slotd: --idle-timeout: '8d' is out of range (0 or 1ms to 7d)")
    expect_refused(["--hello-timeout", "1ns"],
                   "slotd: --hello-timeout: '1ns' is out of range (1s to 1h)")
    expect_refused(["--max-batch", "0"],
                   "slotd: --max-batch: '0' is out of range (1 to 10000000)")
    expect_refused(["--max-memory", "12Q"],
                   "slotd: --max-memory: '12Q' is not a size (e.g. 4096, 512K, 16M, 4G)")
    expect_refused(["--fsync", "sometimes"],
                   "slotd: --fsync: 'sometimes' is not one of always|interval|never")
    expect_refused(["--listen", "nowhere"],
                   "slotd: --listen: 'nowhere' is not HOST:PORT (e.g. 127.0.0.1:7400, [::1]:7400)")
    expect_refused(["--no-such-flag"], "slotd: unknown flag '--no-such-flag' (see slotd --help)")
    expect_refused(["--max-batch"], "slotd: --max-batch needs a value")


def test_config_file_errors_name_the_line():
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write("# a comment\nmax-batch 5000  # trailing comment\nidle-timeout 5x\n")
    try:
        expect_refused(["--config", f.name], "slotd: %s:3: --idle-timeout: '5x' is not a "
                       "duration (e.g. 90s, 500ms, 5m)" % f.name)
    finally:
        os.unlink(f.name)


def test_token_and_token_file_together_refused():
    with tempfile.NamedTemporaryFile("w", delete=False) as f:
        f.write("s3cret\n")
    try:
        expect_refused(["--token", "abc", "--token-file", f.name],
                       "slotd: --token and --token-file both given: use one")
    finally:
        os.unlink(f.name)


def test_interval_grammar():
    with Slotd() as s:
        c = s.connect("iv")
        c.send_batch(1, [{"sym": "IV", "ts": TS0 + i * SEC // 2, "px": "1", "qty": 1}
                         for i in range(20)])
        assert c.recv()[0] == "ACK"
        rng = "&from=%d&to=%d" % (TS0, TS0 + 10 * SEC)
        for text, ns in (("1.5s", 1500 * 10 ** 6), ("2", 2 * SEC), ("500ms", SEC // 2),
                         ("0.25m", 15 * SEC)):
            status, doc = s.http_json("/symbols/IV/bars?interval=%s%s" % (text, rng))
            assert status == 200 and doc["interval"] == ns, (text, status, doc)
        status, doc = s.http_json("/symbols/IV/bars?interval=1.5ns")
        assert status == 400 and "interval" in doc["message"], doc
        # On the TCP wire an integer interval is ns, as every integer time is.
        r = c.query(1, {"op": "bars", "sym": "IV", "interval": 2 * SEC, "from": TS0,
                        "to": TS0 + 10 * SEC})
        assert r[0] == "R" and r[2]["interval"] == 2 * SEC and len(r[2]["bars"]) == 5, r
        r = c.query(2, {"op": "bars", "sym": "IV", "interval": "2", "from": TS0,
                        "to": TS0 + 10 * SEC})
        assert r[0] == "R" and r[2]["interval"] == 2 * SEC, r


def slotload_bin():
    build = os.environ.get("SLOTD_BUILD_DIR") or os.path.join(os.path.dirname(SLOTD_BIN), "..")
    return os.path.join(build, "load", "slotload")


def test_slotload_duration():
    sl = slotload_bin()
    if not os.path.exists(sl):
        print("skip: no slotload at %s" % sl)
        return
    p = subprocess.run([sl, "--duration", "5x"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    assert p.returncode == 2, p
    assert p.stderr.decode() == \
        "slotload: --duration: '5x' is not a duration (e.g. 90s, 500ms, 5m)\n", p.stderr
    with Slotd() as s:
        p = subprocess.run([sl, "--port", str(s.tcp_port), "--http-port", "0", "--duration",
                            "300ms", "--connections", "1", "--inflight", "1", "--batch", "100",
                            "--rate", "2000", "--no-progress"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        assert p.returncode == 0, (p.returncode, p.stderr.decode()[-2000:])


if __name__ == "__main__":
    res = Results()
    res.run(test_duration_flags_accept_the_grammar)
    res.run(test_bad_values_name_flag_value_and_forms)
    res.run(test_config_file_errors_name_the_line)
    res.run(test_token_and_token_file_together_refused)
    res.run(test_interval_grammar)
    res.run(test_slotload_duration)
    res.finish()
