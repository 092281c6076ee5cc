"""The CPU image, built and run here (label `image`; not in the default CI run, see README):
scripts/image builds gptbuilder:dev (docker, or podman with a local Debian base when no registry
answers; cached layers make a rebuild with no source change quick), and then, in containers of
that image:
- `gptbd coordinator --help` runs (the binaries find every library they load);
- it runs as a non-root user, holds no compiler, no -dev package and no Python environment of the
  build, and its /usr/local/lib/gptbuilder holds exactly what --runtime-libraries derives;
- a coordinator and two workers (host network, 127.0.0.1) build the default model
  (examples/default.yaml, tp 2 x pp 2 on 2 workers x 2 slots), `gptb describe` prints what the
  workers hold, and the Python client installed in the image sees it READY."""

import json
import os
import shlex
import subprocess
import tempfile
import time
import unittest

import deploy_paths as paths

IMAGE = os.environ.get("GPTB_IMAGE_TAG", "gptbuilder:dev")
SCRIPT = os.path.join(paths.SOURCE_DIR, "scripts", "image")
# Within this machine's hard limits (podman's defaults ask for more; see scripts/image).
RUN_LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
EXAMPLES = "/usr/local/share/gptbuilder/examples"


class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.engine = shlex.split(subprocess.run([SCRIPT, "--print-engine"], check=True,
                                                capture_output=True, text=True).stdout)
        started = time.monotonic()
        subprocess.run([SCRIPT, "--tag", IMAGE], check=True, timeout=5400)
        print(f"scripts/image: {time.monotonic() - started:.0f} s", flush=True)
        cls.containers = []

    @classmethod
    def tearDownClass(cls):
        for name in cls.containers:
            subprocess.run([*cls.engine, "rm", "-f", "-t", "5", name], capture_output=True)

    def run_in_image(self, *args, entrypoint=None, check=True, timeout=300):
        command = [*self.engine, "run", "--rm", "--network", "host", *RUN_LIMITS]
        if entrypoint:
            command += ["--entrypoint", entrypoint]
        result = subprocess.run([*command, IMAGE, *args], capture_output=True, text=True,
                                timeout=timeout)
        if check:
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        return result

    def test_help(self):
        result = self.run_in_image("coordinator", "--help")
        self.assertIn("--listen", result.stdout)
        self.assertIn("GPTB_", result.stdout)
        self.assertIn("build a model", self.run_in_image("--help", entrypoint="gptb").stdout)

    def test_runtime_contents(self):
        self.assertEqual(self.run_in_image("-u", entrypoint="id").stdout.strip(), "10001")
        packages = self.run_in_image("-W", "-f", "${Package}\\n",
                                     entrypoint="dpkg-query").stdout.split()
        self.assertIn("libgrpc++1.51", packages)
        for package in packages:
            self.assertFalse(package.endswith("-dev"), package)
            self.assertNotIn(package, ("gcc", "g++", "cpp", "cmake", "clang", "ninja-build",
                                       "python3-pip", "python3-venv"))
        script = ("ls /usr/local/lib/gptbuilder; test ! -e /opt/gptb-venv && echo no-venv; "
                  "command -v cc c++ nvcc || echo no-compiler; "
                  "python3 -c 'import gptbuilder; print(gptbuilder.__file__)'")
        out = self.run_in_image("-c", script, entrypoint="sh").stdout.split()
        libraries = sorted(n for n in out if n.startswith("lib"))
        self.assertIn("no-venv", out)
        self.assertIn("no-compiler", out)
        self.assertTrue(any(p.startswith("/usr/local/lib/python3") and
                            p.endswith("gptbuilder/__init__.py") for p in out), out)
        # The wheel's libraries gptbd and gptb load, and nothing else of the wheel.
        self.assertIn("libtorch_cpu.so", libraries)
        self.assertIn("libc10.so", libraries)
        self.assertFalse([n for n in libraries if n.startswith(("libtorch_cuda", "libcudnn",
                                                                 "libnccl", "libcublas"))])
        loaded = self.run_in_image("-c", "ldd /usr/local/bin/gptbd /usr/local/bin/gptb",
                                   entrypoint="sh").stdout
        self.assertNotIn("not found", loaded)
        for library in libraries:
            self.assertIn(f"/usr/local/lib/gptbuilder/{library}", loaded)

    def start(self, name, directory, *args):
        container = f"gptb-image-test-{os.getpid()}-{name}"
        self.containers.append(container)
        subprocess.run([*self.engine, "run", "-d", "--rm", "--name", container, "--network",
                        "host", *RUN_LIMITS, "-v", f"{directory}:/run/gptb", IMAGE, *args,
                        "--ready-file", f"/run/gptb/{name}.json"],
                       check=True, capture_output=True, timeout=60)
        ready = os.path.join(directory, f"{name}.json")
        deadline = time.monotonic() + 120
        while not os.path.exists(ready):
            state = subprocess.run([*self.engine, "inspect", "-f", "{{.State.Running}}",
                                    container], capture_output=True, text=True).stdout.strip()
            if state != "true" or time.monotonic() > deadline:
                logs = subprocess.run([*self.engine, "logs", container], capture_output=True,
                                      text=True)
                self.fail(f"{name} wrote no ready file (running: {state}):\n"
                          f"{logs.stdout}{logs.stderr}")
            time.sleep(0.2)
        time.sleep(0.1)  # the file is written whole, but let the writer close it
        with open(ready) as f:
            return json.load(f)

    def test_cluster_of_containers_builds_the_default_model(self):
        with tempfile.TemporaryDirectory(prefix="gptb-image-test-") as directory:
            os.chmod(directory, 0o777)  # the containers run as 10001
            coordinator = self.start("coordinator", directory, "coordinator", "--listen",
                                     "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                                     "--store-port", "0")
            address = coordinator["grpc"]
            for i in range(2):
                self.start(f"worker{i}", directory, "worker", "--coordinator", address,
                           "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                           "--slots", "2", "--slot-memory-bytes", str(2 << 30), "--name",
                           f"worker{i}")
            built = self.run_in_image("build", f"{EXAMPLES}/default.yaml", "--name", "default",
                                      "--wait", "--server", address, entrypoint="gptb",
                                      check=False)
            self.assertEqual(built.returncode, 0, built.stdout + built.stderr)
            described = self.run_in_image("describe", "default", "--format", "json", "--server",
                                          address, entrypoint="gptb")
            stages = json.loads(described.stdout)["stages"]
            self.assertEqual(sorted((s["pp_rank"], s["tp_rank"]) for s in stages),
                             [(0, 0), (0, 1), (1, 0), (1, 1)])
            script = ("import gptbuilder, sys; c = gptbuilder.Client(sys.argv[1]); "
                      "m = c.get('default'); "
                      "print(gptbuilder.Model.State.Name(m.state), "
                      "sorted({p.worker for p in m.placement}))")
            seen = self.run_in_image("-c", script, address, entrypoint="python3").stdout
            self.assertEqual(seen.strip(), "READY ['worker0', 'worker1']")


if __name__ == "__main__":
    unittest.main()
