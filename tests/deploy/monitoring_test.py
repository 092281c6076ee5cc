"""Static checks of the Grafana dashboard and the alert rules: well-formed, covering what an
operator needs, and written only against the metric names server/common/metric_names.h declares.
(deploy_metrics_scrape_test checks the same names against a live scrape; promtool checks and
unit-tests the rules in deploy_alert_rules_*.)"""

import json
import unittest

import yaml

import deploy_paths as paths
import promql_names


class DashboardTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(paths.DASHBOARD) as f:
            cls.dashboard = json.load(f)
        cls.panels = [p for p in cls.dashboard["panels"] if p["type"] != "row"]
        cls.expressions = promql_names.dashboard_expressions(paths.DASHBOARD)

    def test_importable_dashboard(self):
        d = self.dashboard
        self.assertEqual(d["uid"], "gptbuilder")
        self.assertTrue(d["title"])
        self.assertIsNone(d["id"])  # so an import creates it rather than overwriting another
        variables = {v["name"]: v for v in d["templating"]["list"]}
        self.assertEqual(variables["datasource"]["type"], "datasource")
        self.assertEqual(variables["datasource"]["query"], "prometheus")
        ids = [p["id"] for p in d["panels"]]
        self.assertEqual(len(ids), len(set(ids)))
        for panel in self.panels:
            with self.subTest(panel=panel["title"]):
                self.assertEqual(panel["datasource"]["uid"], "${datasource}")
                self.assertTrue(panel["targets"])
                self.assertTrue(panel["description"])
                grid = panel["gridPos"]
                self.assertLessEqual(grid["x"] + grid["w"], 24)

    def test_panels_do_not_overlap(self):
        cells = {}
        for panel in self.dashboard["panels"]:
            g = panel["gridPos"]
            for x in range(g["x"], g["x"] + g["w"]):
                for y in range(g["y"], g["y"] + g["h"]):
                    self.assertNotIn((x, y), cells,
                                     f"{panel['title']} overlaps {cells.get((x, y))}")
                    cells[(x, y)] = panel["title"]

    def expressions_using(self, metric, label=None):
        out = []
        for _, expr in self.expressions:
            names = {name for name, _ in promql_names.selectors(expr)}
            if metric in names and (label is None or label in promql_names.grouping_labels(expr)
                                    or f'{label}=' in expr.replace(" ", "")):
                out.append(expr)
        return out

    def test_covers_what_operators_need(self):
        required = [
            ("request rate", "grpc_server_started_total", "grpc_method"),
            ("errors by code", "grpc_server_handled_total", "grpc_code"),
            ("latency quantiles", "grpc_server_handling_seconds_bucket", "le"),
            ("builds in flight", "gptb_models", "state"),
            ("builds by result", "gptb_builds_total", "result"),
            ("build duration", "gptb_build_duration_seconds_bucket", "le"),
            ("build duration by phase", "gptb_build_phase_duration_seconds_sum", "phase"),
            ("parameters per worker", "gptb_worker_held_parameters", "instance"),
            ("bytes per worker", "gptb_worker_held_bytes", "instance"),
            ("heartbeat age", "gptb_worker_heartbeat_age_seconds", "worker"),
        ]
        for topic, metric, label in required:
            with self.subTest(topic=topic):
                self.assertTrue(self.expressions_using(metric, label), topic)
        quantiles = self.expressions_using("grpc_server_handling_seconds_bucket")
        self.assertGreaterEqual(len(quantiles), 3)
        self.assertTrue(all(e.startswith("histogram_quantile(") for e in quantiles))
        building = self.expressions_using("gptb_models", "state")
        self.assertTrue(any('state="building"' in e for e in building))

    def test_uses_only_declared_metrics(self):
        declared = paths.declared_metric_names()
        for title, expr in self.expressions:
            for name, _ in promql_names.selectors(expr):
                with self.subTest(panel=title, metric=name):
                    self.assertIn(promql_names.base_name(name, declared), declared)


class AlertRulesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(paths.ALERTS) as f:
            cls.rules = {r["alert"]: r for g in yaml.safe_load(f)["groups"] for r in g["rules"]}

    def test_required_alerts(self):
        for alert, metric in [("GptbWorkerDown", "gptb_workers"),
                              ("GptbWorkerNotRegistered", "gptb_worker_registered"),
                              ("GptbWorkerHeartbeatLate", "gptb_worker_heartbeat_age_seconds"),
                              ("GptbBuildFailures", "gptb_builds_total")]:
            with self.subTest(alert=alert):
                names = {n for n, _ in promql_names.selectors(self.rules[alert]["expr"])}
                self.assertIn(metric, names)

    def test_every_alert_has_severity_and_text(self):
        for name, rule in self.rules.items():
            with self.subTest(alert=name):
                self.assertIn(rule["labels"]["severity"], ("critical", "warning", "info"))
                self.assertTrue(rule["annotations"]["summary"])
                self.assertTrue(rule["annotations"]["description"])

    def test_uses_only_declared_metrics(self):
        declared = paths.declared_metric_names()
        for name, expr in promql_names.alert_expressions(paths.ALERTS):
            for metric, _ in promql_names.selectors(expr):
                with self.subTest(alert=name, metric=metric):
                    self.assertIn(promql_names.base_name(metric, declared),
                                  declared | promql_names.SYNTHETIC)


if __name__ == "__main__":
    unittest.main()
