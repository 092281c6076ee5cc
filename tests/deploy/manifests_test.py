"""Structural checks of deploy/k8s: every file parses, the overlays render (kustomize_render),
and the rendered objects agree with the daemons: env vars are real flag fallbacks, ports match
the listen addresses, probes are gRPC health probes on the gRPC port (readiness on the service
the daemon marks ready), pods run as non-root with resources set, scrape settings point at the
metrics port, and the GPU overlay asks for GPUs on the host network."""

import glob
import os
import re
import unittest

import yaml

import deploy_paths as paths
import kustomize_render

READY_SERVICE = {"coordinator": "gptbuilder.v1.Coordinator", "worker": "gptbuilder.v1.Worker"}
KNOWN_KINDS = {"Namespace", "ServiceAccount", "Deployment", "DaemonSet", "Service", "Job",
               "PodMonitor", "NetworkPolicy"}
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6,
          "G": 10**9, "T": 10**12}


def quantity_bytes(text):
    match = re.fullmatch(r"(\d+)([KMGT]i?|k)?", str(text))
    if match is None:
        raise ValueError(f"not a memory quantity: {text}")
    return int(match.group(1)) * _UNITS.get(match.group(2) or "", 1)


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def host_of(address):
    return address.rsplit(":", 1)[0]


def by_kind(resources, kind):
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


class ManifestFilesTest(unittest.TestCase):
    def test_every_file_parses_as_kubernetes_objects(self):
        files = glob.glob(os.path.join(paths.K8S, "**", "*.yaml"), recursive=True)
        self.assertGreaterEqual(len(files), 10)
        for path in files:
            with open(path) as f:
                documents = [d for d in yaml.safe_load_all(f) if d is not None]
            self.assertTrue(documents, path)
            for document in documents:
                for key in ("apiVersion", "kind"):
                    self.assertIn(key, document, path)
                if document["kind"] not in ("Kustomization", "Component"):
                    self.assertIn(document["kind"], KNOWN_KINDS, path)
                    self.assertTrue(document["metadata"]["name"], path)


class RenderedOverlayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.flags = {role: paths.daemon_flags(role) for role in READY_SERVICE}
        cls.rendered = {o: kustomize_render.render(os.path.join(paths.K8S, o))
                        for o in paths.OVERLAYS}

    def daemons(self, resources):
        """(role, pod spec, container) of the coordinator Deployment and the worker DaemonSet."""
        coordinator = by_kind(resources, "Deployment")["gptb-coordinator"]
        worker = by_kind(resources, "DaemonSet")["gptb-worker"]
        out = []
        for role, workload in (("coordinator", coordinator), ("worker", worker)):
            pod = workload["spec"]["template"]["spec"]
            containers = pod["containers"]
            self.assertEqual(len(containers), 1)
            out.append((role, workload, pod, containers[0]))
        return out

    def env(self, container):
        return {e["name"]: e for e in container.get("env", [])}

    def setting(self, role, container, env_name):
        """The value a daemon sees for a flag: the manifest's env value, else the default."""
        entry = self.env(container).get(env_name)
        if entry is not None and "value" in entry:
            return entry["value"]
        return self.flags[role][env_name]

    def test_overlays_hold_the_expected_objects(self):
        for overlay, resources in self.rendered.items():
            with self.subTest(overlay=overlay):
                kinds = {(r["kind"], r["metadata"]["name"]) for r in resources}
                for expected in [("ServiceAccount", "gptb"),
                                 ("Deployment", "gptb-coordinator"),
                                 ("DaemonSet", "gptb-worker"),
                                 ("Service", "gptb-coordinator"),
                                 ("Service", "gptb-coordinator-peers")]:
                    self.assertIn(expected, kinds)
                namespaces = by_kind(resources, "Namespace")
                self.assertEqual(len(namespaces), 1)
                namespace = next(iter(namespaces))
                for r in resources:
                    if r["kind"] != "Namespace":
                        self.assertEqual(r["metadata"]["namespace"], namespace)
                    self.assertEqual(r["metadata"]["labels"]["app.kubernetes.io/part-of"],
                                     "gptbuilder")

    def test_role_arguments_and_one_image(self):
        for overlay, resources in self.rendered.items():
            images = set()
            for role, workload, pod, container in self.daemons(resources):
                with self.subTest(overlay=overlay, role=role):
                    self.assertEqual(container["args"][0], role)
                    self.assertNotIn("command", container)  # the image's ENTRYPOINT is gptbd
                    images.add(container["image"])
            self.assertEqual(len(images), 1, images)
            self.assertEqual(next(iter(images)).endswith("-cuda"), overlay.endswith("gpu"))

    def test_single_coordinator(self):
        for resources in self.rendered.values():
            coordinator = by_kind(resources, "Deployment")["gptb-coordinator"]
            self.assertEqual(coordinator["spec"]["replicas"], 1)
            self.assertEqual(coordinator["spec"]["strategy"]["type"], "Recreate")

    def test_env_vars_are_flag_fallbacks_and_references_resolve(self):
        for overlay, resources in self.rendered.items():
            for role, workload, pod, container in self.daemons(resources):
                with self.subTest(overlay=overlay, role=role):
                    defined = set()
                    for entry in container["env"]:
                        name = entry["name"]
                        if name.startswith("GPTB_"):
                            self.assertIn(name, self.flags[role],
                                          f"{name} is not an env fallback of gptbd {role}")
                        for ref in re.findall(r"\$\((\w+)\)", entry.get("value", "")):
                            self.assertIn(ref, defined, f"{name} uses $({ref}) before it is set")
                        defined.add(name)

    def test_ports_match_the_listen_addresses(self):
        for overlay, resources in self.rendered.items():
            for role, workload, pod, container in self.daemons(resources):
                with self.subTest(overlay=overlay, role=role):
                    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
                    listen = self.setting(role, container, "GPTB_LISTEN")
                    metrics = self.setting(role, container, "GPTB_METRICS_LISTEN")
                    # Loopback would be unreachable from other pods and from the kubelet.
                    self.assertEqual(host_of(listen), "0.0.0.0")
                    self.assertEqual(host_of(metrics), "0.0.0.0")
                    self.assertEqual(ports["grpc"], port_of(listen))
                    self.assertEqual(ports["metrics"], port_of(metrics))
                    if role == "coordinator":
                        store = int(self.setting(role, container, "GPTB_STORE_PORT"))
                        self.assertNotEqual(store, 0, "the store needs a fixed port")
                        self.assertEqual(ports["store"], store)
                        self.assertEqual(self.env(container)["GPTB_ADVERTISE_HOST"]["value"],
                                         "$(POD_IP)")
                    else:
                        self.assertEqual(self.env(container)["GPTB_ADVERTISE"]["value"],
                                         f"$(POD_IP):{ports['grpc']}")
                    annotations = workload["spec"]["template"]["metadata"]["annotations"]
                    self.assertEqual(annotations["prometheus.io/scrape"], "true")
                    self.assertEqual(int(annotations["prometheus.io/port"]), ports["metrics"])

    def test_services_reach_the_coordinator(self):
        for overlay, resources in self.rendered.items():
            with self.subTest(overlay=overlay):
                services = by_kind(resources, "Service")
                (_, coordinator, cpod, ccontainer), (_, _, _, wcontainer) = \
                    self.daemons(resources)
                container_ports = {p["name"]: p["containerPort"] for p in ccontainer["ports"]}
                pod_labels = coordinator["spec"]["template"]["metadata"]["labels"]
                for service in services.values():
                    for key, value in service["spec"]["selector"].items():
                        self.assertEqual(pod_labels.get(key), value)
                    for port in service["spec"]["ports"]:
                        self.assertIn(port["targetPort"], container_ports)
                        self.assertEqual(port["port"], container_ports[port["targetPort"]])
                client_ports = {p["name"] for p in services["gptb-coordinator"]["spec"]["ports"]}
                self.assertEqual(client_ports, {"grpc", "metrics"})
                # Workers register before the coordinator can be ready: their Service must
                # publish it regardless.
                peers = services["gptb-coordinator-peers"]
                self.assertTrue(peers["spec"]["publishNotReadyAddresses"])
                self.assertFalse(services["gptb-coordinator"]["spec"].get(
                    "publishNotReadyAddresses", False))
                target = self.env(wcontainer)["GPTB_COORDINATOR"]["value"]
                self.assertEqual(host_of(target), "gptb-coordinator-peers")
                grpc_port = next(p["port"] for p in peers["spec"]["ports"] if p["name"] == "grpc")
                self.assertEqual(port_of(target), grpc_port)

    def test_probes_use_the_grpc_health_service(self):
        for overlay, resources in self.rendered.items():
            for role, workload, pod, container in self.daemons(resources):
                with self.subTest(overlay=overlay, role=role):
                    grpc_port = next(p["containerPort"] for p in container["ports"]
                                     if p["name"] == "grpc")
                    probes = {k: container[k] for k in
                              ("startupProbe", "livenessProbe", "readinessProbe")}
                    for kind, probe in probes.items():
                        self.assertEqual(set(probe) & {"grpc", "httpGet", "exec", "tcpSocket"},
                                         {"grpc"}, kind)
                        self.assertEqual(probe["grpc"]["port"], grpc_port, kind)
                    # Liveness (and startup) ask for the whole server (""); readiness for the
                    # service the daemon turns SERVING once it is part of the cluster.
                    self.assertEqual(probes["livenessProbe"]["grpc"].get("service", ""), "")
                    self.assertEqual(probes["startupProbe"]["grpc"].get("service", ""), "")
                    self.assertEqual(probes["readinessProbe"]["grpc"]["service"],
                                     READY_SERVICE[role])
                    startup = probes["startupProbe"]
                    budget = startup["periodSeconds"] * startup["failureThreshold"]
                    self.assertGreaterEqual(budget, 300 if role == "coordinator" else 600)
                    live = probes["livenessProbe"]
                    self.assertGreaterEqual(live["timeoutSeconds"], 5)
                    self.assertGreaterEqual(live["periodSeconds"] * live["failureThreshold"], 60)

    def test_pods_run_as_non_root_with_resources(self):
        for overlay, resources in self.rendered.items():
            for r in resources:
                if r["kind"] not in ("Deployment", "DaemonSet", "Job"):
                    continue
                pod = r["spec"]["template"]["spec"]
                with self.subTest(overlay=overlay, workload=r["metadata"]["name"]):
                    security = pod["securityContext"]
                    self.assertTrue(security["runAsNonRoot"])
                    self.assertGreater(security["runAsUser"], 0)
                    self.assertEqual(security["seccompProfile"]["type"], "RuntimeDefault")
                    self.assertFalse(pod["automountServiceAccountToken"])
                    for container in pod["containers"]:
                        csec = container["securityContext"]
                        self.assertFalse(csec["allowPrivilegeEscalation"])
                        self.assertTrue(csec["readOnlyRootFilesystem"])
                        self.assertEqual(csec["capabilities"]["drop"], ["ALL"])
                        self.assertFalse(csec.get("privileged", False))
                        requests = container["resources"]["requests"]
                        limits = container["resources"]["limits"]
                        self.assertIn("cpu", requests)
                        self.assertLessEqual(quantity_bytes(requests["memory"]),
                                             quantity_bytes(limits["memory"]))
                        # A read-only root needs a writable /tmp (daemons' temporary files).
                        if r["kind"] != "Job":
                            mounts = {m["mountPath"] for m in container["volumeMounts"]}
                            self.assertIn("/tmp", mounts)

    def test_worker_slots_fit_the_memory_limit(self):
        for overlay, resources in self.rendered.items():
            (_, _, _, _), (role, _, pod, container) = self.daemons(resources)
            slots = int(self.setting(role, container, "GPTB_SLOTS"))
            slot_memory = int(self.setting(role, container, "GPTB_SLOT_MEMORY_BYTES"))
            limit = quantity_bytes(container["resources"]["limits"]["memory"])
            with self.subTest(overlay=overlay):
                if overlay.endswith("gpu"):
                    # Every visible GPU is a slot, admitted against the device's own memory.
                    self.assertEqual((slots, slot_memory), (0, 0))
                else:
                    # The worker's default budget would be the node's memory, not the limit.
                    self.assertGreater(slots * slot_memory, 0)
                    self.assertLess(slots * slot_memory, limit)

    def test_gpu_overlay_requests_gpus_on_the_host_network(self):
        for overlay, resources in self.rendered.items():
            (_, _, _, _), (_, _, pod, container) = self.daemons(resources)
            gpus_request = container["resources"]["requests"].get("nvidia.com/gpu")
            gpus_limit = container["resources"]["limits"].get("nvidia.com/gpu")
            with self.subTest(overlay=overlay):
                if overlay.endswith("gpu"):
                    self.assertGreater(gpus_limit, 0)
                    self.assertEqual(gpus_request, gpus_limit)
                    self.assertTrue(pod["hostNetwork"])
                    self.assertEqual(pod["dnsPolicy"], "ClusterFirstWithHostNet")
                    self.assertIn("/dev/shm",
                                  {m["mountPath"] for m in container["volumeMounts"]})
                else:
                    self.assertIsNone(gpus_limit)
                    self.assertFalse(pod.get("hostNetwork", False))

    def test_only_workers_reach_the_rendezvous_store(self):
        # The c10d store has no authentication: the NetworkPolicy is what keeps it private.
        for overlay, resources in self.rendered.items():
            coordinator = by_kind(resources, "Deployment")["gptb-coordinator"]
            policy = by_kind(resources, "NetworkPolicy")["gptb-coordinator-store"]
            labels = coordinator["spec"]["template"]["metadata"]["labels"]
            with self.subTest(overlay=overlay):
                selector = policy["spec"]["podSelector"]["matchLabels"]
                self.assertTrue(selector.items() <= labels.items())
                self.assertEqual(policy["spec"]["policyTypes"], ["Ingress"])
                store_rules = [r for r in policy["spec"]["ingress"]
                               if any(p["port"] == "store" for p in r.get("ports", []))]
                self.assertEqual(len(store_rules), 1)
                sources = store_rules[0].get("from", [])
                self.assertTrue(sources, "the store port must not be open to everyone")
                if overlay.endswith("gpu"):
                    self.assertIn("ipBlock", sources[0])
                else:
                    self.assertEqual(sources[0]["podSelector"]["matchLabels"]
                                     ["app.kubernetes.io/component"], "worker")
                open_ports = {p["port"] for r in policy["spec"]["ingress"] if "from" not in r
                              for p in r["ports"]}
                self.assertEqual(open_ports, {"grpc", "metrics"})

    def test_demo_job_runs_the_shipped_example(self):
        resources = self.rendered["overlays/cpu-demo"]
        job = by_kind(resources, "Job")["gptb-demo-build"]
        command = job["spec"]["template"]["spec"]["containers"][0]["command"]
        self.assertEqual(command[0], "python3")
        # The Dockerfile puts clients/python/examples/*.py under share/gptbuilder/python and
        # examples/ under share/gptbuilder/examples.
        self.assertEqual(os.path.dirname(command[1]), "/usr/local/share/gptbuilder/python")
        self.assertTrue(os.path.exists(os.path.join(
            paths.SOURCE_DIR, "clients", "python", "examples", os.path.basename(command[1]))))
        config = command[-1]
        self.assertEqual(os.path.dirname(config), "/usr/local/share/gptbuilder/examples")
        self.assertTrue(os.path.exists(os.path.join(paths.SOURCE_DIR, "examples",
                                                     os.path.basename(config))))
        server = next(a for a in command if a.startswith("--server="))
        self.assertEqual(server, "--server=gptb-coordinator:50051")


class PodMonitorTest(unittest.TestCase):
    def test_pod_monitor_selects_both_daemons_metrics_port(self):
        directory = os.path.join(paths.K8S, "components", "prometheus-operator")
        monitor = next(r for r in kustomize_render.render(directory) if r["kind"] == "PodMonitor")
        resources = kustomize_render.render(os.path.join(paths.K8S, "base"))
        selector = monitor["spec"]["selector"]
        endpoint_ports = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
        selected = []
        for r in resources:
            if r["kind"] not in ("Deployment", "DaemonSet"):
                continue
            labels = r["spec"]["template"]["metadata"]["labels"]
            matches = all(labels.get(k) == v for k, v in selector["matchLabels"].items()) and all(
                labels.get(e["key"]) in e["values"] for e in selector["matchExpressions"])
            if matches:
                selected.append(labels["app.kubernetes.io/component"])
                ports = {p["name"] for p in r["spec"]["template"]["spec"]["containers"][0]["ports"]}
                self.assertTrue(endpoint_ports <= ports)
            self.assertIn(monitor["spec"]["jobLabel"], labels)
        self.assertEqual(sorted(selected), ["coordinator", "worker"])


if __name__ == "__main__":
    unittest.main()
