#!/usr/bin/python3
"""Checks of deploy/: the systemd unit, the Containerfile, the Kubernetes
manifests and the Prometheus configuration and alert rules.

Run by CTest with Debian's python3 (env SLOTD_BIN = the built slotd), or by
hand from anywhere: /usr/bin/python3 tests/integration/test_deploy.py

Needs the Debian packages prometheus (promtool, prometheus), systemd
(systemd-analyze) and python3-yaml. Prints one line per check and ends with
'N passed, N failed[, N skipped]'; exits non-zero if any check failed.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
K8S = DEPLOY / "k8s"
UNIT = DEPLOY / "slotd.service"
CONTAINERFILE = DEPLOY / "Containerfile"

# The metric names slotd exports (DESIGN.md section 6 and the server's
# metrics contract). Alert rules may use only these (and a histogram's
# _bucket/_sum/_count series).
METRICS = {
    "slotd_trades_total", "slotd_batches_total", "slotd_errors_total",
    "slotd_store_bytes_reserved", "slotd_store_bytes_cap",
    "slotd_journal_errors_total", "slotd_ready", "slotd_replay_in_progress",
    "slotd_replay_seconds", "slotd_connections", "slotd_ack_latency_seconds",
    "slotd_build_info",
}
HISTOGRAMS = {"slotd_ack_latency_seconds"}
ERROR_CODES = {
    "MALFORMED", "BAD_MESSAGE", "NOT_HELLO", "UNAUTHORIZED", "UNKNOWN_FIELD",
    "MISSING_FIELD", "WRONG_TYPE", "BAD_VALUE", "BAD_SYMBOL", "UNKNOWN_KIND",
    "KIND_MISMATCH", "TOO_LARGE", "SYMBOL_LIMIT", "STORE_FULL", "JOURNAL",
    "NOT_READY", "BAD_QUERY", "NOT_FOUND", "IDLE_TIMEOUT", "TOO_MANY_CONNECTIONS",
    "BLOCKED", "FENCED", "TOO_MANY_CLIENTS", "READ_ONLY", "BAD_SUB", "CURSOR_GONE",
    "SLOW_SUBSCRIBER",
}
# Packages of debian:bookworm-slim itself, which the runtime stage need not install.
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libzstd1",
                       "liblzma5", "libcrypt1", "libselinux1", "libpcre2-8-0"}
DATA_DIR = "/var/lib/slotd"
INGEST_PORT, HTTP_PORT = 7400, 7401

# --------------------------------------------------------------- harness ---

passed, failed, skipped = [], [], []


class Skip(Exception):
    pass


class Fail(Exception):
    pass


def check(name):
    def run(fn):
        try:
            detail = fn()
        except Skip as e:
            skipped.append(name)
            print(f"SKIP {name}: {e}", flush=True)
        except Fail as e:
            failed.append(name)
            print(f"FAIL {name}: {e}", flush=True)
        except Exception as e:  # a bug here or a broken file: a failure, with the trace
            failed.append(name)
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=3)
        else:
            passed.append(name)
            print(f"PASS {name}" + (f": {detail}" if detail else ""), flush=True)
        return fn
    return run


def need(cond, msg):
    if not cond:
        raise Fail(msg)


def tool(name, package):
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
    if not path:
        raise Fail(f"{name} not found: install the Debian package '{package}' (scripts/deps.sh test does)")
    return path


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def output(p):
    return (p.stdout + p.stderr).strip()


def indent(text, n=4):
    return "\n".join(" " * n + ln for ln in text.splitlines())


def yaml_module():
    try:
        import yaml  # Debian: python3-yaml
    except ImportError:
        raise Fail("python3 has no 'yaml' module: install the Debian package 'python3-yaml'")
    return yaml


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def bytes_of(q):
    """'4Gi', '4G', '3584M', '3840M', '4096' -> bytes. Binary multiples for
    both Kubernetes' Ki/Mi/Gi and systemd's and slotd's K/M/G."""
    m = re.fullmatch(r"(\d+)([KMGT]i?)?", str(q).strip())
    if not m:
        raise Fail(f"cannot read the size {q!r}")
    mult = {None: 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    return int(m.group(1)) * mult[(m.group(2) or "").rstrip("i") or None]


def flag_values(argv):
    """['--a', 'x', '--b=y', '--c'] -> {'--a': 'x', '--b': 'y', '--c': None}"""
    out, i = {}, 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("--"):
            if "=" in a:
                k, v = a.split("=", 1)
                out[k] = v
            elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                out[a] = argv[i + 1]
                i += 1
            else:
                out[a] = None
        i += 1
    return out


def slotd_bin():
    env = os.environ.get("SLOTD_BIN")
    if env:
        return Path(env)
    for d in ("build", "build-asan"):
        p = ROOT / d / "server" / "slotd"
        if p.exists():
            return p
    return None


# ------------------------------------------------------------ the files ---

def read_unit():
    """The unit as {section: [(key, value), ...]}, continuation lines joined."""
    sections, cur, buf = {}, None, ""
    for raw in UNIT.read_text().splitlines():
        line = buf + raw
        if line.rstrip().endswith("\\"):
            buf = line.rstrip()[:-1] + " "
            continue
        buf = ""
        s = line.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            cur = s[1:-1]
            sections.setdefault(cur, [])
            continue
        k, _, v = s.partition("=")
        sections[cur].append((k.strip(), v.strip()))
    return sections


def unit_get(sections, section, key):
    vals = [v for k, v in sections.get(section, []) if k == key]
    return vals[-1] if vals else None


def unit_exec_argv():
    argv = shlex.split(unit_get(read_unit(), "Service", "ExecStart"))
    return [a for a in argv if a != "$SLOTD_OPTS"]


def read_containerfile():
    """Instructions as (stage index, INSTRUCTION, argument text), continuation lines joined."""
    out, stage, buf = [], -1, ""
    for raw in CONTAINERFILE.read_text().splitlines():
        if not buf and raw.lstrip().startswith("#"):
            continue
        if raw.lstrip().startswith("#"):  # comment inside a continued instruction
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        line = (buf + raw).strip()
        buf = ""
        if not line:
            continue
        instr, _, arg = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stage += 1
        out.append((stage, instr, arg.strip()))
    return out


def exec_form(arg):
    arg = arg.strip()
    if not arg.startswith("["):
        raise Fail(f"expected the exec (JSON array) form, got: {arg}")
    return json.loads(arg)


def apt_packages(run_arg):
    m = re.search(r"apt-get install ([^&;|]*)", run_arg)
    return [w for w in (m.group(1).split() if m else []) if not w.startswith("-")]


def k8s_docs():
    yaml = yaml_module()
    docs = {}
    for f in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                docs[(d["kind"], d["metadata"]["name"])] = d
    return docs


def statefulset():
    sts = [d for (k, _), d in k8s_docs().items() if k == "StatefulSet"]
    need(len(sts) == 1, f"expected one StatefulSet in deploy/k8s, found {len(sts)}")
    return sts[0]


def slotd_container(sts):
    cs = sts["spec"]["template"]["spec"]["containers"]
    c = [c for c in cs if c["name"] == "slotd"]
    need(c, "no container named slotd in the StatefulSet")
    return c[0]


# --------------------------------------------------------- prometheus -----

@check("promtool check config deploy/prometheus/prometheus.yml")
def _():
    promtool = tool("promtool", "prometheus")
    p = run([promtool, "check", "config", str(PROM / "prometheus.yml")])
    need(p.returncode == 0, "promtool rejected it:\n" + indent(output(p)))
    return " / ".join(ln.strip() for ln in output(p).splitlines() if "SUCCESS" in ln)


@check("promtool check rules deploy/prometheus/rules.yml")
def _():
    promtool = tool("promtool", "prometheus")
    p = run([promtool, "check", "rules", str(PROM / "rules.yml")])
    need(p.returncode == 0, "promtool rejected it:\n" + indent(output(p)))
    return " / ".join(ln.strip() for ln in output(p).splitlines() if "SUCCESS" in ln)


@check("promtool test rules deploy/prometheus/rules_test.yml (each alert fires on its case, not on the others)")
def _():
    promtool = tool("promtool", "prometheus")
    p = run([promtool, "test", "rules", str(PROM / "rules_test.yml")])
    need(p.returncode == 0, "rule unit tests failed:\n" + indent(output(p)))
    yaml = yaml_module()
    tests = yaml.safe_load((PROM / "rules_test.yml").read_text())["tests"]
    rules = yaml.safe_load((PROM / "rules.yml").read_text())["groups"]
    alerts = {r["alert"] for g in rules for r in g["rules"] if "alert" in r}
    tested = {t["alertname"] for tc in tests for t in tc.get("alert_rule_test", []) if t.get("exp_alerts")}
    need(alerts <= tested, f"alerts with no firing test case: {sorted(alerts - tested)}")
    return f"{len(tests)} test groups, all {len(alerts)} alerts seen firing"


@check("rules.yml: required alerts, for/severity/summary/description, only slotd metric names")
def _():
    yaml = yaml_module()
    groups = yaml.safe_load((PROM / "rules.yml").read_text())["groups"]
    rules = [r for g in groups for r in g["rules"] if "alert" in r]
    problems = []
    for r in rules:
        a = r["alert"]
        if "for" not in r:
            problems.append(f"{a}: no for:")
        if r.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            problems.append(f"{a}: severity label not critical/warning/info")
        ann = r.get("annotations", {})
        for k in ("summary", "description"):
            if not ann.get(k):
                problems.append(f"{a}: no {k} annotation")
        for name in re.findall(r"\bslotd_[a-z0-9_]+", r["expr"]):
            base = re.sub(r"_(bucket|sum|count)$", "", name) if name.endswith(("_bucket", "_sum", "_count")) else name
            if name not in METRICS and not (base in HISTOGRAMS and base != name):
                problems.append(f"{a}: unknown metric {name}")
        for code in re.findall(r'code\s*[!=]~?\s*"([^"]*)"', r["expr"]):
            for c in code.split("|"):
                if c not in ERROR_CODES:
                    problems.append(f"{a}: unknown error code {c}")
    exprs = {r["alert"]: r["expr"] for r in rules}
    wanted = {
        "ingest stalled": lambda e: "rate(slotd_trades_total" in e and "slotd_connections" in e,
        "error rate": lambda e: "slotd_errors_total" in e and "slotd_batches_total" in e,
        "memory near cap": lambda e: "slotd_store_bytes_reserved" in e and "slotd_store_bytes_cap" in e and "0.9" in e,
        "journal failing": lambda e: "increase(slotd_journal_errors_total" in e,
        "replay slow": lambda e: "slotd_replay_in_progress" in e or "slotd_replay_seconds" in e,
        "not ready": lambda e: re.search(r"slotd_ready\s*==\s*0", e) is not None,
    }
    for what, ok in wanted.items():
        if not any(ok(e) for e in exprs.values()):
            problems.append(f"no alert for {what}")
    need(not problems, "; ".join(problems))
    return f"{len(rules)} alerts: {', '.join(sorted(exprs))}"


def k8s_prometheus_copy(tmp, pods_file):
    """prometheus-k8s.yml with its kubernetes_sd_configs swapped for a file_sd
    of fake pods (Debian's Prometheus has no Kubernetes SD), plus rules.yml."""
    yaml = yaml_module()
    cfg = yaml.safe_load((PROM / "prometheus-k8s.yml").read_text())
    jobs = [j for j in cfg["scrape_configs"] if "kubernetes_sd_configs" in j]
    need(jobs, "prometheus-k8s.yml has no job with kubernetes_sd_configs")
    for j in jobs:
        need([s.get("role") for s in j["kubernetes_sd_configs"]] == ["pod"],
             f"job {j['job_name']}: expected kubernetes_sd_configs with role: pod")
        del j["kubernetes_sd_configs"]
        j["file_sd_configs"] = [{"files": [str(pods_file)], "refresh_interval": "1s"}]
    cfg.pop("alerting", None)
    shutil.copy(PROM / "rules.yml", tmp / "rules.yml")
    out = tmp / "prometheus-k8s.yml"
    out.write_text(yaml.safe_dump(cfg))
    return out, [j["job_name"] for j in jobs]


@check("promtool check config deploy/prometheus/prometheus-k8s.yml (pod SD swapped for file SD: relabel rules + rules.yml)")
def _():
    promtool = tool("promtool", "prometheus")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "pods.json").write_text("[]")
        cfg, jobs = k8s_prometheus_copy(tmp, tmp / "pods.json")
        p = run([promtool, "check", "config", str(cfg)])
        need(p.returncode == 0, "promtool rejected it:\n" + indent(output(p)))
    return f"jobs {jobs} valid; kubernetes_sd_configs itself is not checkable with Debian's promtool"


