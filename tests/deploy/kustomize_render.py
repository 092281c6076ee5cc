"""A small kustomize renderer for the deploy tests, so that the overlays are checked as they
would be applied even where kustomize / kubectl is not installed (deploy_kustomize_kubectl_test
compares it with `kubectl kustomize` where kubectl is).

It supports exactly what deploy/k8s uses, and refuses anything else rather than ignore it:
`resources` (files and directories), `components`, `namespace`, `labels` (metadata only),
`images` (newName / newTag) and `patches` given by `path` as strategic-merge patches (maps
merge; lists of containers, env, ports, volumes and volumeMounts merge by their key with the
patch's items first, as kustomize orders them; other lists are replaced).
"""

import copy
import os

import yaml

_SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "components", "namespace", "labels",
                   "images", "patches"}
# Strategic-merge keys of the list fields deploy/k8s patches.
_MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name",
               "ports": "containerPort", "volumes": "name", "volumeMounts": "mountPath",
               "tolerations": None, "args": None, "command": None}
_CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                   "PersistentVolume", "StorageClass", "PriorityClass"}


class RenderError(Exception):
    pass


def _load_documents(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def _strategic_merge(base, patch, key=None):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            if isinstance(v, dict) and "$patch" in v or k.startswith("$"):
                raise RenderError(f"patch directive at '{k}' is not supported")
            out[k] = _strategic_merge(base[k], v, k) if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        merge_key = _MERGE_KEYS.get(key)
        if merge_key is None or not all(isinstance(i, dict) for i in base + patch):
            return copy.deepcopy(patch)
        by_key = {item[merge_key]: item for item in base}
        patched_keys = [item[merge_key] for item in patch]
        merged = [_strategic_merge(by_key[item[merge_key]], item, None)
                  if item[merge_key] in by_key else copy.deepcopy(item) for item in patch]
        return merged + [copy.deepcopy(i) for i in base if i[merge_key] not in patched_keys]
    return copy.deepcopy(patch)


def _identity(resource):
    return (resource["kind"], resource["metadata"]["name"])


def _set_image(container, images):
    name, _, tag = container["image"].partition(":")
    for image in images:
        if image["name"] == name:
            container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
            return


def _pod_specs(resource):
    spec = resource.get("spec", {})
    if resource["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    template = spec.get("template")
    return [template["spec"]] if template else []


def render(directory):
    """The resources `directory`'s kustomization produces, in resource order."""
    path = os.path.join(directory, "kustomization.yaml")
    with open(path) as f:
        kustomization = yaml.safe_load(f)
    unknown = set(kustomization) - _SUPPORTED_KEYS
    if unknown:
        raise RenderError(f"{path}: unsupported keys {sorted(unknown)}")
    resources = []
    for entry in kustomization.get("resources", []) + kustomization.get("components", []):
        target = os.path.normpath(os.path.join(directory, entry))
        resources += render(target) if os.path.isdir(target) else _load_documents(target)
    seen = set()
    for resource in resources:
        if _identity(resource) in seen:
            raise RenderError(f"{path}: {_identity(resource)} is defined twice")
        seen.add(_identity(resource))

    for entry in kustomization.get("patches", []):
        if set(entry) != {"path"}:
            raise RenderError(f"{path}: only patches given by `path` are supported")
        for patch in _load_documents(os.path.join(directory, entry["path"])):
            matches = [i for i, r in enumerate(resources) if _identity(r) == _identity(patch)]
            if len(matches) != 1:
                raise RenderError(f"{path}: patch {_identity(patch)} matches {len(matches)} "
                                  "resources")
            i = matches[0]
            resources[i] = _strategic_merge(resources[i], patch)

    for entry in kustomization.get("labels", []):
        if set(entry) - {"pairs"}:
            raise RenderError(f"{path}: labels support only `pairs`")
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(entry["pairs"])
    if "namespace" in kustomization:
        for resource in resources:
            if resource["kind"] not in _CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = kustomization["namespace"]
    images = kustomization.get("images", [])
    for resource in resources:
        for pod in _pod_specs(resource):
            for container in pod.get("containers", []) + pod.get("initContainers", []):
                _set_image(container, images)
    return resources
