"""The harness's moto server: moto's own server, with the emulator gaps that infra/targets.yaml declares
(`local_target.emulator_gaps`: name and reason) patched into moto's EC2 models before it serves.

Each gap is one named patch here, and nowhere else: a patch wraps one moto method so that moto answers as EC2
does for the calls the real Karpenter makes (CreateFleet with a launch template, DescribeInstances,
DescribeSpotPriceHistory, DescribeInstanceStatus). With $HARNESS_IAM_DECISIONS set, calls on an assumed role are
authorized as IAM would (harness.aws.authorization). `python -m harness.aws.moto_server -H HOST -p PORT` takes
moto.server's arguments.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import wraps
from typing import Any

from moto.core.responses import ActionResult
from moto.ec2.models.fleets import Fleet, FleetsBackend
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.ec2.models.instances import InstanceBackend
from moto.ec2.models.spot_requests import SpotFleetLaunchSpec, SpotInstanceRequest
from moto.ec2.responses import EC2Response
from moto.ec2.responses.spot_instances import SpotInstances
from moto.ec2.utils import convert_tag_spec
from moto.eks import urls as eks_urls
from moto.eks.exceptions import ResourceNotFoundException as EKSResourceNotFound
from moto.eks.models import EKSBackend
from moto.eks.responses import EKSResponse
from moto.shield.responses import ShieldResponse
from moto.ssm.models import Parameter, ParameterDict

from harness.aws import authorization
from harness.aws.emulator import EKS_AMI_PARAMETERS, eks_amis
from harness.errors import InputError
from harness.project import local_target

# A spot price model in USD per hour: spot prices that grow with the instance's size, so that Karpenter's
# price ordering and EC2's lowest-price choice mean something (moto answers 0.00001 for every type).
SPOT_USD_PER_VCPU_HOUR = 0.012
SPOT_USD_PER_GIB_HOUR = 0.0015
# DescribeInstanceStatus filters moto ignores (it answers every instance); Karpenter's health poll uses them.
STATUS_FILTERS = ("instance-status.status", "system-status.status", "event.code")


@dataclass(frozen=True)
class Patch:
    """Replace `owner.attribute` (a class's method, a module's table) by `wrap(original)`; original is None where
    moto has no such attribute (an API it lacks)."""

    owner: Any
    attribute: str
    wrap: Callable[[Any], Any]

    def install(self) -> None:
        setattr(self.owner, self.attribute, self.wrap(getattr(self.owner, self.attribute, None)))


def spot_price(instance_type: str) -> float:
    """The modelled spot price of `instance_type` (vCPUs and memory from moto's own instance type data)."""
    info = INSTANCE_TYPES[instance_type]
    gib = int(info["MemoryInfo"]["SizeInMiB"]) / 1024
    return round(int(info["VCpuInfo"]["DefaultVCpus"]) * SPOT_USD_PER_VCPU_HOUR + gib * SPOT_USD_PER_GIB_HOUR, 6)


def _template_groups(backend: Any, launch_spec: SpotFleetLaunchSpec | None) -> list[str]:
    """The security groups of the launch template version an instance was launched from: Karpenter writes them
    as SecurityGroupIds, or as the first network interface's Groups (moto reads only a GroupSet field)."""
    spec = (launch_spec.launch_template_spec if launch_spec else None) or {}
    if "LaunchTemplateId" not in spec:
        return []
    data = backend.get_launch_template(spec["LaunchTemplateId"]).get_version(spec["Version"]).data
    interfaces = data.get("NetworkInterfaces") or [{}]
    return list(data.get("SecurityGroupIds") or interfaces[0].get("Groups") or [])


def fleet_security_groups(create_fleet: Callable[..., Fleet]) -> Callable[..., Fleet]:
    @wraps(create_fleet)
    def patched(self: Any, *args: Any, **kwargs: Any) -> Fleet:
        fleet = create_fleet(self, *args, **kwargs)
        for instance, launch_spec in _launched(fleet):
            if groups := _template_groups(self, launch_spec):
                self.modify_instance_security_groups(instance.id, groups)
        return fleet

    return patched


def _launched(fleet: Fleet) -> list[tuple[Any, SpotFleetLaunchSpec | None]]:
    """(instance, launch spec) of every instance a fleet launched, spot and on-demand."""
    return [(r.instance, r.launch_spec) for r in fleet.spot_requests] + [
        (item["instance"], item.get("launch_spec")) for item in fleet.on_demand_instances
    ]


def fleet_volume_tags(create_fleet: Callable[..., Fleet]) -> Callable[..., Fleet]:
    """The volumes of a fleet's instances carry the request's `volume` tag specification, as EC2 tags them at
    launch (Karpenter tags its volumes there; moto applies only the `instance` one)."""

    @wraps(create_fleet)
    def patched(self: Any, *args: Any, **kwargs: Any) -> Fleet:
        fleet = create_fleet(self, *args, **kwargs)
        specs = inspect.signature(create_fleet).bind(self, *args, **kwargs).arguments.get("tag_specifications")
        tags = convert_tag_spec(specs or []).get("volume", {})
        for instance, _ in _launched(fleet) if tags else []:
            for _, device in instance.get_block_device_mapping:
                for volume in self.describe_volumes(volume_ids=[device.volume_id]):
                    volume.add_tags(tags)
        return fleet

    return patched


def lowest_price_override(
    get_launch_spec_counts: Callable[[Fleet, float], tuple[dict[SpotFleetLaunchSpec, int], float]],
) -> Callable[[Fleet, float], tuple[dict[SpotFleetLaunchSpec, int], float]]:
    """Spot capacity from the cheapest override, as EC2's lowest-price and price-capacity-optimized strategies
    choose when capacity is unlimited (moto sorts by an override's SpotPrice, which Karpenter never sets, so the
    first override wins)."""

    @wraps(get_launch_spec_counts)
    def patched(self: Fleet, weight_to_add: float) -> tuple[dict[SpotFleetLaunchSpec, int], float]:
        if (self.spot_options or {}).get("AllocationStrategy") == "diversified":
            return get_launch_spec_counts(self, weight_to_add)
        cheapest = min(self.launch_specs, key=lambda spec: spot_price(spec.instance_type))
        count = int(-(-weight_to_add // cheapest.weighted_capacity))  # whole instances covering the weight
        return {cheapest: count}, count * cheapest.weighted_capacity

    return patched


def spot_price_history(describe: Callable[[SpotInstances], Any]) -> Callable[[SpotInstances], Any]:
    @wraps(describe)
    def patched(self: SpotInstances) -> Any:
        result = describe(self)
        for entry in result.result["SpotPriceHistory"]:
            entry["SpotPrice"] = f"{spot_price(entry['InstanceType']):.6f}"
        return result

    return patched


def spot_instance_request_id(launch_instance: Callable[[SpotInstanceRequest], Any]) -> Callable[..., Any]:
    """Instances launched for a spot request carry its id (Karpenter reads spot vs on-demand from it)."""

    @wraps(launch_instance)
    def patched(self: SpotInstanceRequest) -> Any:
        instance = launch_instance(self)
        instance.spot_instance_request_id = self.id
        return instance

    return patched


def _status_matches(instance: Any, name: str, values: Sequence[str]) -> bool:
    # moto models no impaired instance and no scheduled event: a running instance is "ok", others have no checks.
    if name == "event.code":
        return False
    return ("ok" if instance.is_running() else "not-applicable") in values


def instance_status_filters(describe: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    @wraps(describe)
    def patched(self: Any, instance_ids: list[str], include_all_instances: bool, filters: Any) -> list[Any]:
        status = [f for f in filters or [] if f["name"] in STATUS_FILTERS]
        rest = [f for f in filters or [] if f["name"] not in STATUS_FILTERS]
        found = describe(self, instance_ids, include_all_instances, rest)
        return [i for i in found if all(_status_matches(i, f["name"], f["values"]) for f in status)]

    return patched


def close_spot_requests(terminate: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    """A spot request whose instance is terminated is closed, as EC2 closes it (moto leaves it active)."""

    @wraps(terminate)
    def patched(self: Any, instance_ids: list[str]) -> list[Any]:
        terminated = terminate(self, instance_ids)
        gone = {instance.id for instance, _ in terminated}
        for request in self.spot_instance_requests.values():
            if request.instance.id in gone:
                request.state, request._status_code = "closed", "instance-terminated-by-user"
                request.status_message = "Spot Instance terminated due to user-initiated termination."
        return terminated

    return patched


def _version_update(
    backend: Any, cluster: str, nodegroup: str | None, version: str, platform_version: str | None = None
) -> dict[str, Any]:
    """An EKS version update, complete at once (the emulator has nothing to roll), kept for DescribeUpdate."""
    params = [{"type": "Version", "value": version}]
    params += [{"type": "PlatformVersion", "value": platform_version}] if platform_version else []
    record = {
        "id": str(uuid.uuid4()),
        "status": "Successful",
        "type": "VersionUpdate",
        "params": params,
        "createdAt": datetime.now(timezone.utc),
        "errors": [],
    }
    backend.__dict__.setdefault("version_updates", {})[(cluster, nodegroup, record["id"])] = record
    return record


def update_cluster_version(_: Any) -> Callable[..., Any]:
    def update(self: Any, name: str, version: str) -> dict[str, Any]:
        cluster = self.describe_cluster(name=name)
        cluster.version = version
        return _version_update(self, name, None, version, cluster.platformVersion)

    return update


def update_nodegroup_version(_: Any) -> Callable[..., Any]:
    def update(
        self: Any, cluster_name: str, nodegroup_name: str, version: str | None, release_version: str | None
    ) -> dict[str, Any]:
        group = self.describe_nodegroup(cluster_name=cluster_name, nodegroup_name=nodegroup_name)
        group.version = version or self.describe_cluster(name=cluster_name).version
        group.release_version = release_version or group.release_version
        return _version_update(self, cluster_name, nodegroup_name, group.version)

    return update


def describe_update(_: Any) -> Callable[..., Any]:
    def describe(self: Any, name: str, update_id: str, nodegroup_name: str | None) -> dict[str, Any]:
        found = self.__dict__.get("version_updates", {}).get((name, nodegroup_name, update_id))
        if found is None:
            raise EKSResourceNotFound(
                clusterName=name,
                nodegroupName=nodegroup_name,
                fargateProfileName=None,
                addonName=None,
                message=f"No update found for ID: {update_id}",
            )
        return dict(found)

    return describe


def _served(operation: str, **params: str) -> Patch:
    """EKSResponse's method for an API moto lacks (moto names it after the operation): the backend's method of the
    same name, called with the request's parameters (argument=parameter), its update as the answer."""

    def respond(self: Any) -> Any:
        arguments = {argument: self._get_param(parameter) for argument, parameter in params.items()}
        return ActionResult({"update": getattr(self.eks_backend, operation)(**arguments)})

    return Patch(EKSResponse, operation, lambda _: respond)


def _routes(paths: dict[str, Any]) -> dict[str, Any]:
    handler = paths["{0}/clusters$"]
    return {
        **paths,
        "{0}/clusters/(?P<name>[^/]+)/updates$": handler,
        "{0}/clusters/(?P<name>[^/]+)/updates/(?P<updateId>[^/]+)$": handler,
        "{0}/clusters/(?P<name>[^/]+)/node-groups/(?P<nodegroupName>[^/]+)/update-version$": handler,
    }


EKS_VERSION_UPDATES = (
    Patch(EKSBackend, "update_cluster_version", update_cluster_version),
    Patch(EKSBackend, "update_nodegroup_version", update_nodegroup_version),
    Patch(EKSBackend, "describe_update", describe_update),
    _served("update_cluster_version", name="name", version="version"),
    _served(
        "update_nodegroup_version",
        cluster_name="name",
        nodegroup_name="nodegroupName",
        version="version",
        release_version="releaseVersion",
    ),
    _served("describe_update", name="name", update_id="updateId", nodegroup_name="nodegroupName"),
    Patch(eks_urls, "url_paths", _routes),
)


def eks_ami_parameters(check_loading: Callable[..., None]) -> Callable[..., None]:
    """Load the EKS optimized AMI parameters of the emulator's images the first time a name under them is asked,
    as moto loads its own /aws/service trees (ParameterDict._check_loading_status)."""

    @wraps(check_loading)
    def loading(self: Any, key: str) -> None:
        check_loading(self, key)
        if str(key or "").startswith(EKS_AMI_PARAMETERS) and not getattr(self, "eks_amis_loaded", False):
            self.eks_amis_loaded = True
            for ami in eks_amis(local_target().emulator_images):
                parameter = Parameter(  # type: ignore[abstract]  # moto instantiates it so itself
                    account_id=self.account_id,
                    name=ami.parameter,
                    value=ami.image_id,
                    parameter_type="String",
                    description=None,
                    allowed_pattern=None,
                    keyid=None,
                    last_modified_date=datetime.now(timezone.utc),
                    version=1,
                    data_type="aws:ec2:image",
                )
                defaultdict.__getitem__(self, ami.parameter).append(parameter)

    return loading


EC2_REQUESTS = threading.Lock()  # the EC2 backend's requests, one at a time (ec2_requests_concurrent)


def one_at_a_time(call_action: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An EC2 request served while no other is: moto's EC2 backend keeps its state in plain lists and dicts that
    concurrent requests (a parallel `terraform apply`, the controllers) change under each other."""

    @wraps(call_action)
    def serialized(self: Any) -> Any:
        with EC2_REQUESTS:
            return call_action(self)

    return serialized


def subscription_state(_: Any) -> Callable[..., Any]:
    """Shield's GetSubscriptionState, which moto lacks: ACTIVE once CreateSubscription ran, else INACTIVE (an
    account without Shield Advanced, what the LB controller asks about on every Ingress)."""

    def respond(self: Any) -> Any:
        return ActionResult({"SubscriptionState": "ACTIVE" if self.shield_backend.subscription else "INACTIVE"})

    return respond


GAPS: dict[str, tuple[Patch, ...]] = {
    "fleet_launch_template_security_groups": (Patch(FleetsBackend, "create_fleet", fleet_security_groups),),
    "fleet_volume_tags": (Patch(FleetsBackend, "create_fleet", fleet_volume_tags),),
    "spot_allocation_lowest_price": (Patch(Fleet, "get_launch_spec_counts", lowest_price_override),),
    "spot_price_history_flat": (Patch(SpotInstances, "describe_spot_price_history", spot_price_history),),
    "instance_status_filters_ignored": (Patch(InstanceBackend, "describe_instance_status", instance_status_filters),),
    "spot_instance_request_id_missing": (Patch(SpotInstanceRequest, "launch_instance", spot_instance_request_id),),
    "spot_request_open_after_termination": (Patch(InstanceBackend, "terminate_instances", close_spot_requests),),
    "eks_version_updates": EKS_VERSION_UPDATES,
    "eks_optimized_ami_parameters": (Patch(ParameterDict, "_check_loading_status", eks_ami_parameters),),
    "shield_subscription_state": (Patch(ShieldResponse, "get_subscription_state", subscription_state),),
    "ec2_requests_concurrent": (Patch(EC2Response, "call_action", one_at_a_time),),
}


def _patches(names: Iterable[str]) -> list[Patch]:
    wanted = list(names)
    unknown = sorted(set(wanted) - set(GAPS))
    if unknown:
        raise InputError(
            f"infra/targets.yaml local_target.emulator_gaps: no patch for {unknown} in harness.aws.moto_server"
        )
    return [patch for name in wanted for patch in GAPS[name]]


def apply(names: Iterable[str]) -> None:
    """Patch moto for the named gaps, for the life of this process (the server's)."""
    for patch in _patches(names):
        patch.install()


@contextmanager
def patched(names: Iterable[str]) -> Iterator[None]:
    """The named gaps patched for the block only (moto in-process, in tests)."""
    chosen = _patches(names)
    missing = object()
    originals = [(p, vars(p.owner).get(p.attribute, missing)) for p in chosen]
    try:
        for patch in chosen:
            patch.install()
        yield
    finally:
        for patch, original in reversed(originals):
            if original is missing:
                delattr(patch.owner, patch.attribute)
            else:
                setattr(patch.owner, patch.attribute, original)


def main(argv: Sequence[str] | None = None) -> None:
    from moto.server import main as serve

    apply(local_target().emulator_gaps)
    if decisions := os.environ.get(authorization.DECISIONS_ENV):
        authorization.install(decisions)
    serve(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
