"""``kubectl kustomize`` offline, for the subset of kustomize the bakes' manifests use.

kubectl and kustomize cannot be installed here (no binary downloads; Debian's kubernetes-client
is 1.20, whose kustomize predates components and `replicas`), and no maintained Python library
renders kustomizations. So this renders the fields the manifests use, as kustomize v5 does, and
refuses any other field, so a manifest that grows past it fails loudly instead of rendering
wrong: ``resources`` (files and directories), ``namespace``, ``configMapGenerator`` (``envs``,
``literals``, ``behavior`` create/replace/merge; a content-hash suffix on the name, propagated
to the pod specs that refer to it), ``patches`` (strategic-merge files, matched by kind and
name), ``replicas`` and ``images``. The hash suffix is not byte-identical to kustomize's.
It also refuses what real kustomize refuses: an overlay inside its base's directory.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]
KNOWN_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "namespace",
        "resources",
        "configMapGenerator",
        "patches",
        "replicas",
        "images",
    }
)
CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding"})
GENERATED = "__generated__"  # marks a generated ConfigMap until the top level names it


class KustomizeError(ValueError):
    """The kustomization uses something this renderer does not, or kustomize refuses."""


def build(root: Path) -> list[Object]:
    """The objects ``kubectl kustomize root`` prints, in order."""
    objects = _build(root.resolve(), visited=())
    _name_generated(objects)
    return objects


def _build(root: Path, visited: tuple[Path, ...]) -> list[Object]:
    for seen in visited:
        if seen.is_relative_to(root):
            raise KustomizeError(f"cycle detected: candidate root {root} contains visited {seen}")
    kustomization: Object = yaml.safe_load((root / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KNOWN_FIELDS
    if unknown:
        raise KustomizeError(f"{root}: fields this renderer does not know: {sorted(unknown)}")
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        path = (root / entry).resolve()
        if path.is_dir():
            objects += _build(path, (*visited, root))
        elif path.is_relative_to(root):
            objects += [d for d in yaml.safe_load_all(path.read_text()) if d]
        else:
            raise KustomizeError(f"security: file {path} is not in or below {root}")
    for generator in kustomization.get("configMapGenerator", []):
        _generate(root, generator, objects)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise KustomizeError(f"{root}: only `patches: - path:` is supported, got {patch}")
        document = yaml.safe_load((root / patch["path"]).read_text())
        target = _find(objects, document["kind"], document["metadata"]["name"])
        merged = _merge(target, document)
        target.clear()
        target.update(merged)
    for entry in kustomization.get("replicas", []):
        _find(objects, "Deployment", entry["name"])["spec"]["replicas"] = int(entry["count"])
    for image in kustomization.get("images", []):
        for container in _containers(objects):
            if container["image"].split(":")[0] == image["name"]:
                tag = image.get("newTag")
                container["image"] = image.get("newName", image["name"]) + (
                    f":{tag}" if tag else ""
                )
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    return objects


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines, comments and blank lines skipped, as kustomize reads ``envs``."""
    lines = (line.strip() for line in path.read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def _generate(root: Path, generator: Object, objects: list[Object]) -> None:
    data: dict[str, str] = {}
    for env_file in generator.get("envs", []):
        data.update(read_env_file(root / env_file))
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    behavior = generator.get("behavior", "create")
    name = generator["name"]
    if behavior == "create":
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, GENERATED: True},
                "data": data,
            }
        )
        return
    existing = _find(objects, "ConfigMap", name)
    if behavior == "replace":
        existing["data"] = data
    elif behavior == "merge":
        existing["data"] = {**existing["data"], **data}
    else:
        raise KustomizeError(f"unknown configMapGenerator behavior {behavior!r}")


def _find(objects: list[Object], kind: str, name: str) -> Object:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(found) != 1:
        raise KustomizeError(f"expected one {kind} named {name}, found {len(found)}")
    return found[0]


def _merge(base: Any, patch: Any) -> Any:
    """Strategic merge as far as the manifests need: maps merge, lists of named maps merge by
    name, other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    named = isinstance(base, list) and isinstance(patch, list)
    if named and all(isinstance(i, dict) and "name" in i for i in [*base, *patch]):
        by_name = {item["name"]: item for item in base}
        merged_list = [_merge(by_name.get(i["name"], {}), i) for i in patch]
        patched = {i["name"] for i in patch}
        return [i for i in base if i["name"] not in patched] + merged_list
    return copy.deepcopy(patch)


def pod_specs(objects: list[Object]) -> Iterator[Object]:
    for obj in objects:
        if obj["kind"] in {"Deployment", "Job", "StatefulSet", "DaemonSet"}:
            yield obj["spec"]["template"]["spec"]


def _containers(objects: list[Object]) -> Iterator[Object]:
    for pod in pod_specs(objects):
        yield from pod.get("initContainers", [])
        yield from pod["containers"]


def _name_generated(objects: list[Object]) -> None:
    """Suffix each generated ConfigMap's name with a hash of its data; rename its references."""
    renamed: dict[str, str] = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"].pop(GENERATED, False):
            encoded = json.dumps(obj["data"], sort_keys=True).encode()
            suffix = hashlib.sha256(encoded).hexdigest()[:10]
            renamed[obj["metadata"]["name"]] = new = f"{obj['metadata']['name']}-{suffix}"
            obj["metadata"]["name"] = new
    for pod in pod_specs(objects):
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                ref = volume["configMap"]
                ref["name"] = renamed.get(ref["name"], ref["name"])
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef")
                if ref is not None:
                    ref["name"] = renamed.get(ref["name"], ref["name"])
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("configMapKeyRef")
                if ref is not None:
                    ref["name"] = renamed.get(ref["name"], ref["name"])
