#!/usr/bin/env python3
"""Checks the monitoring files against real processes.

1. promtool checks deploy/prometheus/alerts.yml and runs its unit tests (alerts.test.yml).
2. Two real nodes start; a WebSocket subscriber on each receives a message, so counters and the
   delivery-latency histogram move.
3. A real Prometheus scrapes both nodes with alerts.yml loaded; every series the dashboard and
   the alerts use must arrive from both nodes with the expected labels, and the rules must load.
4. Every query of deploy/grafana/chorus.json must name only series the nodes export, and must
   run without error in Prometheus.
5. The nodes stop with SIGTERM and must exit 0 with no crash in their logs.

Usage: scripts/check-monitoring.py [path/to/chorus]      (exit 0 = pass)
"""
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, ".build/debug/chorus")
SECRET = "monitoring-check-secret-0123456789"
API_KEY = "monitoring-check-key"
PROMQL_WORDS = {
    "rate", "increase", "sum", "by", "histogram_quantile", "clamp_min", "absent", "le", "count", "without",
    "avg", "max", "min", "min_over_time", "vector", "offset", "and", "or", "unless", "on", "ignoring", "group_left", "group_right",
    "instance", "reason", "code", "route", "status", "backend", "job", "state", "method", "table",
}


def fail(message):
    print(f"check-monitoring: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def wait(what, predicate, seconds=60):
    """Until predicate() holds; `what` may be a function, called for the failure message."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.2)
    fail(f"{what() if callable(what) else what} within {seconds} s")


def query(prometheus, expr):
    _, body = get(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = json.loads(body)
    if answer.get("status") != "success":
        fail(f"query {expr!r}: {answer}")
    return answer["data"]["result"]


async def traffic(ports):
    import websockets
    for port in ports:
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            token = subprocess.check_output([BIN, "token", "--sub", "watcher"], env={"JWT_SECRET": SECRET}).decode().strip()
            await ws.send(json.dumps({"type": "auth", "token": token}))
            await ws.recv()
            await ws.send(json.dumps({"type": "subscribe", "topic": "monitoring.check", "id": 1}))
            await ws.recv()
            body = json.dumps({"topic": "monitoring.check", "data": {"n": 1}}).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/publish", data=body,
                headers={"X-API-Key": API_KEY, "Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=5).read()
            message = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if message.get("type") != "message":
                fail(f"node on {port} delivered {message}")


def main():
    if not os.access(BIN, os.X_OK):
        fail(f"{BIN} missing: run swift build first")
    rules = os.path.join(REPO, "deploy/prometheus/alerts.yml")
    subprocess.run(["promtool", "check", "rules", rules], check=True)
    subprocess.run(["promtool", "test", "rules", os.path.join(REPO, "deploy/prometheus/alerts.test.yml")], check=True)

    work = tempfile.mkdtemp(prefix="chorus-monitoring.")
    processes, logs = [], []
    prometheus = None
    ok = False
    try:
        ports = free_ports(4)
        node_ports, prometheus_port, redis_port = ports[:2], ports[2], ports[3]
        # The nodes share a real Redis, so the Redis series exist too.
        redis_log = open(os.path.join(work, "redis.log"), "w")
        logs.append(redis_log.name)
        processes.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=redis_log, stderr=subprocess.STDOUT))
        for index, port in enumerate(node_ports):
            log = open(os.path.join(work, f"node-{index + 1}.log"), "w")
            logs.append(log.name)
            env = {"PATH": os.environ["PATH"], "JWT_SECRET": SECRET, "API_KEY": API_KEY, "HTTP_HOST": "127.0.0.1",
                   "HTTP_PORT": str(port), "DATABASE_URL": "sqlite::memory:", "NODE_ID": f"node-{index + 1}",
                   "PUBSUB_ADAPTER": "redis", "PUBSUB_REDIS_URL": f"redis://127.0.0.1:{redis_port}"}
            processes.append(subprocess.Popen([BIN], env=env, stdout=log, stderr=subprocess.STDOUT))
        for port in node_ports:
            wait(f"node on {port} ready", lambda: get(f"http://127.0.0.1:{port}/ready")[0] == 200)
        asyncio.run(traffic(node_ports))

        config = os.path.join(work, "prometheus.yml")
        with open(config, "w") as handle:
            handle.write(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                f"rule_files: ['{rules}']\n"
                "scrape_configs:\n  - job_name: chorus\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{node_ports[0]}', '127.0.0.1:{node_ports[1]}']\n")
        prometheus_log = open(os.path.join(work, "prometheus.log"), "w")
        logs.append(prometheus_log.name)
        prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={work}/data",
             f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            stdout=prometheus_log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{prometheus_port}"
        wait("Prometheus ready", lambda: get(f"{url}/-/ready")[0] == 200)
        wait("both nodes scraped", lambda: len([r for r in query(url, 'up{job="chorus"} == 1')]) == 2)

        used = set()
        dashboard = json.load(open(os.path.join(REPO, "deploy/grafana/chorus.json")))
        expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        alert_expressions = re.findall(r"^\s+expr: (.*)$", open(rules).read(), re.M)
        for expr in expressions + alert_expressions:
            for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", re.sub(r'"[^"]*"|\[[^\]]*\]', "", expr)):
                if name not in PROMQL_WORDS and not re.fullmatch(r"\d.*", name):
                    used.add(name)
        exported = set()
        def all_exported():
            exported.clear()
            _, body = get(f"{url}/api/v1/label/__name__/values")
            exported.update(json.loads(body)["data"])
            return used <= exported
        wait(lambda: f"every series the dashboard and alerts use to arrive (missing: {sorted(used - exported)})",
             all_exported)
        for name in sorted(used - {"up"}):
            instances = {r["metric"]["instance"] for r in query(url, name)}
            if len(instances) != 2:
                fail(f"{name} came from {instances}, expected both nodes")
        for expr, labels in [('chorus_websocket_closed_total', {"code"}), ('chorus_messages_dropped_total', {"reason"}),
                             ('chorus_http_requests_total', {"route", "method", "status"}),
                             ('chorus_store_pruned_total', {"table"})]:
            for result in query(url, expr):
                if not labels <= set(result["metric"]):
                    fail(f"{expr} lacks labels {labels}: {result['metric']}")
        wait("a delivery latency sample from each node",
             lambda: len(query(url, "chorus_delivery_latency_seconds_count > 0")) == 2)
        wait("the published counter to show the check's messages",
             lambda: sum(float(r["value"][1]) for r in query(url, "chorus_messages_published_total")) == 2)
        for expr in expressions:
            query(url, expr)   # fails on a PromQL error
        _, body = get(f"{url}/api/v1/rules")
        loaded = [rule for group in json.loads(body)["data"]["groups"] for rule in group["rules"]]
        if len(loaded) != len(alert_expressions) or any(rule["health"] != "ok" for rule in loaded if "health" in rule):
            fail(f"alert rules not all loaded and healthy: {[(r['name'], r.get('health')) for r in loaded]}")
        print(f"check-monitoring: {len(used)} series from 2 nodes, {len(expressions)} dashboard queries, "
              f"{len(loaded)} alert rules: ok")
        prometheus.send_signal(signal.SIGTERM)
        prometheus.wait(20)
        nodes = processes[1:]
        for process in nodes:
            process.send_signal(signal.SIGTERM)
        for index, process in enumerate(nodes):
            status = process.wait(30)
            text = open(logs[index + 1]).read()
            if status != 0 or re.search(r"Assertion failed|Fatal error|Signal \d|Crash", text):
                fail(f"node-{index + 1} exited {status}; log:\n{text[-3000:]}")
        ok = True
    finally:
        for process in processes + ([prometheus] if prometheus else []):
            if process.poll() is None:
                process.kill()
        if not ok:
            for log in logs:
                print(f"--- {log}", file=sys.stderr)
                print(open(log).read()[-2000:], file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
