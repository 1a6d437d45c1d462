"""Names that must agree across layers: node role, cluster name, interruption queue."""

from __future__ import annotations

from collections.abc import Iterator

from harness.gate.facts import (
    KARPENTER_CHART,
    LB_CHART,
    cluster_names,
    node_classes,
    resolved,
    security_groups,
    subnets,
)
from harness.gate.model import Location, Model
from harness.gate.rules import Issue, rule
from harness.gate.values import lookup
from harness.keys import DISCOVERY_TAG

CLUSTER_NAME_ANNOTATION = "eks-platform/cluster-name"


@rule("EKS005", "EC2NodeClass role is the node role Terraform creates")
def node_role(model: Model) -> Iterator[Issue]:
    """Karpenter creates an instance profile from the EC2NodeClass `spec.role` and launches nodes with it.
    If the name is not an IAM role that Terraform creates (and grants node access to the cluster through
    an access entry), instances start but never join: they have no right to register, and Karpenter keeps
    replacing them. The effective `spec.role` (after ApplicationSet patches) must equal the name of an
    `aws_iam_role` in Terraform; an `instanceProfile` must name an `aws_iam_instance_profile`."""
    roles = {n for r in model.terraform.of_type("aws_iam_role") if (n := resolved(r.get("name")))}
    profiles = {n for r in model.terraform.of_type("aws_iam_instance_profile") if (n := resolved(r.get("name")))}
    if not model.terraform.of_type("aws_iam_role"):
        return
    for node_class in node_classes(model):
        role = resolved(node_class.get("spec", "role"))
        profile = resolved(node_class.get("spec", "instanceProfile"))
        if role is not None and role not in roles:
            yield Issue(
                f"{node_class.label}: spec.role {role!r} is not a role Terraform creates "
                f"(roles: {', '.join(sorted(roles)) or 'none with a static name'})",
                node_class.where("spec", "role"),
                "set spec.role to the Karpenter node role name (platform output karpenter_node_role_name)",
            )
        if profile is not None and profiles and profile not in profiles:
            yield Issue(
                f"{node_class.label}: spec.instanceProfile {profile!r} is not an instance profile Terraform creates",
                node_class.where("spec", "instanceProfile"),
                "use spec.role with the node role name instead, or the Terraform instance profile's name",
            )


@rule("EKS006", "one cluster name across Terraform, chart values, tags and selectors")
def cluster_name(model: Model) -> Iterator[Issue]:
    """The cluster name appears in many places that must agree: `aws_eks_cluster.name`, the Karpenter
    chart's `settings.clusterName`, the AWS Load Balancer Controller's `clusterName`, the
    `karpenter.sh/discovery` tag on subnets and security groups and in EC2NodeClass selectors,
    `kubernetes.io/cluster/<name>` tags, and the cluster secret annotation `eks-platform/cluster-name`.
    A stale or copied name makes Karpenter talk to the wrong cluster, the controller discover nothing,
    or selectors match nothing."""
    names = cluster_names(model)
    if not names:
        return
    expected = " or ".join(sorted(names))

    def wrong(value: object) -> str | None:
        found = resolved(value)
        return found if found is not None and found not in names else None

    for chart, path in ((KARPENTER_CHART, ("settings", "clusterName")), (LB_CHART, ("clusterName",))):
        release = model.release_for(chart)
        if release is None:
            continue
        resource, values = release
        value = lookup(values.values, *path)
        if (bad := wrong(value)) is not None:
            yield Issue(
                f"{resource.address}: {chart} value {'.'.join(path)} is {bad!r}, the cluster is {expected}",
                values.sources.get(path, Location(resource.file, resource.line)),
                f"set {'.'.join(path)} from the cluster's name (module output), not a literal",
            )
    for tagged in [*subnets(model), *security_groups(model)]:
        if (bad := wrong(tagged.tags.get(DISCOVERY_TAG))) is not None:
            yield Issue(
                f"{tagged.label}: tag {DISCOVERY_TAG}={bad!r}, the cluster is {expected}",
                tagged.location,
                f"tag with {DISCOVERY_TAG} = the cluster name",
            )
        for key in tagged.tags:
            if key.startswith("kubernetes.io/cluster/") and key.split("/", 2)[2] not in names:
                yield Issue(
                    f"{tagged.label}: tag {key} names another cluster than {expected}",
                    tagged.location,
                    "use kubernetes.io/cluster/<cluster name>",
                )
    for node_class in node_classes(model):
        for field in ("subnetSelectorTerms", "securityGroupSelectorTerms"):
            for index, term in enumerate(node_class.list("spec", field)):
                tags = term.get("tags") if isinstance(term, dict) else None
                if isinstance(tags, dict) and (bad := wrong(tags.get(DISCOVERY_TAG))) is not None:
                    yield Issue(
                        f"{node_class.label}: {field}[{index}] selects {DISCOVERY_TAG}={bad!r}, the cluster is "
                        f"{expected}",
                        node_class.where("spec", field, index, "tags", DISCOVERY_TAG),
                        "select on the cluster name (patched from the cluster secret annotation)",
                    )
    for secret in model.rendered.cluster_secrets:
        if (bad := wrong(secret.annotations.get(CLUSTER_NAME_ANNOTATION))) is not None:
            yield Issue(
                f"cluster secret {secret.name}: annotation {CLUSTER_NAME_ANNOTATION}={bad!r}, the cluster "
                f"is {expected}",
                secret.location,
                "annotate with the platform output cluster_name",
            )


@rule("EKS007", "Karpenter's interruption queue is the queue Terraform creates")
def interruption_queue(model: Model) -> Iterator[Issue]:
    """Karpenter handles spot interruptions, rebalance recommendations and scheduled events only when its
    chart value `settings.interruptionQueue` names the SQS queue that the EventBridge rules feed. When the
    value is missing or names another queue, a spot reclaim kills nodes without draining them first. The
    value must equal the `name` of an `aws_sqs_queue` Terraform creates."""
    release = model.release_for(KARPENTER_CHART)
    queues = {n for r in model.terraform.of_type("aws_sqs_queue") if (n := resolved(r.get("name")))}
    if release is None or not model.terraform.of_type("aws_sqs_queue"):
        return
    resource, values = release
    path = ("settings", "interruptionQueue")
    value = lookup(values.values, *path)
    where = values.sources.get(path, Location(resource.file, resource.line_of("values")))
    if value is None or value == "":
        yield Issue(
            f"{resource.address}: Karpenter gets no settings.interruptionQueue, but Terraform creates "
            f"{', '.join(sorted(queues)) or 'an interruption queue'}",
            where,
            "set settings.interruptionQueue to the queue name (platform output)",
        )
    elif (name := resolved(value)) is not None and queues and name not in queues:
        yield Issue(
            f"{resource.address}: settings.interruptionQueue is {name!r}; Terraform's queues: "
            f"{', '.join(sorted(queues))}",
            where,
            "pass the queue's name from the platform output",
        )
