"""A coordinator and CPU workers started from the real gptbd binary on 127.0.0.1 with free ports
(port 0 + --ready-file), for the deploy tests. Children get SIGTERM if the test process dies
(PR_SET_PDEATHSIG), and stop() (or the context manager) ends each one by its pid."""

import ctypes
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request

_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Daemon:
    def __init__(self, name, argv, directory):
        self.name = name
        self.ready_file = os.path.join(directory, f"{name}.json")
        self.log_path = os.path.join(directory, f"{name}.log")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv + ["--ready-file", self.ready_file],
                                        stdout=self._log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.info = None

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            if os.path.exists(self.ready_file):
                with open(self.ready_file) as f:
                    self.info = json.load(f)
                return self.info
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} wrote no ready file in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines=30):
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")

    def stop(self, grace=5.0):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class LocalCluster:
    """`workers` workers with `slots` CPU slots each, registered with one coordinator."""

    def __init__(self, gptbd, workers=2, slots=1, worker_flags=(), coordinator_flags=()):
        self.directory = tempfile.mkdtemp(prefix="gptb-deploy-test-")
        self.coordinator = None
        self.workers = []
        try:
            self.coordinator = Daemon("coordinator", [
                gptbd, "coordinator", "--listen", "127.0.0.1:0", "--metrics-listen",
                "127.0.0.1:0", "--store-port", "0", "--heartbeat-interval", "200ms",
                *coordinator_flags], self.directory)
            info = self.coordinator.wait_ready(60)
            self.address = info["grpc"]
            self.coordinator_metrics = info["metrics"]
            for i in range(workers):
                self.workers.append(Daemon(f"worker{i}", [
                    gptbd, "worker", "--coordinator", self.address, "--listen", "127.0.0.1:0",
                    "--metrics-listen", "127.0.0.1:0", "--slots", str(slots),
                    "--slot-memory-bytes", str(1 << 30), "--name", f"worker{i}",
                    *worker_flags], self.directory))
            self.worker_addresses = []
            self.worker_metrics = []
            for worker in self.workers:
                worker_info = worker.wait_ready(60)
                self.worker_addresses.append(worker_info["grpc"])
                self.worker_metrics.append(worker_info["metrics"])
        except BaseException:
            self.stop()
            raise

    def stop(self):
        for daemon in self.workers + [self.coordinator]:
            if daemon is not None:
                daemon.stop()

    def logs(self):
        return "\n".join(f"--- {d.name}\n{d.log_tail()}"
                         for d in [self.coordinator] + self.workers if d is not None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def scrape(url, timeout=10):
    """The text of a /metrics endpoint (`url` as the ready file gives it)."""
    if not url.startswith("http"):
        url = f"http://{url}"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()
