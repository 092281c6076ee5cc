"""Where kubectl is installed (ctest registers this test only then), `kubectl kustomize` renders
every kustomization of deploy/k8s to exactly what kustomize_render produces, so the structural
checks in manifests_test hold for what `kubectl apply -k` applies."""

import os
import shutil
import subprocess
import unittest

import yaml

import deploy_paths as paths
import kustomize_render


def by_identity(resources):
    return {(r["kind"], r["metadata"].get("namespace", ""), r["metadata"]["name"]): r
            for r in resources}


class KubectlKustomizeTest(unittest.TestCase):
    def test_renders_equal_kubectl_kustomize(self):
        kubectl = os.environ.get("GPTB_KUBECTL") or shutil.which("kubectl")
        self.assertIsNotNone(kubectl, "kubectl not found (ctest registers this test only "
                             "when it is)")
        for directory in ["base"] + paths.OVERLAYS:
            with self.subTest(kustomization=directory):
                path = os.path.join(paths.K8S, directory)
                output = subprocess.run([kubectl, "kustomize", path], check=True,
                                        capture_output=True, text=True).stdout
                theirs = by_identity(d for d in yaml.safe_load_all(output) if d is not None)
                ours = by_identity(kustomize_render.render(path))
                self.assertEqual(sorted(ours), sorted(theirs))
                for key, resource in ours.items():
                    self.assertEqual(resource, theirs[key], key)


if __name__ == "__main__":
    unittest.main()
