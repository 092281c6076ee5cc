"""Paths and small helpers shared by the deploy tests. ctest passes GPTB_SOURCE_DIR and
GPTB_BINARY_DIR in the environment."""

import os
import re
import subprocess

SOURCE_DIR = os.environ.get("GPTB_SOURCE_DIR",
                            os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..")))
BINARY_DIR = os.environ.get("GPTB_BINARY_DIR", os.path.join(SOURCE_DIR, "build"))
GPTBD = os.path.join(BINARY_DIR, "bin", "gptbd")
DEPLOY = os.path.join(SOURCE_DIR, "deploy")
K8S = os.path.join(DEPLOY, "k8s")
OVERLAYS = ["overlays/cpu-demo", "overlays/gpu"]
DASHBOARD = os.path.join(DEPLOY, "grafana", "gptbuilder-dashboard.json")
ALERTS = os.path.join(DEPLOY, "prometheus", "alerts.yaml")
METRIC_NAMES_H = os.path.join(SOURCE_DIR, "server", "common", "metric_names.h")


def daemon_flags(role):
    """{env var: default} of `gptbd ROLE`'s flags, read from its --help (the one place the flags
    and their environment fallbacks are declared). Flags without a default map to ""."""
    text = subprocess.run([GPTBD, role, "--help"], check=True, capture_output=True,
                          text=True).stdout
    flags = {}
    for env, default in re.findall(r"\(env (GPTB_\w+)(?:, default ([^)]*))?\)", text):
        flags[env] = default
    for env in re.findall(r"else (GPTB_\w+)", text):
        flags.setdefault(env, "")
    return flags


def declared_metric_names():
    """The metric names server/common/metric_names.h declares."""
    with open(METRIC_NAMES_H) as f:
        return set(re.findall(r'inline constexpr char k\w+\[\] = "([a-z_:]+)";', f.read()))
