"""Mutual TLS end to end between the real daemons and both clients: certificates made here with
openssl (a CA, one certificate the coordinator and workers share, one for the user, and a
stranger CA with its own client certificate); the coordinator and two workers serve and call each
other over mTLS (registration, heartbeats, the build fan-out); `gptb build --wait` and
`gptb describe` and the installed Python client work with the user's certificate; a client
without a certificate, a plaintext client and a client whose certificate another CA signed are
refused; and the rendezvous store (the c10d TCPStore, which speaks no TLS) listens only on the
address the coordinator was told to use."""

import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import unittest

import grpc

import deploy_paths as paths
import gptbuilder
from local_cluster import LocalCluster

GPTB = os.path.join(paths.BINARY_DIR, "bin", "gptb")
TINY = os.path.join(paths.SOURCE_DIR, "examples", "tiny-llama.yaml")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory):
    """{name: path}: ca, daemon.pem/key (server and client auth, SAN 127.0.0.1), user.pem/key
    (client auth), stranger.pem/key (client auth, signed by another CA)."""
    def ca(name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                "-subj", f"/CN={name}", cwd=directory)

    def leaf(name, issuer, usage, san=None):
        extensions = [f"extendedKeyUsage={usage}", "basicConstraints=CA:FALSE"]
        if san:
            extensions.append(f"subjectAltName={san}")
        with open(os.path.join(directory, f"{name}.ext"), "w") as f:
            f.write("\n".join(extensions) + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
                cwd=directory)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey",
                f"{issuer}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", f"{name}.ext", cwd=directory)

    ca("gptb-test-ca")
    ca("stranger-ca")
    leaf("daemon", "gptb-test-ca", "serverAuth,clientAuth", "IP:127.0.0.1,DNS:localhost")
    leaf("user", "gptb-test-ca", "clientAuth")
    leaf("stranger", "stranger-ca", "clientAuth")
    path = lambda name: os.path.join(directory, name)
    return {"ca": path("gptb-test-ca.pem"), "daemon": path("daemon.pem"),
            "daemon_key": path("daemon.key"), "user": path("user.pem"),
            "user_key": path("user.key"), "stranger": path("stranger.pem"),
            "stranger_key": path("stranger.key")}


def listening_addresses(port):
    """The local addresses of the sockets LISTENing on `port` (from /proc/net/tcp and tcp6)."""
    out = []
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                address, state = fields[1], fields[3]
                host, hex_port = address.split(":")
                if state != "0A" or int(hex_port, 16) != port:
                    continue
                # The kernel prints the address as 32-bit words in host (little-endian) order.
                raw = bytes.fromhex(host)
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                out.append(str(ipaddress.ip_address(raw)))
    return out


class MutualTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.directory = tempfile.mkdtemp(prefix="gptb-mtls-test-")
        cls.certs = make_certificates(cls.directory)
        tls = ["--tls-cert", cls.certs["daemon"], "--tls-key", cls.certs["daemon_key"],
               "--tls-ca", cls.certs["ca"]]
        cls.cluster = LocalCluster(paths.GPTBD, workers=2, slots=1, worker_flags=tls,
                                   coordinator_flags=tls)
        cls.client = gptbuilder.Client(cls.cluster.address, tls_ca=cls.certs["ca"],
                                       tls_cert=cls.certs["user"], tls_key=cls.certs["user_key"])
        try:
            # Registration and heartbeats went worker -> coordinator over mTLS.
            cls.client.wait_for_workers(2, timeout=60)
        except BaseException:
            print(cls.cluster.logs())
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.cluster.stop()
        shutil.rmtree(cls.directory, ignore_errors=True)

    def gptb(self, *args, user="user"):
        tls = ["--tls-ca", self.certs["ca"]]
        if user is not None:
            tls += ["--tls-cert", self.certs[user], "--tls-key", self.certs[f"{user}_key"]]
        return subprocess.run([GPTB, *args, "--server", self.cluster.address, *tls],
                              capture_output=True, text=True, timeout=180)

    def test_cli_and_python_client_build_over_mtls(self):
        built = self.gptb("build", TINY, "--name", "secure", "--world-size", "2",
                          "--set", "pipeline_model_parallel_size=2", "--wait")
        self.assertEqual(built.returncode, 0, built.stderr + self.cluster.logs())
        described = self.gptb("describe", "secure", "--format", "json")
        self.assertEqual(described.returncode, 0, described.stderr)
        stages = json.loads(described.stdout)["stages"]
        self.assertEqual(len(stages), 2)
        # The Python client sees the same model and checksums.
        description = self.client.describe("secure")
        self.assertEqual(len(description.stages), 2)
        self.assertEqual(sorted(r.worker for r in description.ranks), ["worker0", "worker1"])
        step = list(self.client.train("secure", steps=1, seq_length=16,
                                      optimizer={"lr": 1e-3}))
        self.assertEqual(len(step), 1)
        self.client.release("secure")
        self.assertEqual(self.client.list_models(), [])

    def test_clients_without_the_right_certificate_are_refused(self):
        refused = {
            "no client certificate": gptbuilder.Client(self.cluster.address,
                                                        tls_ca=self.certs["ca"], timeout=10),
            "another CA's certificate": gptbuilder.Client(
                self.cluster.address, tls_ca=self.certs["ca"], tls_cert=self.certs["stranger"],
                tls_key=self.certs["stranger_key"], timeout=10),
            "plaintext": gptbuilder.Client(self.cluster.address, timeout=10),
        }
        for what, client in refused.items():
            with self.subTest(what), client:
                with self.assertRaises(gptbuilder.UnavailableError):
                    client.list_models()
        for user in (None, "stranger"):
            with self.subTest(cli=user):
                result = self.gptb("models", user=user)
                self.assertNotEqual(result.returncode, 0)
                self.assertIn("UNAVAILABLE", result.stderr)
        # The workers refuse strangers too (a direct call to one's Worker service).
        worker = self.cluster.worker_addresses[0]
        credentials = grpc.ssl_channel_credentials(root_certificates=read(self.certs["ca"]))
        with grpc.secure_channel(worker, credentials) as channel:
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            with self.assertRaises(grpc.RpcError) as raised:
                check(b"", timeout=10)
            self.assertEqual(raised.exception.code(), grpc.StatusCode.UNAVAILABLE)
        # ... and answer the same call from a peer with the shared certificate.
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read(self.certs["ca"]), private_key=read(self.certs["daemon_key"]),
            certificate_chain=read(self.certs["daemon"]))
        with grpc.secure_channel(worker, credentials) as channel:
            self.assertEqual(channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10),
                             b"\x08\x01")  # HealthCheckResponse{status: SERVING}

    def test_rendezvous_store_listens_only_on_the_coordinators_address(self):
        # The TCPStore has no TLS or authentication of its own: it must not listen on every
        # interface when the coordinator was told to use one address (127.0.0.1 here).
        store = self.cluster.coordinator.info["store"]
        host, port = store.rsplit(":", 1)
        self.assertEqual(host, "127.0.0.1")
        addresses = listening_addresses(int(port))
        self.assertTrue(addresses, f"nothing listens on the store port {port}")
        self.assertEqual(sorted(set(addresses)), ["127.0.0.1"], addresses)


if __name__ == "__main__":
    unittest.main()
