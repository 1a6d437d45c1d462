"""What the cluster receives: cluster secret -> ApplicationSet template -> Application -> kustomize -> objects.

Base manifests may carry neutral placeholders that an ApplicationSet patches with cluster-secret
annotations (docs/architecture.md). Rules judge the effective objects; plain repos with literal values
pass through unchanged. Values that cannot be rendered stay as text containing "{{".
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonpatch
import jsonpointer
import yaml

from harness.gate.hcl import as_mapping, decoded
from harness.gate.loaders import yaml_documents
from harness.gate.model import ClusterSecret, Location, Manifest, Rendered, TerraformModel, as_dict, as_list, text

CLUSTER_SECRET_LABEL = "argocd.argoproj.io/secret-type"
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def cluster_secrets(terraform: TerraformModel, manifests: Sequence[Manifest]) -> list[ClusterSecret]:
    found: list[ClusterSecret] = []
    for secret in terraform.of_type("kubernetes_secret", "kubernetes_secret_v1"):
        metadata = secret.block("metadata")
        labels = {str(k): str(v) for k, v in as_mapping(metadata.get("labels")).items()}
        if labels.get(CLUSTER_SECRET_LABEL) != "cluster":
            continue
        data = as_mapping(secret.get("data")) or as_mapping(secret.get("string_data"))
        found.append(
            ClusterSecret(
                name=text(data.get("name")) or text(metadata.get("name")) or secret.name,
                server=text(data.get("server")) or "",
                labels=labels,
                annotations=dict(as_mapping(metadata.get("annotations"))),
                location=Location(secret.file, secret.line_of("metadata")),
            )
        )
    for manifest in manifests:
        labels = (manifest.map("metadata", "labels")) if manifest.kind == "Secret" else {}
        if labels.get(CLUSTER_SECRET_LABEL) == "cluster":
            data = manifest.map("stringData")
            found.append(
                ClusterSecret(
                    name=str(data.get("name", manifest.name)),
                    server=str(data.get("server", "")),
                    labels={str(k): str(v) for k, v in labels.items()},
                    annotations=dict(manifest.map("metadata", "annotations")),
                    location=Location(manifest.file, manifest.line),
                )
            )
    return found


def _matches(labels: Mapping[str, str], selector: Mapping[str, Any]) -> bool:
    for key, value in as_dict(selector.get("matchLabels")).items():
        if labels.get(str(key)) != str(value):
            return False
    for expression in as_list(selector.get("matchExpressions")):
        key, operator = str(expression.get("key")), expression.get("operator")
        values = [str(v) for v in as_list(expression.get("values"))]
        present = key in labels
        if (operator == "In" and labels.get(key) not in values) or (operator == "NotIn" and labels.get(key) in values):
            return False
        if (operator == "Exists" and not present) or (operator == "DoesNotExist" and present):
            return False
    return True


def normalized_name(name: str) -> str:
    """The cluster generator's `nameNormalized` (Argo CD applicationset/utils SanitizeName): lowercase,
    anything but [-a-z0-9.] replaced by '-', at most 253 characters, no leading or trailing '-' or '.'."""
    return re.sub(r"[^-a-z0-9.]", "-", name.lower())[:253].strip("-.")


def generator_params(generator: Mapping[str, Any], secrets: Sequence[ClusterSecret]) -> list[dict[str, Any]] | None:
    """Parameter sets of one generator; None when the generator kind is not evaluated offline."""
    if "clusters" in generator:
        selector = as_dict(as_dict(generator.get("clusters")).get("selector"))
        values = as_dict(as_dict(generator.get("clusters")).get("values"))
        return [
            {
                "name": s.name,
                "nameNormalized": normalized_name(s.name),
                "server": s.server,
                "metadata": {"labels": s.labels, "annotations": s.annotations},
                "values": values,
                "__secret__": s,
            }
            for s in secrets
            if _matches(s.labels, selector)
        ]
    if "list" in generator:
        return [dict(e) for e in as_list(as_dict(generator.get("list")).get("elements")) if isinstance(e, dict)]
    if "matrix" in generator:
        parts = [generator_params(g, secrets) for g in as_list(as_dict(generator.get("matrix")).get("generators"))]
        if len(parts) != 2 or parts[0] is None or parts[1] is None:
            return None
        return [{**a, **b} for a in parts[0] for b in parts[1]]
    return None


_GO_EXPR = re.compile(r"{{-?\s*(.*?)\s*-?}}")


def _lookup_path(params: Mapping[str, Any], dotted: str) -> Any:
    value: Any = params
    for part in [p for p in dotted.split(".") if p]:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _go_expression(expression: str, params: Mapping[str, Any]) -> Any:
    expression = expression.split("|")[0].strip()
    index = re.fullmatch(r'index\s+(\.[\w.]*)\s+((?:"[^"]*"\s*)+)', expression)
    if index:
        value = _lookup_path(params, index.group(1))
        for key in re.findall(r'"([^"]*)"', index.group(2)):
            value = value.get(key) if isinstance(value, Mapping) else None
        return value
    if expression.startswith("."):
        return _lookup_path(params, expression[1:])
    return None


def missing_parameters(
    template: Any, params: Mapping[str, Any], go_template: bool, path: tuple[Any, ...] = ()
) -> list[tuple[tuple[Any, ...], str]]:
    """(field path, expression) of every template expression the parameters do not provide."""
    if isinstance(template, dict):
        return [m for k, v in template.items() for m in missing_parameters(v, params, go_template, (*path, k))]
    if isinstance(template, list):
        return [m for i, v in enumerate(template) for m in missing_parameters(v, params, go_template, (*path, i))]
    if not isinstance(template, str):
        return []
    missing = []
    for match in _GO_EXPR.finditer(template):
        expression = match.group(1)
        found = _go_expression(expression, params) if go_template else _lookup_path(params, expression.strip())
        if found is None:
            missing.append((path, expression))
    return missing


def render_template(value: Any, params: Mapping[str, Any], go_template: bool) -> Any:
    """Substitute generator parameters into every string of a template; unresolvable ones are left as written."""
    if isinstance(value, dict):
        return {k: render_template(v, params, go_template) for k, v in value.items()}
    if isinstance(value, list):
        return [render_template(v, params, go_template) for v in value]
    if not isinstance(value, str) or "{{" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        expression = match.group(1)
        result = _go_expression(expression, params) if go_template else _lookup_path(params, expression.strip())
        rendered = text(decoded(result)) if result is not None else None
        return match.group(0) if rendered is None else rendered

    return _GO_EXPR.sub(substitute, value)


def _shifted_lines(lines: Mapping[tuple[Any, ...], int], prefix: tuple[Any, ...]) -> dict[tuple[Any, ...], int]:
    return {path[len(prefix) :]: line for path, line in lines.items() if path[: len(prefix)] == prefix}


def applications(manifests: Sequence[Manifest], secrets: Sequence[ClusterSecret]) -> list[Manifest]:
    """Applications as written plus those each ApplicationSet renders for each parameter set.

    A generator that yields nothing (no cluster secret matches) still renders once with no parameters,
    so its source path and patches are followed; the values it would template stay unresolved.
    """
    apps = [m for m in manifests if m.kind == "Application" and m.group == "argoproj.io"]
    for appset in (m for m in manifests if m.kind == "ApplicationSet" and m.group == "argoproj.io"):
        spec = appset.map("spec")
        template = spec.get("template")
        if not isinstance(template, dict):
            continue
        go_template = bool(spec.get("goTemplate"))
        for generator in as_list(spec.get("generators")):
            params_list = generator_params(generator, secrets) if isinstance(generator, dict) else None
            if not params_list:
                params_list = [{}]
            for params in params_list:
                doc = render_template(copy.deepcopy(template), params, go_template)
                doc = {"apiVersion": appset.api_version, "kind": "Application", **doc}
                secret = params.get("__secret__")
                origin = f"ApplicationSet {appset.name}" + (f" for cluster {secret.name}" if secret else "")
                apps.append(
                    Manifest(
                        doc,
                        appset.file,
                        appset.where("spec", "template").line,
                        _shifted_lines(appset.lines, ("spec", "template")),
                        origin,
                    )
                )
    return apps


def _sources(app: Manifest) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    spec = app.map("spec")
    if isinstance(spec.get("source"), dict):
        return [(("spec", "source"), spec["source"])]
    return [(("spec", "sources", i), s) for i, s in enumerate(as_list(spec.get("sources"))) if isinstance(s, dict)]


def render(terraform: TerraformModel, manifests: Sequence[Manifest], gitops_roots: Sequence[Path]) -> Rendered:
    secrets = cluster_secrets(terraform, manifests)
    apps = applications(manifests, secrets)
    resolved = {file: file.resolve() for file in {m.file for m in manifests}}  # once per file, not per document
    by_file: dict[Path, list[Manifest]] = {}
    for manifest in manifests:
        by_file.setdefault(resolved[manifest.file], []).append(manifest)
    result = Rendered(objects=[], applications=apps, cluster_secrets=secrets)
    # Source paths are relative to the repository root, which may be any ancestor of a GitOps root.
    bases = [b for r in gitops_roots for b in (r.resolve(), *r.resolve().parents)]
    for app in apps:
        for source_path, source in _sources(app):
            path = source.get("path")
            if not isinstance(path, str) or "{{" in path or source.get("chart"):
                continue
            directory = next((b / path for b in bases if (b / path).is_dir()), None)
            if directory is None:
                result.missing_paths.append((app, path))
                continue
            built = build(directory.resolve(), by_file, result.consumed, problems=result.patch_problems)
            patches = as_list(as_dict(source.get("kustomize")).get("patches"))
            for index, patch in enumerate(patches):
                where = app.where(*source_path, "kustomize", "patches", index)
                failed = len(result.patch_problems)
                before = built
                built = [_apply_patch_entry(m, patch, where, directory, result.patch_problems) for m in built]
                if failed == len(result.patch_problems) and all(
                    old is new for old, new in zip(before, built, strict=True)
                ):
                    result.unapplied_patches.append((where, _unapplied(patch, path)))
            origin = f"{app.origin or 'Application ' + app.name}, path {path}"
            for manifest in built:
                manifest.origin = origin
                result.delivered_by[id(manifest)] = app
            result.objects.extend(built)
    for manifest in manifests:
        if resolved[manifest.file] in result.consumed or manifest.kind in ("Kustomization", "Component"):
            continue
        result.objects.append(manifest)
    result.objects.extend(a for a in apps if a.origin)
    return result


def _unapplied(patch: Any, path: str) -> str:
    """Why an Application's patch changed nothing: Argo CD would fail the sync on either."""
    body = patch.get("patch") if isinstance(patch, dict) else None
    if isinstance(body, str):
        try:
            yaml.safe_load(body)
        except yaml.YAMLError as error:
            return f"patch is not YAML once rendered ({error.__class__.__name__})"
    target = patch.get("target") if isinstance(patch, dict) else None
    return f"patch target {target} matches no manifest in {path}"


