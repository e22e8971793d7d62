"""deploy/grafana/slotd.json (issue #17): the dashboard is checked without
Grafana.

- every PromQL expression in it (panel targets, with the dashboard's
  variables $instance and $__rate_interval substituted as Grafana would)
  passes `promtool check rules` as a recording rule
- every slotd metric it names exists in a live slotd's /metrics (a
  histogram's _bucket series included), so a renamed metric breaks CI,
  not the dashboard
- it covers what operators need: ingest rate, p99 ack latency through
  histogram_quantile, errors by code, memory against the cap, journal and
  checkpoint state; every panel has a unique id and each target a refId
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Results, Slotd  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DASH = ROOT / "deploy" / "grafana" / "slotd.json"
# Grafana's values at query time: a regex for the multi-value variable, a
# range for $__rate_interval.
VARS = {"$__rate_interval": "5m", "$instance": ".*"}


def panels(d):
    for p in d["panels"]:
        yield p
        yield from p.get("panels", [])  # inside collapsed rows


def exprs(d):
    out = []
    for p in panels(d):
        for t in p.get("targets", []):
            out.append((p["title"], t["refId"], t["expr"]))
    return out


def substitute(e):
    for k, v in VARS.items():
        e = e.replace(k, v)
    assert "$" not in e, "a dashboard variable the check does not know: " + e
    return e


def promtool():
    return shutil.which("promtool") or "/usr/bin/promtool"


def test_promql_valid(d):
    es = exprs(d)
    assert len(es) >= 10, es
    rules = "groups:\n  - name: grafana\n    rules:\n"
    for i, (_, _, e) in enumerate(es):
        rules += "      - record: grafana:expr_%d\n        expr: %s\n" % (i, json.dumps(substitute(e)))
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(rules)
    try:
        p = subprocess.run([promtool(), "check", "rules", f.name], capture_output=True, text=True)
        assert p.returncode == 0, p.stdout + p.stderr
        assert "%d rules found" % len(es) in p.stdout, p.stdout
    finally:
        os.unlink(f.name)
    # promtool itself must refuse a broken expression (the check checks)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write("groups:\n  - name: g\n    rules:\n      - record: x:y\n        expr: 'rate(slotd_trades_total[5m]'\n")
    try:
        assert subprocess.run([promtool(), "check", "rules", f.name], capture_output=True).returncode != 0
    finally:
        os.unlink(f.name)


def live_metric_names():
    with Slotd() as s:
        with s.sender("grafana") as snd:  # the histogram gets samples too
            snd.trade("AAPL", 1767225600 * 10 ** 9, "1.5", 1)
        status, _, body = s.http_get("/metrics")
        assert status == 200
    names = set()
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def test_metrics_exist(d):
    live = live_metric_names()
    text = json.dumps(d)
    used = set(re.findall(r"\bslotd_[a-z0-9_]+", text))
    assert len(used) >= 15, used
    # a histogram is named by its base name in descriptions: its _bucket
    missing = sorted(n for n in used if n not in live and n + "_bucket" not in live)
    assert not missing, "metrics the dashboard uses that /metrics lacks: %s" % missing


def test_coverage(d):
    es = [e for _, _, e in exprs(d)]
    joined = "\n".join(es)
    wanted = {
        "ingest rate": r"rate\(slotd_trades_total",
        "p99 ack latency": r"histogram_quantile\(0\.99, .*slotd_ack_latency_seconds_bucket",
        "errors by code": r"by \([^)]*code[^)]*\) \(rate\(slotd_errors_total",
        "memory against the cap": r"slotd_store_bytes_reserved.*\n?.*slotd_store_bytes_cap",
        "journal": r"slotd_journal_(bytes|fsyncs|errors)_total",
        "checkpoints": r"slotd_checkpoint(s_total|_in_progress|_failures_total)",
    }
    for what, rx in wanted.items():
        assert re.search(rx, joined), "no panel for " + what
    ids = [p["id"] for p in panels(d)]
    assert len(ids) == len(set(ids)), ids
    for p in panels(d):
        if p["type"] != "row":
            assert p.get("datasource", {}).get("uid") == "${datasource}", p["title"]
            refs = [t["refId"] for t in p["targets"]]
            assert refs and len(refs) == len(set(refs)), p["title"]
            # every selector follows the instance variable
            for t in p["targets"]:
                for m in re.finditer(r"\bslotd_[a-z0-9_]+(\{[^}]*\})?", t["expr"]):
                    assert m.group(1) and "$instance" in m.group(1), (p["title"], t["expr"])
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 30
    names = {v["name"] for v in d["templating"]["list"]}
    assert {"datasource", "instance"} <= names, names


def main():
    r = Results()
    d = json.loads(DASH.read_text())
    for t in (test_promql_valid, test_metrics_exist, test_coverage):
        r.run(t, d)
    r.finish()


if __name__ == "__main__":
    main()
