#!/usr/bin/python3
"""subreadcmp — what the benchmark's subscriber reader costs: load/subread (C,
decodes every trade through libslotd-client) against the Python reader it
replaced (load/subreader.py at 8446f3b: recv and drop, no parsing), by CPU
seconds of slotd and of the reader while W1's 5M trades stream in (array
form, journal on), none / one "*" / 100 one-symbol subscribers, runs
interleaved. Needs build-bench (load/bench.sh builds it).

    flock /tmp/bench.lock load/subreadcmp.py [REPEAT]      (default 3)
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
B = "build-bench"
PY_READER = os.path.join(tempfile.gettempdir(), "subreader-8446f3b.py")
with open(PY_READER, "w") as f:
    f.write(subprocess.run(["git", "show", "8446f3b:load/subreader.py"], check=True,
                           capture_output=True, text=True).stdout)
TCK = os.sysconf("SC_CLK_TCK")
CONFIGS = [("none", "-"), ("star", "py"), ("star", "c"), ("100", "py"), ("100", "c")]


def cpu(pid):
    """User + system CPU seconds of a running process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def start_slotd(d):
    s = subprocess.Popen([B + "/server/slotd", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0",
                          "--data-dir", d + "/data", "--port-file", d + "/ports",
                          "--log-level", "warn"], stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            with open(d + "/ports") as f:
                t = f.read()
            if t.endswith("\n"):
                tcp, http = map(int, t.split())
                if urllib.request.urlopen("http://127.0.0.1:%d/readyz" % http).status == 200:
                    return s, tcp, http
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("slotd did not start")


def run(cfg, reader):
    """One run: (trades/s, slotd CPU s, reader CPU s)."""
    d = tempfile.mkdtemp(prefix="subreadcmp.")
    s, tcp, http = start_slotd(d)
    r = None
    if cfg != "none":
        cmd = [B + "/load/subread"] if reader == "c" else ["/usr/bin/python3", PY_READER]
        r = subprocess.Popen(cmd + ["--port", str(tcp), "--spec", cfg], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
        assert r.stdout.readline().strip() == "ready"
    out = subprocess.run([B + "/load/slotload", "--port", str(tcp), "--http-port", str(http),
                          "--workload", "w1", "--trades", "5M", "--form", "array", "--json",
                          "--no-progress"], capture_output=True, text=True, check=True).stdout
    rate = json.loads(out)["trades_per_s"]
    time.sleep(0.5)  # the readers take what is still being pushed
    scpu, rcpu = cpu(s.pid), cpu(r.pid) if r else 0.0
    if r:
        r.send_signal(signal.SIGTERM)
        r.wait()
    s.send_signal(signal.SIGTERM)
    s.wait()
    subprocess.run(["rm", "-rf", d], check=True)
    return rate, scpu, rcpu


def main():
    res = {}
    for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        for cfg, rd in CONFIGS:
            x = run(cfg, rd)
            res.setdefault((cfg, rd), []).append(x)
            print("run %d %-4s %-2s: %9d trades/s  slotd cpu %.2f s  reader cpu %.2f s"
                  % ((i + 1, cfg, rd) + x), flush=True)
    for k in CONFIGS:
        rates, scpu, rcpu = zip(*res[k])
        print("%-4s %-2s median %9d trades/s (%d..%d)  slotd cpu %.2f s  reader cpu %.2f s"
              % (k[0], k[1], statistics.median(rates), min(rates), max(rates),
                 statistics.median(scpu), statistics.median(rcpu)))


main()