def _kustomization(directory: Path) -> Path | None:
    return next((directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()), None)


def _documents_of(file: Path, by_file: Mapping[Path, list[Manifest]]) -> list[Manifest]:
    if file in by_file:
        return [copy.deepcopy(m) for m in by_file[file]]
    return [Manifest(d, file, line, lines) for d, line, lines in yaml_documents(file) if isinstance(d, dict)]


def build(
    directory: Path,
    by_file: Mapping[Path, list[Manifest]],
    consumed: set[Path],
    depth: int = 0,
    problems: list[tuple[Location, str]] | None = None,
) -> list[Manifest]:
    """`kustomize build` for a common subset: resources, patches (JSON6902 and strategic merge),
    patchesJson6902, patchesStrategicMerge, images, namespace; a directory without a kustomization is read
    whole. A patch that kustomize would refuse (RFC 6902) is left out and its reason added to `problems`."""
    kustomization = _kustomization(directory)
    if kustomization is None:
        files = sorted(p.resolve() for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        consumed.update(files)
        return [m for f in files for m in _documents_of(f, by_file)]
    consumed.add(kustomization.resolve())
    documents = yaml_documents(kustomization)
    config = documents[0][0] if documents and isinstance(documents[0][0], dict) else {}
    config_lines = documents[0][2] if documents else {}
    objects: list[Manifest] = []
    for entry in as_list(config.get("resources")):
        target = (directory / str(entry)).resolve()
        if target.is_dir() and depth < 20:
            objects.extend(build(target, by_file, consumed, depth + 1, problems))
        elif target.is_file():
            consumed.add(target)
            objects.extend(_documents_of(target, by_file))
    for index, patch in enumerate(as_list(config.get("patches"))):
        where = Location(kustomization, config_lines.get(("patches", index), 1))
        objects = [_apply_patch_entry(m, patch, where, directory, problems) for m in objects]
    for index, patch in enumerate(as_list(config.get("patchesJson6902"))):
        where = Location(kustomization, config_lines.get(("patchesJson6902", index), 1))
        objects = [_apply_patch_entry(m, patch, where, directory, problems) for m in objects]
    for index, path in enumerate(as_list(config.get("patchesStrategicMerge"))):
        where = Location(kustomization, config_lines.get(("patchesStrategicMerge", index), 1))
        objects = [_apply_patch_entry(m, {"path": path}, where, directory, problems) for m in objects]
    for image in as_list(config.get("images")):
        if isinstance(image, dict) and isinstance(image.get("name"), str):
            where = Location(kustomization, config_lines.get(("images", config["images"].index(image)), 1))
            for manifest in objects:
                _set_image(manifest, image, where)
    namespace = config.get("namespace")
    if isinstance(namespace, str):
        for manifest in objects:
            manifest.doc.setdefault("metadata", {})["namespace"] = namespace
    return objects


def _set_image(manifest: Manifest, rule: Mapping[str, Any], where: Location) -> None:
    """kustomize `images`: newName / newTag / digest for containers whose image repository is `name`."""
    for path in (("spec", "template", "spec"), ("spec", "jobTemplate", "spec", "template", "spec"), ("spec",)):
        spec = manifest.get(*path)
        if not isinstance(spec, dict):
            continue
        for group in ("initContainers", "containers"):
            for index, container in enumerate(as_list(spec.get(group))):
                image = container.get("image") if isinstance(container, dict) else None
                if not isinstance(image, str):
                    continue
                repository = image.split("@")[0]
                tag = ""
                if ":" in repository.rsplit("/", 1)[-1]:
                    repository, tag = repository.rsplit(":", 1)
                if repository != rule["name"]:
                    continue
                new = str(rule.get("newName") or repository)
                if rule.get("digest"):
                    new += f"@{rule['digest']}"
                elif rule.get("newTag") or tag:
                    new += f":{rule.get('newTag') or tag}"
                container["image"] = new
                field_path = (*path, group, index, "image")
                manifest.sources[field_path] = where


def _target_matches(manifest: Manifest, target: Mapping[str, Any]) -> bool:
    checks = {
        "kind": manifest.kind,
        "name": manifest.name,
        "namespace": manifest.namespace,
        "group": manifest.group,
        "version": manifest.api_version.rpartition("/")[2],
    }
    for key, actual in checks.items():
        wanted = target.get(key)
        if wanted is not None and not re.fullmatch(str(wanted), actual):
            return False
    selector = target.get("labelSelector")
    if isinstance(selector, str):
        labels = manifest.map("metadata", "labels")
        for term in selector.split(","):
            key, _, value = term.partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
    return True


def _apply_patch_entry(
    manifest: Manifest, entry: Any, where: Location, directory: Path, problems: list[tuple[Location, str]] | None = None
) -> Manifest:
    if not isinstance(entry, dict):
        return manifest
    body: Any = entry.get("patch")
    if body is None and isinstance(entry.get("path"), str):
        file = directory / entry["path"]
        documents = yaml_documents(file) if file.is_file() else []
        body = documents[0][0] if documents else None
        where = Location(file, documents[0][1] if documents else 1)
    elif isinstance(body, str):
        try:
            body = yaml.safe_load(body)
        except yaml.YAMLError:
            return manifest
    target = entry.get("target")
    if isinstance(body, list):  # JSON6902
        if isinstance(target, dict) and _target_matches(manifest, target):
            return _json6902(manifest, body, where, problems)
        return manifest
    if isinstance(body, dict):  # strategic merge: the patch names its own target unless one is given
        own = {"kind": body.get("kind"), "name": as_dict(body.get("metadata")).get("name")}
        chosen = target if isinstance(target, dict) else {k: v for k, v in own.items() if v}
        if _target_matches(manifest, chosen):
            patched = copy.deepcopy(manifest)
            _merge(patched.doc, body, (), patched, where)
            return patched
    return manifest


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")] if path.strip("/") else []


def _json6902(
    manifest: Manifest, operations: list[Any], where: Location, problems: list[tuple[Location, str]] | None = None
) -> Manifest:
    """RFC 6902 exactly: an operation that cannot apply (a `replace` or `remove` of a path that does not exist,
    an `add` under a missing parent, a failed `test`) is reported to `problems`. The object is then what
    kustomize makes of it: kustomize (evanphx/json-patch v4) fails the whole build on all of these except a
    `replace` of a missing mapping key, which it quietly applies as an `add`."""
    try:
        doc = jsonpatch.JsonPatch(operations).apply(manifest.doc)
    except _PATCH_ERRORS as exc:
        if "{{" in str([o.get("path") for o in operations if isinstance(o, dict)]):
            return manifest  # a path still holding an unrendered template is judged once rendered
        if problems is not None:
            problems.append((where, _patch_problem(manifest, operations, exc)))
        kustomized = _as_kustomize(manifest.doc, operations)
        if kustomized is None:
            return manifest
        doc = kustomized
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    for key in ("annotations", "labels"):  # kustomize drops a map a patch emptied
        if isinstance(metadata, dict) and metadata.get(key) == {} and manifest.map("metadata").get(key) != {}:
            del metadata[key]
    patched = dataclasses.replace(manifest, doc=doc, sources=dict(manifest.sources))
    for operation in operations:
        if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
            continue
        steps = _pointer(operation["path"])
        if operation.get("op") in ("add", "replace", "copy", "move") and steps:
            patched.sources[_field_path(doc, steps)] = where
    return patched


_PATCH_ERRORS = (
    jsonpatch.JsonPatchException,
    jsonpointer.JsonPointerException,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
)


def _patch_problem(manifest: Manifest, operations: list[Any], exc: Exception) -> str:
    """Which operation fails and why, in RFC 6902 terms."""
    doc: Any = manifest.doc
    for operation in operations:
        try:
            doc = jsonpatch.JsonPatch([operation]).apply(doc)
        except _PATCH_ERRORS as failed:
            op = operation.get("op") if isinstance(operation, dict) else None
            path = operation.get("path") if isinstance(operation, dict) else None
            if op == "replace" and _missing_key(doc, path):
                why = (
                    "the path does not exist (RFC 6902 requires it; kustomize adds the key instead, beside the "
                    "field the patch meant to change)"
                )
            elif op == "remove":
                why = "the path does not exist; kustomize and Argo CD fail the build"
            elif op == "add":
                why = "its parent does not exist; kustomize and Argo CD fail the build"
            elif op == "test":
                why = "the test fails; kustomize and Argo CD fail the build"
            else:
                why = f"{failed}; kustomize and Argo CD fail the build"
            return f"JSON6902 patch on {manifest.kind}/{manifest.name}: {op} {path}: {why}"
    return f"JSON6902 patch on {manifest.kind}/{manifest.name} cannot apply: {exc}"


def _missing_key(doc: Any, path: Any) -> bool:
    """The pointer names a missing key of a mapping that exists."""
    if not isinstance(path, str) or not path.startswith("/"):
        return False
    try:
        parent = jsonpointer.resolve_pointer(doc, path.rsplit("/", 1)[0])
    except (jsonpointer.JsonPointerException, TypeError, ValueError):
        return False
    return isinstance(parent, dict) and _pointer(path)[-1:] != [] and _pointer(path)[-1] not in parent


def _as_kustomize(doc: Any, operations: list[Any]) -> Any:
    """The document kustomize builds from a patch RFC 6902 refuses, or None when kustomize fails too."""
    for operation in operations:
        replace = isinstance(operation, dict) and operation.get("op") == "replace"
        if replace and _missing_key(doc, operation.get("path")):
            operation = {**operation, "op": "add"}
        try:
            doc = jsonpatch.JsonPatch([operation]).apply(doc)
        except _PATCH_ERRORS:
            return None
    return doc


def _field_path(doc: Any, steps: list[str]) -> tuple[Any, ...]:
    """A JSON pointer's steps as a field path (list indexes as ints, `-` as the last index)."""
    path: list[Any] = []
    value = doc
    for step in steps:
        key: Any = step
        if isinstance(value, list):
            key = len(value) - 1 if step == "-" else int(step) if step.isdigit() else step
            value = value[key] if isinstance(key, int) and 0 <= key < len(value) else None
        else:
            value = value.get(step) if isinstance(value, dict) else None
        path.append(key)
    return tuple(path)


def _merge(
    base: dict[str, Any], patch: Mapping[str, Any], path: tuple[Any, ...], manifest: Manifest, where: Location
) -> None:
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, (*path, key), manifest, where)
        elif (
            isinstance(value, list)
            and isinstance(base.get(key), list)
            and all(isinstance(i, dict) and "name" in i for i in [*value, *base[key]])
        ):
            by_name = {item["name"]: item for item in base[key]}
            for item in value:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item, (*path, key), manifest, where)
                else:
                    base[key].append(copy.deepcopy(item))
        else:
            base[key] = copy.deepcopy(value)
        field_path = (*path, key)
        manifest.sources[field_path] = where
