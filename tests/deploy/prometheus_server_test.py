"""A real Prometheus server (Debian's `prometheus`) scrapes a local cluster (the gptbd coordinator
and two workers on 127.0.0.1) and evaluates the project's alert rules: the scrape targets are up,
a real build shows in the queried build metrics, no alert fires on the healthy cluster, and
GptbWorkerDown fires after a worker is killed. The rules are deploy/prometheus/alerts.yaml with
only their `for:` windows shortened (and the coordinator's heartbeat timeout), so the test takes
seconds, not minutes; the expressions are the shipped ones."""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import yaml

import deploy_paths as paths
import gptbuilder
from local_cluster import LocalCluster, _die_with_parent

PROMETHEUS = os.environ.get("GPTB_PROMETHEUS") or shutil.which("prometheus") or "prometheus"
# How long every rule's `for:` becomes, and how often Prometheus scrapes and evaluates.
FOR_WINDOW = "3s"
INTERVAL = "1s"


def host_port(url):
    """HOST:PORT of a /metrics URL as the ready files give it (http://HOST:PORT/metrics)."""
    return urllib.parse.urlsplit(url if "://" in url else f"http://{url}").netloc


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shortened_rules(path, out):
    """alerts.yaml with every `for:` set to FOR_WINDOW; returns the names of the alerts."""
    with open(path) as f:
        document = yaml.safe_load(f)
    names = []
    for group in document["groups"]:
        group["interval"] = INTERVAL
        for rule in group["rules"]:
            if "alert" in rule:
                names.append(rule["alert"])
                if "for" in rule:
                    rule["for"] = FOR_WINDOW
    with open(out, "w") as f:
        yaml.safe_dump(document, f)
    return names


class PrometheusServer:
    def __init__(self, directory, targets, rules):
        self.port = free_port()
        config = {
            "global": {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL,
                       "scrape_timeout": INTERVAL},
            "rule_files": [rules],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": addresses}]}
                for job, addresses in targets.items()
            ],
        }
        config_path = os.path.join(directory, "prometheus.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        self.log_path = os.path.join(directory, "prometheus.log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config_path}",
             f"--storage.tsdb.path={os.path.join(directory, 'data')}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)

    def api(self, path, **params):
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"{url}: {body}")
        return body["data"]

    def wait_until(self, what, predicate, timeout=60):
        """Polls predicate() (which may raise while Prometheus starts) until it returns a true
        value; returns it."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                value = predicate()
                if value:
                    return value
                last = value
            except (OSError, RuntimeError, KeyError) as error:
                last = error
            time.sleep(0.5)
        raise AssertionError(f"{what}: not within {timeout}s (last: {last})\n{self.log_tail()}")

    def query(self, expression):
        return self.api("query", query=expression)["result"]

    def log_tail(self, lines=20):
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class PrometheusScrapesTheClusterTest(unittest.TestCase):
    def setUp(self):
        self.directory = tempfile.mkdtemp(prefix="gptb-prometheus-test-")
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.cluster = LocalCluster(paths.GPTBD, workers=2, slots=1,
                                    coordinator_flags=["--heartbeat-timeout", "2s"])
        self.addCleanup(self.cluster.stop)
        rules = os.path.join(self.directory, "alerts.yaml")
        self.alert_names = shortened_rules(paths.ALERTS, rules)
        self.prometheus = PrometheusServer(
            self.directory,
            {"coordinator": [host_port(self.cluster.coordinator_metrics)],
             "worker": [host_port(url) for url in self.cluster.worker_metrics]},
            rules)
        self.addCleanup(self.prometheus.stop)

    def firing(self):
        return sorted(a["labels"]["alertname"] for a in self.prometheus.api("alerts")["alerts"]
                      if a["state"] == "firing")

    def test_scrape_build_metrics_and_alerts(self):
        prometheus = self.prometheus
        # Every daemon is a healthy target.
        def targets_up():
            active = prometheus.api("targets")["activeTargets"]
            return len(active) == 3 and all(t["health"] == "up" for t in active) and active
        targets = prometheus.wait_until("three targets up", targets_up)
        self.assertEqual(sorted(t["labels"]["job"] for t in targets),
                         ["coordinator", "worker", "worker"])

        with gptbuilder.Client(self.cluster.address) as client:
            client.wait_for_workers(2, timeout=60)
            config = gptbuilder.load_config(
                os.path.join(paths.SOURCE_DIR, "examples", "tiny-llama.yaml"),
                overrides=["transformer.pipeline_model_parallel_size=2"])
            client.build_and_wait("scraped", config, world_size=2, timeout=120)

        # The build, as Prometheus stored it from the coordinator's scrape.
        built = prometheus.wait_until(
            "the build in gptb_builds_total",
            lambda: prometheus.query('sum(gptb_builds_total{result="ready"}) > 0'))
        self.assertEqual(float(built[0]["value"][1]), 1.0)
        workers = prometheus.query('sum(gptb_workers{state="ready"})')
        self.assertEqual(float(workers[0]["value"][1]), 2.0)
        # Each worker reports what it holds (one pipeline stage each).
        held = prometheus.wait_until(
            "held parameters on both workers",
            lambda: (lambda r: r if len(r) == 2 else None)(
                prometheus.query("gptb_worker_held_parameters > 0")))
        self.assertEqual(sorted(r["metric"]["job"] for r in held), ["worker", "worker"])

        # Every shipped rule loaded and evaluates without error; nothing fires while healthy,
        # over more than the shortened `for:` window.
        def evaluated():
            groups = prometheus.api("rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return rules if rules and all(not r["lastEvaluation"].startswith("0001")
                                          for r in rules) else None
        rules = prometheus.wait_until("every rule evaluated", evaluated)
        self.assertEqual(sorted(r["name"] for r in rules if r["type"] == "alerting"),
                         sorted(self.alert_names))
        for rule in rules:
            self.assertEqual(rule["health"], "ok", rule)
        time.sleep(7)  # two shortened `for:` windows and a bit
        self.assertEqual(self.firing(), [])

        # A worker dies without a word: the coordinator declares it lost after the heartbeat
        # timeout, and GptbWorkerDown goes pending, then fires after its `for:` window.
        self.cluster.workers[1].process.kill()
        self.cluster.workers[1].process.wait()
        prometheus.wait_until("GptbWorkerDown firing", lambda: "GptbWorkerDown" in self.firing(),
                              timeout=60)
        lost = prometheus.query('sum(gptb_workers{state="lost"})')
        self.assertEqual(float(lost[0]["value"][1]), 1.0)


if __name__ == "__main__":
    unittest.main()
