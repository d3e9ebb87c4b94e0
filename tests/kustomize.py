"""Rendering deploy/kubernetes: `kubectl kustomize` when kubectl is installed, else a small fallback.

The fallback handles exactly the kustomize features the manifests use (resources, namespace,
labels, images, a configMapGenerator from files with its hash suffix, JSON 6902 patches
targeted by kind and name, and an object's deletion by a `$patch: delete` patch) and refuses
anything else, so it can never render silently differently.
When kubectl is there, tests/test_kubernetes.py checks that both renderings agree.
"""

import hashlib
import json
import shutil
import subprocess

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


Obj = dict[str, Any]

_KUSTOMIZATION_KEYS = frozenset(
    {"apiVersion", "kind", "namespace", "labels", "resources", "images", "configMapGenerator", "patches"}
)
_LABEL_KEYS = frozenset({"pairs", "includeSelectors", "includeTemplates"})
_IMAGE_KEYS = frozenset({"name", "newName", "newTag", "digest"})
_GENERATOR_KEYS = frozenset({"name", "files", "behavior"})
_PATCH_KEYS = frozenset({"target", "patch"})
_TARGET_KEYS = frozenset({"kind", "name"})
# The only strategic-merge patch handled: `$patch: delete` naming one object by kind and name.
_DELETE_KEYS = frozenset({"$patch", "apiVersion", "kind", "metadata"})
_CLUSTER_SCOPED = frozenset({"Namespace"})  # the only cluster-scoped kind the manifests hold
# Where a pod spec names a ConfigMap; kustomize rewrites these to the generated (suffixed) name.
_CONFIG_MAP_REFERENCES = frozenset({"configMap", "configMapRef", "configMapKeyRef"})
# Go's json.Marshal escapes these for HTML; kustomize hashes that output, so the hash sees them so.
_GO_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})
# kustomize's (and kubectl's) hash encoding: the first 10 hex digits, with no vowels or look-alikes.
_HASH_LETTERS = str.maketrans("013ae", "ghkmt")


class KustomizationError(ValueError):
    """A kustomization kustomize itself would reject: the subject (a name, a path) and the problem."""

    def __init__(self, subject: str, problem: str) -> None:
        """Name what is wrong, and why."""
        super().__init__(f"{subject}: {problem}")


@dataclass
class _Build:
    objects: list[Obj] = field(default_factory=list)
    generated: set[str] = field(default_factory=set)  # ConfigMaps still waiting for their suffix


def _documents(text: str) -> list[Obj]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _refuse_unknown(what: str, keys: object, known: frozenset[str]) -> None:
    unknown = sorted(set(keys) - known) if isinstance(keys, dict) else ["(not a mapping)"]
    if unknown:
        raise NotImplementedError(f"the fallback renderer does not handle {what}: {unknown}")


# --- images ---------------------------------------------------------------------------------------


def _image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def _walk_containers(node: object, images: list[Obj]) -> None:
    """Kustomize's images transformer: every container and initContainer, wherever it sits."""
    if isinstance(node, list):
        for item in node:
            _walk_containers(item, images)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in {"containers", "initContainers"} and isinstance(value, list):
            for container in value:
                _set_image(container, images)
        else:
            _walk_containers(value, images)


def _set_image(container: Obj, images: list[Obj]) -> None:
    current = container["image"]
    for image in images:
        if _image_name(current) != image["name"]:
            continue
        name = image.get("newName", image["name"])
        if "digest" in image:
            container["image"] = f"{name}@{image['digest']}"
        elif "newTag" in image:
            container["image"] = f"{name}:{image['newTag']}"
        else:
            container["image"] = name + current.removeprefix(_image_name(current))


# --- configMapGenerator ---------------------------------------------------------------------------


def config_map_hash(data: dict[str, str]) -> str:
    """The suffix kustomize v5 gives a generated ConfigMap with this data.

    kustomize hashes the JSON of {"data", "kind", "name"}, but looks the name up under a path that
    never matches (metadata/name as one key), so the name is always empty: the suffix depends on
    the data alone. Mirrored here so that both renderings agree.
    """
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).translate(_GO_JSON_ESCAPES)
    return hashlib.sha256(encoded.encode()).hexdigest()[:10].translate(_HASH_LETTERS)


def _generate(directory: Path, generator: Obj, build: _Build) -> None:
    _refuse_unknown("configMapGenerator entries", generator, _GENERATOR_KEYS)
    data: dict[str, str] = {}
    for entry in generator["files"]:
        key, _, source = entry.rpartition("=")
        path = directory / source
        data[key or path.name] = path.read_text(encoding="utf-8")
    name = generator["name"]
    behavior = generator.get("behavior", "create")
    existing = [o for o in build.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    if behavior == "create":
        if existing:
            raise KustomizationError(name, "exists already: use behavior replace or merge")
        build.objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        )
        build.generated.add(name)
        return
    if behavior not in {"replace", "merge"}:
        raise NotImplementedError(f"the fallback renderer does not handle behavior: {behavior}")
    if len(existing) != 1 or name not in build.generated:
        raise KustomizationError(name, "no generated ConfigMap of that name to replace or merge")
    if behavior == "replace":
        existing[0]["data"] = data
    else:
        existing[0]["data"].update(data)


def _rename_references(node: object, names: dict[str, str]) -> None:
    if isinstance(node, list):
        for item in node:
            _rename_references(item, names)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key in _CONFIG_MAP_REFERENCES and isinstance(value, dict) and value.get("name") in names:
                value["name"] = names[value["name"]]
            else:
                _rename_references(value, names)