@check("prometheus-k8s.yml relabeling: annotated running slotd pod scraped at podIP:7401/metrics, others dropped")
def _():
    prometheus = tool("prometheus", "prometheus")
    sts = statefulset()
    tmpl = sts["spec"]["template"]["metadata"]
    ann = {re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in tmpl.get("annotations", {}).items()}
    labels = {re.sub(r"[^a-zA-Z0-9_]", "_", k): v for k, v in tmpl["labels"].items()}
    ports = [p["containerPort"] for p in slotd_container(sts)["ports"]]

    def pod(name, ip, port, phase="Running", ann=None, labels=None):
        lab = {"__meta_kubernetes_namespace": "ingest", "__meta_kubernetes_pod_name": name,
               "__meta_kubernetes_pod_phase": phase, "__meta_kubernetes_pod_ip": ip,
               "__meta_kubernetes_pod_container_port_number": str(port)}
        for k, v in (ann or {}).items():
            lab["__meta_kubernetes_pod_annotation_" + k] = v
            lab["__meta_kubernetes_pod_annotationpresent_" + k] = "true"
        for k, v in (labels or {}).items():
            lab["__meta_kubernetes_pod_label_" + k] = v
        return {"targets": [f"{ip}:{port}"], "labels": lab}

    # Pod SD makes one target per declared container port.
    pods = [pod("slotd-0", "10.1.2.3", p, ann=ann, labels=labels) for p in ports]
    pods += [pod("slotd-1", "10.1.2.4", p, phase="Pending", ann=ann, labels=labels) for p in ports]
    pods += [pod("web-0", "10.1.2.5", 8080, labels={"app": "web"})]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "pods.json").write_text(json.dumps(pods))
        cfg, jobs = k8s_prometheus_copy(tmp, tmp / "pods.json")
        port = free_port()
        log = open(tmp / "prometheus.log", "w")
        proc = subprocess.Popen([prometheus, f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline, data = time.time() + 30, None
            while time.time() < deadline:
                time.sleep(0.5)
                if proc.poll() is not None:
                    raise Fail("prometheus exited:\n" + indent((tmp / "prometheus.log").read_text()[-2000:]))
                try:
                    code, body = http_get(f"http://127.0.0.1:{port}/api/v1/targets?state=any")
                except OSError:
                    continue
                data = json.loads(body)["data"] if code == 200 else None
                if data and len(data["activeTargets"]) + len(data["droppedTargets"]) >= len(pods) - len(ports) + 1:
                    break
            need(data, "prometheus never listed its targets")
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    active = data["activeTargets"]
    urls = sorted(t["scrapeUrl"] for t in active)
    want = f"http://10.1.2.3:{HTTP_PORT}/metrics"
    need(urls == [want], f"active targets {urls}, want exactly [{want}]")
    lab = active[0]["labels"]
    for k, v in {"namespace": "ingest", "pod": "slotd-0", "app_kubernetes_io_name": "slotd"}.items():
        need(lab.get(k) == v, f"target label {k}={lab.get(k)!r}, want {v!r} (SlotdDown matches on it)")
    return f"active {urls} with {sorted(lab)}; {len(data['droppedTargets'])} dropped (pending pod, unannotated pod)"


# ------------------------------------------------------------ systemd -----

@check("systemd-analyze verify deploy/slotd.service (ExecStart -> SLOTD_BIN)")
def _():
    sa = tool("systemd-analyze", "systemd")
    binary = slotd_bin()
    note = ""
    if not binary or not binary.exists():
        binary, note = Path("/bin/true"), " (no built slotd found: ExecStart pointed at /bin/true)"
    text = UNIT.read_text()
    need("ExecStart=/usr/local/bin/slotd " in text, "ExecStart does not start /usr/local/bin/slotd")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        unit = Path(d) / "slotd.service"
        unit.write_text(text.replace("ExecStart=/usr/local/bin/slotd ", f"ExecStart={binary} "))
        # No running systemd is needed: verify loads the unit into a private
        # manager. --recursive-errors=no: judge this unit, not the host's others.
        env = dict(os.environ, SYSTEMD_LOG_LEVEL="info", SYSTEMD_LOG_COLOR="0")
        p = run([sa, "verify", "--man=no", "--recursive-errors=no", str(unit)], env=env)
        lines = [ln for ln in output(p).splitlines() if ln.strip()]
        # Parse problems (unknown key, bad value, "ignoring") are warnings
        # with exit code 0: anything naming the unit file counts as an error.
        mine = [ln for ln in lines if "slotd.service" in ln]
        other = [ln for ln in lines if ln not in mine]
        need(p.returncode == 0 and not mine,
             f"exit {p.returncode}:\n" + indent("\n".join(mine or lines)))
    return "clean" + note + (f"; environment-only messages ignored: {other}" if other else "")


@check("systemd-analyze security --offline: exposure <= 2.0")
def _():
    sa = tool("systemd-analyze", "systemd")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        unit = Path(d) / "slotd.service"
        unit.write_text(UNIT.read_text().replace("ExecStart=/usr/local/bin/slotd ", "ExecStart=/bin/true "))
        p = run([sa, "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit)],
                env=dict(os.environ, SYSTEMD_COLORS="0"))
        level = re.search(r"Overall exposure level for \S+: ([\d.]+ \S+)", output(p))
        need(p.returncode == 0, f"exposure above 2.0 ({level.group(1) if level else '?'}):\n"
             + indent("\n".join(ln for ln in output(p).splitlines() if ln.startswith("✗"))))
    return f"overall exposure {level.group(1) if level else '?'}"


@check("slotd.service: sandboxing, state directory, stop and memory settings")
def _():
    u = read_unit()
    want = {
        "Type": "simple", "DynamicUser": "yes", "StateDirectory": "slotd", "ProtectSystem": "strict",
        "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
        "MemoryDenyWriteExecute": "yes", "LimitNOFILE": "65536", "Restart": "on-failure",
        "KillSignal": "SIGTERM",
    }
    bad = [f"{k}={unit_get(u, 'Service', k)!r} (want {v!r})" for k, v in want.items()
           if unit_get(u, "Service", k) != v]
    filters = [v for k, v in u["Service"] if k == "SystemCallFilter"]
    if "@system-service" not in filters:
        bad.append("no SystemCallFilter=@system-service")
    for k in ("TimeoutStopSec", "MemoryMax"):
        if not unit_get(u, "Service", k):
            bad.append(f"no {k}=")
    argv = unit_exec_argv()
    flags = flag_values(argv[1:])
    if flags.get("--data-dir") != "${STATE_DIRECTORY}":
        bad.append(f"--data-dir is {flags.get('--data-dir')!r}, want ${{STATE_DIRECTORY}}")
    if unit_get(u, "Install", "WantedBy") != "multi-user.target":
        bad.append("not WantedBy=multi-user.target")
    need(not bad, "; ".join(bad))
    cap, mmax = bytes_of(flags["--max-memory"]), bytes_of(unit_get(u, "Service", "MemoryMax"))
    need(mmax >= cap + (256 << 20),
         f"MemoryMax={mmax >> 20} MiB leaves under 256 MiB above --max-memory {cap >> 20} MiB")
    return f"--max-memory {cap >> 20} MiB, MemoryMax {mmax >> 20} MiB, {len(want) + 3} settings as required"


# --------------------------------------------------------- Containerfile ----

@check("Containerfile: build + runtime stages on debian:bookworm-slim, non-root, volume, ports, healthcheck, entrypoint")
def _():
    ins = read_containerfile()
    froms = [a.split() for s, i, a in ins if i == "FROM"]
    need(len(froms) == 2, f"expected 2 stages, found {len(froms)}")
    need(all(f[0] == "debian:bookworm-slim" for f in froms), f"base images {[f[0] for f in froms]}")
    names = [f[2] if len(f) == 3 and f[1].upper() == "AS" else None for f in froms]
    need(names[0] == "build" and names[1], f"stage names {names}, want build then a runtime stage")
    rt = [(i, a) for s, i, a in ins if s == 1]
    build = [(i, a) for s, i, a in ins if s == 0]
    need(any(i == "RUN" and "cmake --build" in a for i, a in build), "the build stage runs no cmake --build")
    need(any(i == "COPY" and a.startswith("--from=build ") and a.split()[-1] == "/usr/local/bin/slotd" for i, a in rt),
         "the runtime stage does not COPY --from=build the binary to /usr/local/bin/slotd")
    need(not any(i == "RUN" and re.search(r"\b(cmake|make|gcc|cc)\b", a) for i, a in rt), "the runtime stage compiles")
    rt_pkgs = [p for i, a in rt if i == "RUN" for p in apt_packages(a)]
    need(set(rt_pkgs) == {"libuv1", "libmsgpackc2", "libhttp-parser2.9", "libjansson4", "librdkafka1", "libssl3"},
         f"runtime packages {rt_pkgs}")
    users = [a for i, a in rt if i == "USER"]
    need(users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0",
         f"runtime USER {users[-1] if users else None!r}: want a numeric non-root uid")
    vols = [a for i, a in rt if i == "VOLUME"]
    need(vols and DATA_DIR in vols[-1], f"VOLUME {vols}")
    expose = [int(p.split("/")[0]) for i, a in rt if i == "EXPOSE" for p in a.split()]
    need(sorted(expose) == [INGEST_PORT, HTTP_PORT], f"EXPOSE {expose}")
    hc = [a for i, a in rt if i == "HEALTHCHECK"]
    need(hc and "CMD" in hc[-1], "no HEALTHCHECK CMD")
    ep = [exec_form(a) for i, a in rt if i == "ENTRYPOINT"]
    need(ep, "no ENTRYPOINT")
    flags = flag_values(ep[-1][1:])
    need(ep[-1][0] == "/usr/local/bin/slotd", f"ENTRYPOINT runs {ep[-1][0]}")
    want = {"--listen": f"0.0.0.0:{INGEST_PORT}", "--http": f"0.0.0.0:{HTTP_PORT}", "--data-dir": DATA_DIR}
    need(all(flags.get(k) == v for k, v in want.items()), f"ENTRYPOINT flags {flags}, want {want}")
    return f"stages {names}, USER {users[-1]}, runtime packages {rt_pkgs}"


@check("Containerfile build stage: every package of scripts/deps.sh, every CMake subdirectory copied")
def _():
    ins = read_containerfile()
    build_pkgs = {p for s, i, a in ins if s == 0 and i == "RUN" for p in apt_packages(a)}
    m = re.search(r"^pkgs=\(([^)]*)\)", (ROOT / "scripts" / "deps.sh").read_text(), re.M)
    need(m, "cannot find pkgs=(...) in scripts/deps.sh")
    deps = set(m.group(1).split())
    need(deps <= build_pkgs, f"build stage lacks {sorted(deps - build_pkgs)} (in scripts/deps.sh)")
    subdirs = re.findall(r"^\s*add_subdirectory\((\w+)\)", (ROOT / "CMakeLists.txt").read_text(), re.M)
    copied = {Path(a.split()[0]).name for s, i, a in ins if s == 0 and i == "COPY" and not a.startswith("--")}
    need("CMakeLists.txt" in copied, "the build stage does not copy CMakeLists.txt")
    need(set(subdirs) <= copied, f"the build stage does not copy {sorted(set(subdirs) - copied)}")
    return f"{len(deps)} packages, subdirectories {subdirs}"


@check("Containerfile build stage: the COPY'd sources alone configure with cmake (as the image's RUN does)")
def _():
    cmake = tool("cmake", "cmake")
    ins = read_containerfile()
    workdir = "/"
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        copies = []
        for s, i, a in ins:
            if s != 0:
                continue
            if i == "WORKDIR":
                workdir = a
            elif i == "COPY" and not a.startswith("--"):
                *srcs, dest = a.split()
                for src in srcs:
                    target = root / (Path(workdir) / dest).relative_to("/")
                    if dest.endswith("/"):
                        target = target / Path(src).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    (shutil.copytree if (ROOT / src).is_dir() else shutil.copy)(ROOT / src, target)
                    copies.append(src)
        runs = [a for s, i, a in ins if s == 0 and i == "RUN" and "cmake -S" in a]
        need(runs, "no RUN cmake -S in the build stage")
        m = re.search(r"cmake -S (\S+) -B (\S+)((?: -D\S+)*)", runs[0])
        src, build = root / Path(m.group(1)).relative_to("/"), root / Path(m.group(2)).relative_to("/")
        p = run([cmake, "-S", str(src), "-B", str(build), *m.group(3).split()], timeout=300)
        need(p.returncode == 0, "cmake configure of the copied sources failed:\n" + indent(output(p)[-3000:]))
        need((build / "server").is_dir(), "configured, but no server/ build directory")
    return f"copied {copies}, configured"


@check("Containerfile runtime packages: exist in Debian and provide every library slotd links")
def _():
    ins = read_containerfile()
    rt_pkgs = {p for s, i, a in ins if s == 1 and i == "RUN" for p in apt_packages(a)}
    # Installed here as dependencies of the -dev packages; else ask apt-cache.
    p = run(["dpkg-query", "-W", "-f", "${Package} ${Status}\\n", *sorted(rt_pkgs)])
    found = {ln.split()[0] for ln in p.stdout.splitlines() if ln.endswith("install ok installed")}
    if rt_pkgs - found and shutil.which("apt-cache"):
        p = run(["apt-cache", "show", "--no-all-versions", *sorted(rt_pkgs - found)])
        found |= set(re.findall(r"^Package: (\S+)", p.stdout, re.M))
    need(rt_pkgs <= found, f"neither dpkg nor apt-cache knows {sorted(rt_pkgs - found)}")
    binary = slotd_bin()
    if not binary or not binary.exists():
        raise Skip("no built slotd (SLOTD_BIN) to run ldd on")
    p = run(["ldd", str(binary)])
    if "not a dynamic executable" in output(p):
        return f"{binary} is statically linked"
    need(p.returncode == 0, output(p))
    libs = re.findall(r"=>\s*(/\S+)", p.stdout)
    if any(re.search(r"lib(asan|ubsan|tsan)", lib) for lib in libs):
        raise Skip(f"{binary} is a sanitizer build; its libraries are not the runtime image's")
    owners = {}
    for lib in libs:
        q = run(["dpkg", "-S", os.path.realpath(lib)])
        if q.returncode != 0:
            q = run(["dpkg", "-S", lib])
        need(q.returncode == 0, f"no Debian package owns {lib}")
        owners[Path(lib).name] = q.stdout.split(":")[0].strip()
    # apt installs a runtime package's own dependencies with it (librdkafka1
    # brings libssl3, libsasl2-2, liblz4-1): one level of Depends counts.
    deps = set()
    q = run(["dpkg-query", "-W", "-f", "${Depends}\\n", *sorted(rt_pkgs & found)])
    for alt in re.split(r"[,|\n]", q.stdout):
        if alt.strip():
            deps.add(alt.strip().split()[0].split(":")[0])
    missing = {lib: pkg for lib, pkg in owners.items()
               if pkg not in rt_pkgs | deps | BASE_IMAGE_PACKAGES}
    need(not missing, f"libraries from packages the runtime stage does not install: {missing}")
    return f"{', '.join(f'{k} ({v})' for k, v in sorted(owners.items()))}"


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self):
        code = self.server.status if self.path == "/healthz" else 404
        body = b'{"ok":true}' if code == 200 else b'{"ok":false}'
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def healthcheck_argv(port):
    hc = [a for s, i, a in read_containerfile() if s == 1 and i == "HEALTHCHECK"][-1]
    opts, _, cmd = hc.partition("CMD")
    argv = exec_form(cmd)
    need(f"/{HTTP_PORT}" in argv[-1] and "/healthz" in argv[-1], "the healthcheck does not ask :7401/healthz")
    return argv[:-1] + [argv[-1].replace(f"/{HTTP_PORT}", f"/{port}")]


def run_healthcheck(port):
    return run(healthcheck_argv(port), timeout=10).returncode


@check("Containerfile HEALTHCHECK command: 0 on /healthz 200, non-zero on 503 and on a closed port")
def _():
    need(shutil.which("bash"), "no bash")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    port = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        srv.status = 200
        ok = run_healthcheck(port)
        srv.status = 503
        bad = run_healthcheck(port)
    finally:
        srv.shutdown()
        srv.server_close()
    closed = run_healthcheck(free_port())
    need(ok == 0 and bad != 0 and closed != 0,
         f"exit codes: 200 -> {ok}, 503 -> {bad}, closed port -> {closed}")
    return f"exit codes 200 -> {ok}, 503 -> {bad}, closed -> {closed}"


# ---------------------------------------------------------- Kubernetes ------

@check("k8s manifests parse as YAML")
def _():
    yaml = yaml_module()
    out = []
    for f in sorted(K8S.glob("*.yaml")):
        docs = [d for d in yaml.safe_load_all(f.read_text()) if d]
        for d in docs:
            need({"apiVersion", "kind", "metadata"} <= set(d), f"{f.name}: a document lacks apiVersion/kind/metadata")
        out.append(f"{f.name}: " + ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs))
    need(out, "no deploy/k8s/*.yaml")
    return "; ".join(out)


@check("k8s StatefulSet: journal volume, probes, resources from the sizing, scrape annotations, security context")
def _():
    sts = statefulset()
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    c = slotd_container(sts)
    need(spec["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"]["labels"].items(),
         "selector does not match the pod labels")
    claims = {v["metadata"]["name"]: v for v in spec.get("volumeClaimTemplates", [])}
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    data = [n for n, p in mounts.items() if p == DATA_DIR]
    need(data and data[0] in claims, f"no volumeClaimTemplate mounted at {DATA_DIR} (mounts {mounts})")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    need(sorted(ports.values()) == [INGEST_PORT, HTTP_PORT], f"container ports {ports}")

    def probe_port(pr):
        p = pr["httpGet"]["port"]
        return ports.get(p, p)
    need(c["livenessProbe"]["httpGet"]["path"] == "/healthz" and probe_port(c["livenessProbe"]) == HTTP_PORT,
         "livenessProbe is not GET :7401/healthz")
    need(c["readinessProbe"]["httpGet"]["path"] == "/readyz" and probe_port(c["readinessProbe"]) == HTTP_PORT,
         "readinessProbe is not GET :7401/readyz")
    ann = sts["spec"]["template"]["metadata"].get("annotations", {})
    need(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(HTTP_PORT)
         and ann.get("prometheus.io/path", "/metrics") == "/metrics", f"prometheus.io annotations {ann}")
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot is not true")
    need(csc.get("readOnlyRootFilesystem") is True, "container readOnlyRootFilesystem is not true")
    need(csc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")
    uid = [a for s, i, a in read_containerfile() if s == 1 and i == "USER"][-1].split(":")[0]
    need(str(psc.get("runAsUser")) == uid, f"runAsUser {psc.get('runAsUser')} != the image's USER {uid}")
    need(int(pod.get("terminationGracePeriodSeconds", 30)) >= 30, "terminationGracePeriodSeconds < 30")
    res = c["resources"]
    need(res["requests"]["memory"] and res["limits"]["memory"], "no memory request/limit")
    flags = flag_values(c.get("args", []))
    need("--max-memory" in flags, "no --max-memory in args: the store would not know its cap")
    cap, limit = bytes_of(flags["--max-memory"]), bytes_of(res["limits"]["memory"])
    need(limit >= cap + (256 << 20), f"memory limit {limit >> 20} MiB leaves under 256 MiB above --max-memory {cap >> 20} MiB")
    need(bytes_of(res["requests"]["memory"]) >= cap, "memory request below --max-memory")
    # The ~34 MiB per million trades sizing: the cap must hold what the comment says.
    m = re.search(r"(\d+) M(?:illion)? stored trades", (K8S / "statefulset.yaml").read_text())
    if m:
        need(cap >= int(m.group(1)) * 34 << 20, f"--max-memory {cap >> 20} MiB < {m.group(1)} x 34 MiB")
    unit_flags = flag_values(unit_exec_argv()[1:])
    need(bytes_of(unit_flags["--max-memory"]) == cap
         and bytes_of(unit_get(read_unit(), "Service", "MemoryMax")) == limit,
         "the unit and the StatefulSet are sized differently (--max-memory / MemoryMax vs limits.memory)")
    return (f"volume {data[0]} at {DATA_DIR}, --max-memory {cap >> 20} MiB, limit {limit >> 20} MiB, "
            f"uid {uid}, grace {pod.get('terminationGracePeriodSeconds')} s")


@check("k8s Services: headless governing service + ClusterIP, both on 7400/7401, selecting the pods")
def _():
    docs = k8s_docs()
    sts = statefulset()
    svcs = {n: d for (k, n), d in docs.items() if k == "Service"}
    gov = svcs.get(sts["spec"]["serviceName"])
    need(gov is not None, f"no Service named {sts['spec']['serviceName']} (the StatefulSet's serviceName)")
    need(gov["spec"].get("clusterIP") == "None", "the governing service is not headless")
    cip = [n for n, d in svcs.items() if d["spec"].get("clusterIP") != "None" and d["spec"].get("type", "ClusterIP") == "ClusterIP"]
    need(cip, "no ClusterIP service")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    cports = {p["name"]: p["containerPort"] for p in slotd_container(sts)["ports"]}
    for n, d in svcs.items():
        need(d["spec"]["selector"].items() <= labels.items(), f"service {n} selects no slotd pod")
        got = sorted(cports.get(p["targetPort"], p["targetPort"]) for p in d["spec"]["ports"])
        need(got == [INGEST_PORT, HTTP_PORT] and sorted(p["port"] for p in d["spec"]["ports"]) == got,
             f"service {n} ports {d['spec']['ports']}")
    return f"headless {gov['metadata']['name']}, ClusterIP {cip}"


# ------------------------------------------------- the real binary, if any ---

@check("slotd accepts the deploy flags: /healthz, HEALTHCHECK, /metrics names used by rules.yml, SIGTERM -> exit 0")
def _():
    binary = slotd_bin()
    if not binary or not binary.exists():
        raise Skip("no built slotd (SLOTD_BIN)")
    h = run([str(binary), "--help"], timeout=10)
    if "--listen" not in output(h):
        raise Skip(f"{binary} --help lists no --listen yet (placeholder server)")
    sts_flags = slotd_container(statefulset()).get("args", [])
    unit_flags = unit_exec_argv()[1:]
    used = set(flag_values(unit_flags)) | set(flag_values(sts_flags))
    unknown = [f for f in sorted(used) if f not in output(h)]
    need(not unknown, f"flags used by deploy/ that slotd --help does not list: {unknown}")
    tcp, http = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        args = flag_values(sts_flags)
        data = Path(d) / "data"
        data.mkdir()
        argv = [str(binary), "--listen", f"127.0.0.1:{tcp}", "--http", f"127.0.0.1:{http}", "--data-dir", str(data)]
        for k, v in args.items():
            argv += [k] + ([v] if v is not None else [])
        log = open(Path(d) / "stderr.log", "w+")
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline, code = time.time() + 20, None
            while time.time() < deadline and proc.poll() is None:
                try:
                    code, _ = http_get(f"http://127.0.0.1:{http}/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            need(code == 200, f"/healthz answered {code}; exit {proc.poll()}; argv {argv}")
            need(run_healthcheck(http) == 0, "the image's HEALTHCHECK command fails against slotd")
            for _ in range(50):
                if http_get(f"http://127.0.0.1:{http}/readyz")[0] == 200:
                    break
                time.sleep(0.1)
            code, text = http_get(f"http://127.0.0.1:{http}/metrics")
            need(code == 200, f"/metrics answered {code}")
            exported = set(re.findall(r"^(?:# (?:TYPE|HELP) )?(slotd_[a-z0-9_]+)", text, re.M))
            exported |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in exported}
            yaml = yaml_module()
            groups = yaml.safe_load((PROM / "rules.yml").read_text())["groups"]
            used_m = {re.sub(r"_bucket$", "", n) for g in groups for r in g["rules"]
                      for n in re.findall(r"\bslotd_[a-z0-9_]+", r["expr"])}
            need(used_m <= exported, f"rules.yml uses metrics slotd does not export: {sorted(used_m - exported)}")
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
            need(rc == 0, f"exit status {rc} after SIGTERM")
        except Fail as e:
            log.flush()
            log.seek(0)
            raise Fail(f"{e}\n  slotd's stderr (tail):\n" + indent(log.read()[-1500:]))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log.close()
    return f"{len(used)} flags accepted, {len(used_m)} metric names exported, clean stop"


# ------------------------------------------------- Kafka-fed cluster ------

def kafka_nodes(argvs):
    """{name: flags} of the argv lists that run --source kafka."""
    return {n: flag_values(a) for n, a in argvs.items() if flag_values(a).get("--source") == "kafka"}


def check_node_groups(nodes, where):
    """Every node has brokers, topic, --kafka-node I/N; the I of each N
    cover 0..N-1 equally often (R replicas of every partition set)."""
    need(nodes, f"{where}: no slotd with --source kafka")
    by_n = {}
    for name, f in nodes.items():
        need(f.get("--kafka-brokers") and f.get("--kafka-topic"), f"{name}: no --kafka-brokers/--kafka-topic")
        m = re.fullmatch(r"(\d+|\$\(POD_INDEX\))/(\d+)", f.get("--kafka-node") or "")
        need(m, f"{name}: --kafka-node {f.get('--kafka-node')!r} is not I/N")
        by_n.setdefault(int(m.group(2)), []).append(m.group(1))
    need(len(by_n) == 1, f"{where}: nodes disagree on N: {sorted(by_n)}")
    return by_n


@check("deploy/kafka/compose.yaml: 3 KRaft brokers, the topic, N nodes x R replicas covering every partition, slotload")
def _():
    yaml = yaml_module()
    doc = yaml.safe_load((DEPLOY / "kafka" / "compose.yaml").read_text())
    svcs = doc["services"]
    brokers = {n: s for n, s in svcs.items() if "KAFKA_PROCESS_ROLES" in (s.get("environment") or {})}
    need(len(brokers) == 3, f"{len(brokers)} Kafka brokers, want 3")
    ids = {s["environment"]["KAFKA_NODE_ID"] for s in brokers.values()}
    voters = brokers[sorted(brokers)[0]]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    need(len(ids) == 3 and all(f"{i}@" in voters for i in ids), f"node ids {ids} vs voters {voters}")
    need(all("controller" in s["environment"]["KAFKA_PROCESS_ROLES"] for s in brokers.values()),
         "not KRaft: a broker without the controller role")
    nodes = kafka_nodes({n: s.get("command") or [] for n, s in svcs.items()})
    by_n = check_node_groups(nodes, "compose")
    (n, idx), = by_n.items()
    counts = {i: idx.count(str(i)) for i in range(n)}
    need(len(set(counts.values())) == 1 and min(counts.values()) >= 1 and len(idx) == n * counts[0],
         f"--kafka-node i/{n} given {counts}: every i equally often")
    hosts = {h.split(":")[0] for f in nodes.values() for h in f["--kafka-brokers"].split(",")}
    need(hosts <= set(brokers), f"--kafka-brokers names {sorted(hosts - set(brokers))}, not brokers")
    groups = [f.get("--kafka-conf") for f in nodes.values()]
    need(len(set(groups)) == len(groups), "two nodes share a group.id")
    load = [s for s in svcs.values() if "--kafka" in (s.get("command") or [])]
    need(load, "no slotload --kafka service")
    return f"{len(brokers)} brokers, {len(nodes)} nodes = {n} x {counts[0]}"


@check("deploy/k8s/cluster: Strimzi KRaft Kafka + topic, one StatefulSet per replica group, node index from the pod ordinal")
def _():
    yaml = yaml_module()
    docs = [d for f in sorted((K8S / "cluster").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {}
    for d in docs:
        need({"apiVersion", "kind", "metadata"} <= set(d), "a document lacks apiVersion/kind/metadata")
        kinds.setdefault(d["kind"], []).append(d)
    kafka, = kinds.get("Kafka", [None])
    need(kafka and kafka["metadata"].get("annotations", {}).get("strimzi.io/kraft") == "enabled",
         "no Strimzi Kafka with strimzi.io/kraft: enabled")
    need(kinds.get("KafkaNodePool"), "no KafkaNodePool (KRaft needs one)")
    topic, = kinds.get("KafkaTopic", [None])
    sts = kinds.get("StatefulSet", [])
    need(len(sts) >= 2, f"{len(sts)} StatefulSets: want one per replica group, at least 2")
    svcs = {d["metadata"]["name"]: d for d in kinds.get("Service", [])}
    nodes = {}
    for st in sts:
        c = slotd_container(st)
        env = {e["name"]: e for e in c.get("env", [])}
        need("apps.kubernetes.io/pod-index" in str(env.get("POD_INDEX")),
             f"{st['metadata']['name']}: POD_INDEX is not the pod-index label")
        gov = svcs.get(st["spec"]["serviceName"])
        need(gov and gov["spec"].get("clusterIP") == "None", f"{st['metadata']['name']}: no headless service")
        need(st["spec"]["selector"]["matchLabels"].items() <= st["spec"]["template"]["metadata"]["labels"].items(),
             f"{st['metadata']['name']}: selector does not match the pod labels")
        f = kafka_nodes({st["metadata"]["name"]: c["args"]})
        need(f, f"{st['metadata']['name']}: not --source kafka")
        nodes.update(f)
        n = int(f[st["metadata"]["name"]]["--kafka-node"].split("/")[1])
        need(st["spec"]["replicas"] == n, f"{st['metadata']['name']}: replicas {st['spec']['replicas']} != N {n}")
        need(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "readinessProbe is not /readyz")
        boot = f[st["metadata"]["name"]]["--kafka-brokers"]
        need(boot.startswith(kafka["metadata"]["name"] + "-kafka-bootstrap"),
             f"--kafka-brokers {boot} is not the Kafka's bootstrap service")
        need(f[st["metadata"]["name"]]["--kafka-topic"] == topic["metadata"]["name"], "topic mismatch")
    (n, _), = check_node_groups(nodes, "k8s").items()
    need(topic["spec"]["partitions"] >= n, f"{topic['spec']['partitions']} partitions for {n} nodes")
    return f"{len(sts)} replica groups x {n} nodes, topic {topic['metadata']['name']} of {topic['spec']['partitions']}"


# ------------------------------------------------------------- TLS ---------

TLS_DROPIN = DEPLOY / "slotd-tls.conf"


@check("systemd-analyze verify slotd.service with the slotd-tls.conf drop-in; LoadCredential= feeds --tls-cert/--tls-key/--auth-file")
def _():
    sa = tool("systemd-analyze", "systemd")
    binary = slotd_bin()
    binary = binary.resolve() if binary and binary.exists() else Path("/bin/true")
    text = TLS_DROPIN.read_text()
    creds = dict(v.split(":", 1)[0:1] + [v.split(":", 1)[1]] for k, v in
                 (ln.split("=", 1) for ln in text.splitlines() if ln.startswith("LoadCredential=")))
    argv = shlex.split(text.split("ExecStart=/usr/local/bin/slotd", 1)[1].replace("\\\n", " "))
    flags = flag_values([a for a in argv if a != "$SLOTD_OPTS"])
    for flag in ("--tls-cert", "--tls-key", "--auth-file"):
        v = flags.get(flag) or ""
        need(v.startswith("%d/") and v[3:] in creds, f"{flag} {v!r} is not a LoadCredential= (%d/NAME)")
    need("--token" not in flags and "--token-file" not in flags, "--token with --auth-file")
    need(flags.get("--tls-port") and flags.get("--tls-http-port"), "no --tls-port/--tls-http-port")
    need(flags["--listen"].startswith("127.0.0.1:") and flags["--http"].startswith("127.0.0.1:"),
         "the plain ports are not on loopback")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        unit = Path(d) / "slotd.service"
        unit.write_text(UNIT.read_text().replace("ExecStart=/usr/local/bin/slotd ", f"ExecStart={binary} "))
        (Path(d) / "slotd.service.d").mkdir()
        (Path(d) / "slotd.service.d" / "tls.conf").write_text(
            text.replace("ExecStart=/usr/local/bin/slotd ", f"ExecStart={binary} "))
        env = dict(os.environ, SYSTEMD_LOG_LEVEL="info", SYSTEMD_LOG_COLOR="0")
        p = run([sa, "verify", "--man=no", "--recursive-errors=no", str(unit)], env=env)
        mine = [ln for ln in output(p).splitlines() if "slotd.service" in ln or "tls.conf" in ln]
        need(p.returncode == 0 and not mine, f"exit {p.returncode}:\n" + indent("\n".join(mine)))
    return f"credentials {sorted(creds)}"


@check("deploy/k8s/tls: certificate and auth file from Secrets mounted read-only, HTTPS probes, only the TLS ports exposed")
def _():
    yaml = yaml_module()
    docs = {}
    for f in sorted((K8S / "tls").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                need({"apiVersion", "kind", "metadata"} <= set(d), f"{f.name}: a document lacks apiVersion/kind/metadata")
                docs.setdefault(d["kind"], []).append(d)
    (sts,) = docs.get("StatefulSet", [None])
    need(sts, "no StatefulSet in deploy/k8s/tls")
    c = slotd_container(sts)
    flags = flag_values(c["command"][1:])
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    for flag in ("--tls-cert", "--tls-key", "--auth-file"):
        path = flags.get(flag) or ""
        m = [m for m in mounts.values() if path.startswith(m["mountPath"].rstrip("/") + "/")]
        need(m and m[0].get("readOnly") is True, f"{flag} {path!r} is not on a read-only mount")
        need("secret" in vols[m[0]["name"]], f"{flag} is not from a Secret volume")
        need("subPath" not in m[0], f"{flag}: a subPath mount is never updated on renewal")
    need("--token-file" not in flags and "--token" not in flags, "--token(-file) with --auth-file")
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    tls_port, https_port = (int(flags[f].rsplit(":", 1)[-1]) for f in ("--tls-port", "--tls-http-port"))
    need(sorted(ports.values()) == sorted([tls_port, https_port]),
         f"container ports {ports} are not exactly the TLS ones")
    need(flags["--listen"].startswith("127.0.0.1:") and flags["--http"].startswith("127.0.0.1:"),
         "the plain ports are not on the pod's loopback")
    for pr in ("startupProbe", "livenessProbe", "readinessProbe"):
        g = c[pr]["httpGet"]
        need(g.get("scheme") == "HTTPS" and ports.get(g["port"], g["port"]) == https_port,
             f"{pr} is not HTTPS on --tls-http-port")
    for svc in docs.get("Service", []):
        sp = sorted(p["port"] for p in svc["spec"]["ports"])
        need(sp == sorted(ports.values()), f"Service {svc['metadata']['name']} ports {sp}")
    (np,) = docs.get("NetworkPolicy", [None])
    need(np, "no NetworkPolicy keeping the plain ports inside the pod")
    allowed = sorted(p["port"] for r in np["spec"]["ingress"] for p in r["ports"])
    need(allowed == sorted(ports.values()), f"NetworkPolicy admits {allowed}")
    # The flags are slotd's: it accepts them (up to the missing files).
    binary = slotd_bin()
    if binary and binary.exists():
        p = run([str(binary)] + c["command"][1:] + ["--help"])
        need(p.returncode == 0, f"slotd refuses the StatefulSet's flags: {output(p)[-300:]}")
    return f"StatefulSet {sts['metadata']['name']}, ports {sorted(ports.values())}"


print(f"{len(passed)} passed, {len(failed)} failed" + (f", {len(skipped)} skipped" if skipped else ""))
sys.exit(1 if failed else 0)
