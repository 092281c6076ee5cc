"""The metric names and label matchers a PromQL expression uses, and the expressions of the
Grafana dashboard and the alert rules, for the deploy tests."""

import json
import re

import yaml

# Series Prometheus makes itself (not exported by a daemon).
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# Labels Prometheus attaches to every series of a target (service discovery / relabelling).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "node", "service",
                 "endpoint"}
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_KEYWORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "and", "or", "unless", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "histogram_quantile", "label_replace", "label_join", "clamp_min", "clamp_max",
    "abs", "absent", "absent_over_time", "time", "vector", "scalar", "max_over_time",
    "min_over_time", "avg_over_time", "sum_over_time", "changes", "resets", "le", "inf", "nan",
}
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)"')


def _strip(expr):
    """The expression without string literals' contents outside selectors, durations in [] and
    Grafana variables, so only identifiers remain to classify."""
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    return re.sub(r"\$\{?\w+\}?", "x", expr)


def selectors(expr):
    """[(metric, [(label, op, value)])] for every metric selector in `expr`."""
    out = []
    text = _strip(expr)
    # Grouping clauses list label names, not metrics.
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    position = 0
    while True:
        match = _SELECTOR.search(text, position)
        if match is None:
            return out
        position = match.end()
        name, braces = match.group(1), match.group(2)
        start = match.start()
        # Skip label names inside a selector, function calls and numbers.
        if text[:start].count("{") > text[:start].count("}"):
            continue
        following = text[match.end(1):].lstrip()
        if name in _KEYWORDS or (following.startswith("(") and braces is None):
            continue
        matchers = _MATCHER.findall(braces) if braces else []
        out.append((name, matchers))


def grouping_labels(expr):
    """Label names of by (...) / on (...) / group_left (...) clauses."""
    labels = set()
    for group in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                            expr):
        labels.update(l.strip() for l in group.split(",") if l.strip())
    return labels


def base_name(name, declared):
    """`name` without a histogram suffix when the base is a declared histogram."""
    for suffix in _HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[:-len(suffix)] in declared:
            return name[:-len(suffix)]
    return name


def dashboard_expressions(path):
    with open(path) as f:
        dashboard = json.load(f)
    out = []

    def visit(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                out.append((panel["title"], target["expr"]))
            visit(panel.get("panels", []))

    visit(dashboard["panels"])
    for variable in dashboard.get("templating", {}).get("list", []):
        definition = variable.get("definition", "")
        match = re.fullmatch(r"label_values\((\w+),\s*\w+\)", definition)
        if match:
            out.append((f"variable {variable['name']}", match.group(1)))
    return out


def alert_expressions(path):
    with open(path) as f:
        rules = yaml.safe_load(f)
    return [(rule.get("alert") or rule.get("record"), rule["expr"])
            for group in rules["groups"] for rule in group["rules"]]
