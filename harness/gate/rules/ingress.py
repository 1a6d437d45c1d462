"""Traffic reaches pods: Ingress -> Service -> port -> container port, and an IngressClass exists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.gate.facts import LB_CHART, chart_values, pod_spec_path
from harness.gate.model import Manifest, Model, as_dict, as_list
from harness.gate.rules import Issue, rule


def _backends(ingress: Manifest) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    default = ingress.get("spec", "defaultBackend", "service")
    if isinstance(default, dict):
        yield ("spec", "defaultBackend", "service"), default
    for r, ingress_rule in enumerate(ingress.list("spec", "rules")):
        paths = as_list(as_dict(as_dict(ingress_rule).get("http")).get("paths"))
        for p, path in enumerate(paths):
            service = as_dict(as_dict(path).get("backend")).get("service")
            if isinstance(service, dict):
                yield ("spec", "rules", r, "http", "paths", p, "backend", "service"), service


PodTemplates = dict[str, list[tuple[Manifest, dict[str, Any], dict[str, Any]]]]
# (namespace, label key, label value) -> positions in that namespace's templates, for hashable values.
LabelIndex = dict[tuple[str, Any, Any], list[int]]


def _pod_templates(model: Model) -> tuple[PodTemplates, LabelIndex]:
    """(workload, pod spec, pod labels) per namespace and an index by label, built once per check so selector
    matching stays linear."""
    by_namespace: PodTemplates = {}
    by_label: LabelIndex = {}
    for manifest in model.effective:
        path = pod_spec_path(manifest)
        spec = manifest.get(*path) if path is not None else None
        if path is None or not isinstance(spec, dict):
            continue
        labels_path = ("metadata", "labels") if manifest.kind == "Pod" else (*path[:-1], "metadata", "labels")
        labels = manifest.map(*labels_path)
        templates = by_namespace.setdefault(manifest.namespace, [])
        for key, value in labels.items():
            if _hashable(value):
                by_label.setdefault((manifest.namespace, key, value), []).append(len(templates))
        templates.append((manifest, spec, labels))
    return by_namespace, by_label


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _selected_pods(
    templates: PodTemplates, by_label: LabelIndex, namespace: str, selector: dict[str, Any]
) -> list[tuple[Manifest, dict[str, Any]]]:
    if not selector:
        return []
    candidates = templates.get(namespace, [])
    key, value = next(iter(selector.items()))
    # Only pods carrying the first selected label can match; a None value also matches pods without the label.
    if value is not None and _hashable(value):
        candidates = [candidates[i] for i in by_label.get((namespace, key, value), [])]
    return [
        (manifest, spec)
        for manifest, spec, labels in candidates
        if all(labels.get(k) == v for k, v in selector.items())
    ]


@rule("EKS010", "Ingress backends resolve to a Service port and a container port")
def ingress_chain(model: Model) -> Iterator[Issue]:
    """Every Ingress backend must name a Service in the same namespace and one of its ports (by name or
    number); the Service's `targetPort` must be a container port (by name or number) of the pods its
    selector matches; and with the AWS Load Balancer Controller's default `target-type: instance` the
    Service must be NodePort or LoadBalancer. A broken link gives a 503 from the ALB or an Ingress that
    never reconciles, after the money for the load balancer is already spent."""
    services = {(m.namespace, m.name): m for m in model.effective if m.kind == "Service"}
    templates, by_label = _pod_templates(model)
    for ingress in (m for m in model.effective if m.kind == "Ingress"):
        annotations = ingress.map("metadata", "annotations")
        target_type = annotations.get("alb.ingress.kubernetes.io/target-type", "instance")
        for path, backend in _backends(ingress):
            name, port = backend.get("name"), as_dict(backend.get("port"))
            service = services.get((ingress.namespace, str(name)))
            if service is None:
                yield Issue(
                    f"{ingress.label}: backend Service {name!r} does not exist in namespace "
                    f"{ingress.namespace or 'default'}",
                    ingress.where(*path, "name"),
                    "name a Service defined in the same namespace",
                )
                continue
            ports = [p for p in service.list("spec", "ports") if isinstance(p, dict)]
            wanted = port.get("name") if "name" in port else port.get("number")
            service_port = next((p for p in ports if wanted in (p.get("name"), p.get("port"))), None)
            if service_port is None:
                yield Issue(
                    f"{ingress.label}: Service {name} has no port {wanted!r} "
                    f"(ports: {', '.join(str(p.get('name') or p.get('port')) for p in ports) or 'none'})",
                    ingress.where(*path, "port"),
                    "use a port name or number the Service defines",
                )
                continue
            if target_type == "instance" and service.get("spec", "type") in (None, "ClusterIP"):
                yield Issue(
                    f"{ingress.label}: target-type instance needs a NodePort Service, {name} is ClusterIP",
                    ingress.where("metadata", "annotations"),
                    "annotate alb.ingress.kubernetes.io/target-type: ip, or make the Service NodePort",
                )
            target = service_port.get("targetPort", service_port.get("port"))
            pods = _selected_pods(templates, by_label, service.namespace, service.map("spec", "selector"))
            if not pods:
                yield Issue(
                    f"Service/{name}: selector matches no pods of any workload in namespace "
                    f"{service.namespace or 'default'}",
                    service.where("spec", "selector"),
                    "make the selector equal the pod template labels",
                )
                continue
            container_ports = [
                cp
                for _m, spec in pods
                for c in as_list(spec.get("containers"))
                if isinstance(c, dict)
                for cp in as_list(c.get("ports"))
                if isinstance(cp, dict)
            ]
            if not any(target in (cp.get("name"), cp.get("containerPort")) for cp in container_ports):
                yield Issue(
                    f"Service/{name}: targetPort {target!r} is not a container port of the selected pods "
                    f"(ports: {', '.join(str(cp.get('name') or cp.get('containerPort')) for cp in container_ports)})",
                    service.where("spec", "ports", ports.index(service_port)),
                    "set targetPort to a containerPort (number) or its name",
                )


@rule("EKS012", "Ingresses name an IngressClass that exists")
def ingress_class(model: Model) -> Iterator[Issue]:
    """An Ingress is reconciled only by the controller of its IngressClass (`spec.ingressClassName`). The
    class must be defined by a manifest or created by a Helm release (a Terraform `helm_release` or an Argo
    CD Application of the chart): the AWS Load Balancer Controller chart creates IngressClass `alb` (value
    `ingressClass`) unless `createIngressClassResource` is false.
    An Ingress without a class is ignored unless some IngressClass is marked default."""
    classes = {m.name for m in model.effective if m.kind == "IngressClass"}
    default_class = any(
        (m.map("metadata", "annotations")).get("ingressclass.kubernetes.io/is-default-class") == "true"
        for m in model.effective
        if m.kind == "IngressClass"
    )
    found = chart_values(model, LB_CHART)
    if found is not None:
        _release, values = found
        if values.get("createIngressClassResource", True) is not False:
            classes.add(str(values.get("ingressClass") or "alb"))
            default_class |= bool(as_dict(values.get("ingressClassConfig")).get("default"))
    for app in model.rendered.applications:  # the chart installed by Argo CD instead of Terraform
        for source in [app.map("spec", "source"), *map(as_dict, app.list("spec", "sources"))]:
            if source.get("chart") == LB_CHART:
                values = as_dict(as_dict(source.get("helm")).get("valuesObject"))
                classes.add(str(values.get("ingressClass") or "alb"))
    for ingress in (m for m in model.effective if m.kind == "Ingress"):
        name = ingress.get("spec", "ingressClassName")
        if name is None:
            if not default_class and "kubernetes.io/ingress.class" not in ingress.map("metadata", "annotations"):
                yield Issue(
                    f"{ingress.label}: no spec.ingressClassName and no default IngressClass",
                    ingress.where("spec"),
                    "set spec.ingressClassName: alb",
                )
        elif name not in classes:
            yield Issue(
                f"{ingress.label}: IngressClass {name!r} is not defined "
                f"(defined: {', '.join(sorted(classes)) or 'none'})",
                ingress.where("spec", "ingressClassName"),
                "install the AWS Load Balancer Controller release or use its class name (alb)",
            )
