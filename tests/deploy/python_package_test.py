"""The Python client as users install it: the wheel `scripts/build` leaves in build/dist/ holds
the package with its generated stubs (and no top-level `google` package), its version is the
project's, it installs offline (`pip install --no-index`) into a fresh
`python3 -m venv --system-site-packages` whose grpcio and protobuf are Debian's, and from there,
away from the source and build trees, clients/python/examples/train_and_save.py validates,
plans, builds, trains 5 steps and saves a checkpoint on real daemons."""

import glob
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import zipfile

import deploy_paths as paths
from local_cluster import LocalCluster

WHEEL_DIR = os.path.join(paths.BINARY_DIR, "dist")
EXAMPLE = os.path.join(paths.SOURCE_DIR, "clients", "python", "examples", "train_and_save.py")
TINY = os.path.join(paths.SOURCE_DIR, "examples", "tiny-llama.yaml")


def project_version():
    with open(os.path.join(paths.SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(gptbuilder VERSION (\S+)", f.read()).group(1)


def clean_env(**extra):
    """The environment without anything that would find the package outside the venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "GPTB_SOURCE_DIR", "GPTB_BINARY_DIR")}
    env.update(extra)
    return env


class WheelTest(unittest.TestCase):
    def setUp(self):
        wheels = glob.glob(os.path.join(WHEEL_DIR, "gptbuilder-*.whl"))
        self.assertEqual(len(wheels), 1, f"one gptbuilder wheel in {WHEEL_DIR}: {wheels}")
        self.wheel = wheels[0]

    def test_contents_and_metadata(self):
        self.assertEqual(os.path.basename(self.wheel),
                         f"gptbuilder-{project_version()}-py3-none-any.whl")
        with zipfile.ZipFile(self.wheel) as wheel:
            names = set(wheel.namelist())
            metadata = next(wheel.read(n).decode() for n in names
                            if n.endswith(".dist-info/METADATA"))
            init = wheel.read("gptbuilder/__init__.py").decode()
        for module in ("gptbuilder/client.py", "gptbuilder/errors.py", "gptbuilder/config.py",
                       "gptbuilder/v1/coordinator_pb2.py", "gptbuilder/v1/coordinator_pb2_grpc.py",
                       "gptbuilder/v1/train_pb2.py", "gptbuilder/googleapis/rpc/status_pb2.py",
                       "gptbuilder/googleapis/longrunning/operations_pb2.py"):
            self.assertIn(module, names)
        # No top-level google.*: it would overwrite googleapis-common-protos' files.
        self.assertEqual([n for n in names if n.startswith("google/")], [])
        self.assertIn(f'__version__ = "{project_version()}"', init)
        self.assertIn("Requires-Dist: grpcio", metadata)
        self.assertIn("Requires-Dist: protobuf", metadata)

    def test_installs_offline_and_runs_the_example_on_real_daemons(self):
        directory = tempfile.mkdtemp(prefix="gptb-wheel-test-")
        self.addCleanup(shutil.rmtree, directory, ignore_errors=True)
        venv = os.path.join(directory, "venv")
        # Debian's python3 (it has python3-grpcio and python3-protobuf).
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv],
                       check=True, env=clean_env())
        python = os.path.join(venv, "bin", "python")
        install = subprocess.run([python, "-m", "pip", "install", "--no-index",
                                  "--disable-pip-version-check", self.wheel],
                                 capture_output=True, text=True, env=clean_env(), cwd=directory)
        self.assertEqual(install.returncode, 0, install.stdout + install.stderr)
        where = subprocess.run(
            [python, "-c", "import gptbuilder, grpc; print(gptbuilder.__file__); "
             "print(grpc.__file__); print(gptbuilder.__version__)"],
            capture_output=True, text=True, check=True, env=clean_env(), cwd=directory)
        package, grpc_module, version = where.stdout.split()
        self.assertTrue(package.startswith(venv), package)
        self.assertTrue(grpc_module.startswith("/usr/lib/python3/dist-packages"), grpc_module)
        self.assertEqual(version, project_version())

        checkpoint = os.path.join(directory, "checkpoint")
        with LocalCluster(paths.GPTBD, workers=2, slots=1) as cluster:
            run = subprocess.run(
                [python, EXAMPLE, "--server", cluster.address, "--world-size", "2",
                 "--name", "example", "--steps", "5", "--save", checkpoint, "--timeout", "120",
                 TINY],
                capture_output=True, text=True, timeout=300, env=clean_env(), cwd=directory)
            self.assertEqual(run.returncode, 0, run.stdout + run.stderr + cluster.logs())
        losses = [float(m) for m in re.findall(r"^step \d+: loss (\S+)", run.stdout, re.M)]
        self.assertEqual(len(losses), 5, run.stdout)
        self.assertTrue(all(math.isfinite(l) for l in losses), losses)
        self.assertIn("plan: world size 2", run.stdout)
        self.assertIn("released example", run.stdout)
        saved = glob.glob(os.path.join(checkpoint, "**", "*.safetensors"), recursive=True)
        self.assertTrue(saved, run.stdout)


if __name__ == "__main__":
    unittest.main()