def _add_suffixes(build: _Build) -> list[Obj]:
    """Give each generated ConfigMap its hash suffix, and every reference to it the same name."""
    names: dict[str, str] = {}
    for obj in build.objects:
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap" and name in build.generated:
            obj["metadata"]["name"] = names[name] = f"{name}-{config_map_hash(obj['data'])}"
    _rename_references(build.objects, names)
    return build.objects


# --- patches (JSON 6902) --------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizationError(path, "a JSON pointer starts with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _apply_operation(obj: Obj, operation: Obj) -> None:
    _refuse_unknown("patch operations", operation, frozenset({"op", "path", "value"}))
    *parents, last = _pointer(operation["path"])
    node: Any = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    op = operation["op"]
    if op == "test":
        found = node[int(last)] if isinstance(node, list) else node.get(last)
        if found != operation["value"]:
            raise KustomizationError(operation["path"], f"test failed: {found!r} != {operation['value']!r}")
    elif op == "add" and isinstance(node, list):
        node.insert(len(node) if last == "-" else int(last), operation["value"])
    elif op in {"add", "replace"} and isinstance(node, dict):
        if op == "replace" and last not in node:
            raise KustomizationError(operation["path"], "replace: no such path")
        node[last] = operation["value"]
    elif op == "replace" and isinstance(node, list):
        node[int(last)] = operation["value"]
    elif op == "remove":
        del node[int(last) if isinstance(node, list) else last]
    else:
        raise NotImplementedError(f"the fallback renderer does not handle op {op!r} at {operation['path']}")


def _delete(build: _Build, patch: Obj) -> None:
    """A strategic-merge patch without a target: only `$patch: delete` of one named object."""
    documents = _documents(patch["patch"])
    if len(documents) != 1 or not isinstance(documents[0], dict) or documents[0].get("$patch") != "delete":
        raise NotImplementedError(
            "the fallback renderer handles strategic-merge patches of `$patch: delete` only"
        )
    doc = documents[0]
    _refuse_unknown("`$patch: delete` keys", doc, _DELETE_KEYS)
    _refuse_unknown("`$patch: delete` metadata", doc["metadata"], frozenset({"name"}))
    kept = [
        o
        for o in build.objects
        if (o["apiVersion"], o["kind"], o["metadata"]["name"])
        != (doc["apiVersion"], doc["kind"], doc["metadata"]["name"])
    ]
    if len(kept) != len(build.objects) - 1:
        raise KustomizationError(
            f"{doc['kind']}/{doc['metadata']['name']}", "the delete matches no one object"
        )
    build.objects[:] = kept


def _patch(build: _Build, patch: Obj) -> None:
    _refuse_unknown("patches entries", patch, _PATCH_KEYS)
    if "target" not in patch:
        _delete(build, patch)
        return
    target = patch["target"]
    _refuse_unknown("patch targets", target, _TARGET_KEYS)
    operations = _documents(patch["patch"])
    if len(operations) != 1 or not isinstance(operations[0], list):
        raise NotImplementedError(
            "the fallback renderer handles JSON 6902 patches (a list of operations) only"
        )
    matched = [
        o
        for o in build.objects
        if o["kind"] == target.get("kind", o["kind"])
        and o["metadata"]["name"] == target.get("name", o["metadata"]["name"])
    ]
    if not matched:
        raise KustomizationError(str(target), "the patch target matches nothing")
    for obj in matched:
        apply_json_patch(obj, operations[0])


def apply_json_patch(obj: Obj, operations: list[Obj]) -> None:
    """Apply JSON 6902 operations (add, replace, remove, test) to ``obj`` in place."""
    for operation in operations:
        _apply_operation(obj, operation)


# --- one kustomization ----------------------------------------------------------------------------


def _add_labels(objects: list[Obj], entries: list[Obj]) -> None:
    for labels in entries:
        _refuse_unknown("labels entries", labels, _LABEL_KEYS)
        if labels.get("includeSelectors") or labels.get("includeTemplates"):
            raise NotImplementedError("the fallback renderer adds labels to metadata only")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(labels["pairs"])


def _set_namespace(objects: list[Obj], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace  # as kustomize does
        elif obj["kind"] not in _CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace


def _build(directory: Path) -> _Build:
    kustomization = _documents((directory / "kustomization.yaml").read_text(encoding="utf-8"))[0]
    _refuse_unknown("kustomization keys", kustomization, _KUSTOMIZATION_KEYS)
    build = _Build()
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            inner = _build(path)
            build.objects += inner.objects
            build.generated |= inner.generated
        else:
            build.objects += _documents(path.read_text(encoding="utf-8"))
    for generator in kustomization.get("configMapGenerator", []):
        _generate(directory, generator, build)
    for patch in kustomization.get("patches", []):
        _patch(build, patch)
    _add_labels(build.objects, kustomization.get("labels", []))
    for image in kustomization.get("images", []):
        _refuse_unknown("images entries", image, _IMAGE_KEYS)
    _walk_containers(build.objects, kustomization.get("images", []))
    if "namespace" in kustomization:
        _set_namespace(build.objects, kustomization["namespace"])
    return build


def render_fallback(directory: Path) -> list[Obj]:
    """Render a kustomization directory in pure Python (the subset the manifests use)."""
    return _add_suffixes(_build(directory))


def render_kubectl(directory: Path, kubectl: str) -> list[Obj]:
    """Render a kustomization directory with `kubectl kustomize`."""
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=True
    )
    return _documents(result.stdout)


def render(directory: Path) -> list[Obj]:
    """Kubectl's rendering when kubectl is installed, else the fallback's."""
    kubectl = shutil.which("kubectl")
    return render_fallback(directory) if kubectl is None else render_kubectl(directory, kubectl)
