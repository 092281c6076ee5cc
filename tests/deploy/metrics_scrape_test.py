"""Every metric the Grafana dashboard and the alert rules use is in a live /metrics scrape of a
local cluster (the real gptbd coordinator and two workers on 127.0.0.1), with the labels they
match and group on; and the health service names the Kubernetes probes ask for are the ones the
daemons serve. A tiny model is built, a build is rejected and the model released first, so the
build, rejection and release series exist."""

import os
import re
import unittest

import grpc

import deploy_paths as paths
import gptbuilder
import kustomize_render
import promql_names
from local_cluster import LocalCluster, scrape

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """{metric name: [labels dict per sample]} of a Prometheus text exposition."""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"unparsable sample line: {line!r}")
        series.setdefault(match.group(1), []).append(dict(_LABEL.findall(match.group(3) or "")))
    return series


def health_status(address, service):
    """grpc.health.v1.Health/Check's status (1 SERVING, 2 NOT_SERVING), spoken on the wire
    directly: HealthCheckRequest{service = 1}, HealthCheckResponse{status = 1}."""
    encoded = service.encode()
    request = (b"\x0a" + bytes([len(encoded)]) + encoded) if encoded else b""
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b,
                                    response_deserializer=lambda b: b)
        response = check(request, timeout=10)
    return response[1] if len(response) >= 2 and response[0] == 0x08 else 0


def tiny_config():
    return gptbuilder.load_config(os.path.join(paths.SOURCE_DIR, "examples", "tiny-llama.yaml"),
                                  overrides=["transformer.pipeline_model_parallel_size=2"])


class LiveMetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = LocalCluster(paths.GPTBD, workers=2, slots=1)
        try:
            with gptbuilder.Client(cls.cluster.address) as client:
                client.wait_for_workers(2, timeout=60)
                client.build_and_wait("scraped", tiny_config(), world_size=2, timeout=120)
                with cls.assertRaises(cls, gptbuilder.InvalidConfigError):
                    client.build("rejected", tiny_config(),
                                 overrides=["transformer.num_attention_heads=3"], world_size=2)
                client.describe("scraped")
                client.release("scraped")
                client.build_and_wait("held", tiny_config(), world_size=2, timeout=120)
            cls.series = {}
            for url in [cls.cluster.coordinator_metrics] + cls.cluster.worker_metrics:
                for name, samples in parse_exposition(scrape(url)).items():
                    cls.series.setdefault(name, []).extend(samples)
        except BaseException:
            print(cls.cluster.logs())
            cls.cluster.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def all_expressions(self):
        return (promql_names.dashboard_expressions(paths.DASHBOARD) +
                promql_names.alert_expressions(paths.ALERTS))

    def test_every_used_metric_is_exported(self):
        used = set()
        for source, expr in self.all_expressions():
            for name, _ in promql_names.selectors(expr):
                if name in promql_names.SYNTHETIC:
                    continue
                used.add(name)
                with self.subTest(source=source, metric=name):
                    self.assertTrue(name in self.series, f"{name} is not exported")
        # Every histogram and gauge of the list, not just a few, is in use.
        self.assertGreaterEqual(len(used), 20)

    def test_matched_labels_and_values_exist(self):
        for source, expr in self.all_expressions():
            for name, matchers in promql_names.selectors(expr):
                samples = self.series.get(name)
                if samples is None:
                    continue  # reported by test_every_used_metric_is_exported
                for label, op, value in matchers:
                    if label in promql_names.TARGET_LABELS:
                        continue
                    with self.subTest(source=source, metric=name, label=label):
                        values = {s.get(label) for s in samples} - {None}
                        self.assertTrue(values, f"{name} has no label {label}")
                        if op == "=":
                            self.assertIn(value, values)
                        elif op == "=~":
                            self.assertTrue(any(re.fullmatch(value, v) for v in values) or
                                            label == "grpc_code", (value, values))

    def test_grouping_labels_exist(self):
        for source, expr in self.all_expressions():
            names = [n for n, _ in promql_names.selectors(expr) if n in self.series]
            labels = set().union(*({k for s in self.series[n] for k in s} for n in names))
            for label in promql_names.grouping_labels(expr) - promql_names.TARGET_LABELS:
                with self.subTest(source=source, label=label):
                    self.assertIn(label, labels)

    def test_build_series_reflect_the_builds(self):
        def value_of(name, **labels):
            text = scrape(self.cluster.coordinator_metrics)
            for line in text.splitlines():
                match = _SAMPLE.match(line)
                if match and match.group(1) == name and \
                        dict(_LABEL.findall(match.group(3) or "")) == labels:
                    return float(line.split()[-1])
            return None

        self.assertEqual(value_of("gptb_builds_total", result="ready"), 2)
        self.assertEqual(value_of("gptb_build_rejections_total", code="INVALID_ARGUMENT"), 1)
        self.assertEqual(value_of("gptb_models", state="ready"), 1)
        self.assertEqual(value_of("gptb_workers", state="ready"), 2)
        phases = {s["phase"] for s in self.series["gptb_build_phase_duration_seconds_count"]}
        self.assertTrue({"validate", "plan", "rendezvous", "process_groups", "construct", "init",
                         "wrap"} <= phases, phases)

    def test_probe_services_are_served(self):
        rendered = kustomize_render.render(os.path.join(paths.K8S, "base"))
        addresses = {"gptb-coordinator": self.cluster.address,
                     "gptb-worker": self.cluster.worker_addresses[0]}
        for workload in rendered:
            if workload["kind"] not in ("Deployment", "DaemonSet"):
                continue
            container = workload["spec"]["template"]["spec"]["containers"][0]
            address = addresses[workload["metadata"]["name"]]
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                service = container[probe]["grpc"].get("service", "")
                with self.subTest(workload=workload["metadata"]["name"], probe=probe):
                    self.assertEqual(health_status(address, service), 1)  # SERVING
        # A name the daemons do not serve is an error, so the probe names above are not
        # accepted by accident.
        with self.assertRaises(grpc.RpcError) as raised:
            health_status(self.cluster.address, "gptbuilder.v1.NoSuchService")
        self.assertEqual(raised.exception.code(), grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main()
