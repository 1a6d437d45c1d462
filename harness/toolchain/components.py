"""What the local Kubernetes tier is built from: one wrapper Go module per family under toolchain/.

Versions live in versions.yaml; each wrapper's go.mod must require exactly that version (checked by
`check_pins`). Stamps are the `-X` link flags each upstream release build sets, so the binaries report
the versions other components read (Karpenter and helm read the API server's /version; an unstamped
kube-apiserver reports v0.0.0).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import InputError


@dataclass(frozen=True)
class Binary:
    name: str
    package: str  # Go import path of the main package; "" for an alias of the component's first binary
    # () when the binary has no version flag: the version of its module in its Go build info is read instead
    # (-trimpath leaves the -X stamps out of the build info; those two log their stamp when they start)
    version_args: tuple[str, ...]
    version_pattern: str  # regex with one group: the version as the binary reports it


@dataclass(frozen=True)
class BuildFacts:
    """What stamps are computed from: the pinned version and the wrapper's resolved module graph."""

    version: str  # without the leading "v"
    module_time: str  # RFC 3339 commit time the module proxy reports for the pinned module
    dependencies: Mapping[str, str]  # module path -> version, as the wrapper resolves them
    module_dir: Path = Path()  # the pinned module's source in the module cache


@dataclass(frozen=True)
class Component:
    name: str  # folder under toolchain/
    module: str  # the upstream Go module the wrapper requires
    version_key: str  # its entry in versions.yaml
    purpose: str
    binaries: tuple[Binary, ...]
    cold_minutes: int  # measured one-time build, rounded up, on a 2-core machine (docs/toolchain.md)
    stamps: Callable[[BuildFacts], dict[str, str]] = field(default=lambda facts: {})
    data: tuple[str, ...] = ()  # files of the pinned module the binaries need at run time, copied beside them
    # what the pinned module publishes for this very version (its chart, IAM policy, CRDs), copied beside the
    # binaries too: the gate and the local target read these instead of older copies (harness.gate.loaders)
    ships: tuple[str, ...] = ()
    chart: str = ""  # the Helm chart that deploys this binary's image in a cluster (gate EKS046 compares them)

    @property
    def copied(self) -> tuple[str, ...]:
        return self.data + self.ships

    def packages(self) -> list[str]:
        return [b.package for b in self.binaries if b.package]

    def ldflags(self, facts: BuildFacts) -> str:
        flags = ["-s", "-w"]  # no symbol table or DWARF: a third less disk, and nothing here is debugged
        flags += [f"-X {name}={value}" for name, value in sorted(self.stamps(facts).items())]
        return " ".join(flags)


def _kubernetes_stamps(facts: BuildFacts) -> dict[str, str]:
    major, minor = facts.version.split(".")[:2]
    values = {
        "gitVersion": f"v{facts.version}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": facts.module_time,
    }
    # hack/lib/version.sh stamps both: the servers report the first, kubectl's client line the second.
    return {
        f"{package}.{key}": value
        for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
        for key, value in values.items()
    }


def _helm_stamps(facts: BuildFacts) -> dict[str, str]:
    # Helm's Makefile derives its default Kubernetes capabilities from the client-go it is built with.
    client_go = facts.dependencies.get("k8s.io/client-go", "")
    match = re.match(r"v0\.(\d+)\.", client_go)
    if not match:
        raise InputError(f"toolchain/helm: no k8s.io/client-go version in its module graph ({client_go!r})")
    stamps = {"helm.sh/helm/v3/internal/version.version": f"v{facts.version}"}
    for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        stamps[f"{package}.k8sVersionMajor"] = "1"
        stamps[f"{package}.k8sVersionMinor"] = match.group(1)
    return stamps


def _argo_cd_stamps(facts: BuildFacts) -> dict[str, str]:
    package = "github.com/argoproj/argo-cd/v3/common"
    return {
        f"{package}.version": facts.version,
        f"{package}.buildDate": facts.module_time,
        f"{package}.gitTreeState": "clean",
        f"{package}.kubectlVersion": facts.dependencies.get("k8s.io/kubectl", ""),
    }


CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The previous minor's control-plane binaries are named after the pinned ones with this suffix.
UPGRADE_FROM = "-upgrade-from"


def _control_plane(suffix: str) -> tuple[Binary, ...]:
    return tuple(
        Binary(f"{name}{suffix}", f"k8s.io/kubernetes/cmd/{name}", ("--version",), r"Kubernetes v(\S+)")
        for name in CONTROL_PLANE
    )


KUBERNETES = Component(
    name="kubernetes",
    module="k8s.io/kubernetes",
    version_key="kubernetes_release",
    purpose="the control plane (API server, controller-manager, scheduler) and kubectl",
    binaries=(
        *_control_plane(""),
        Binary("kubectl", "k8s.io/kubernetes/cmd/kubectl", ("version", "--client"), r"Client Version: v(\S+)"),
    ),
    cold_minutes=8,
    stamps=_kubernetes_stamps,
)

KUBERNETES_UPGRADE_FROM = Component(
    name="kubernetes-upgrade-from",
    module="k8s.io/kubernetes",
    version_key="upgrade_from_kubernetes_release",
    purpose="the previous minor's control plane, where an upgrade rehearsal starts",
    binaries=_control_plane(UPGRADE_FROM),
    cold_minutes=8,
    stamps=_kubernetes_stamps,
)

UPGRADE_FROM_MINOR = "upgrade_from_kubernetes"  # versions.yaml: the minor the prepared upgrade starts from
# The control planes the toolchain builds: (component, the versions.yaml minor it stands for, its binaries' suffix).
CONTROL_PLANE_BUILDS = ((KUBERNETES, "kubernetes", ""), (KUBERNETES_UPGRADE_FROM, UPGRADE_FROM_MINOR, UPGRADE_FROM))


def control_plane_build(minor: str, pins: Mapping[str, str]) -> tuple[str, str]:
    """(release, binaries' suffix) of the toolchain's control plane at Kubernetes `minor` ("1.35"), from the pins."""
    for component, minor_key, suffix in CONTROL_PLANE_BUILDS:
        if str(pins.get(minor_key)) == minor:
            return str(pins[component.version_key]), suffix
    built = ", ".join(str(pins.get(key)) for _, key, _ in CONTROL_PLANE_BUILDS)
    raise InputError(f"the toolchain builds no control plane of Kubernetes {minor} (versions.yaml: {built})")


COMPONENTS: tuple[Component, ...] = (
    KUBERNETES,
    KUBERNETES_UPGRADE_FROM,
    Component(
        name="etcd",
        module="go.etcd.io/etcd/server/v3",
        version_key="etcd",
        purpose="the API server's storage",
        binaries=(Binary("etcd", "go.etcd.io/etcd/server/v3", ("--version",), r"etcd Version: (\S+)"),),
        cold_minutes=1,
    ),
    Component(
        name="kwok",
        module="sigs.k8s.io/kwok",
        version_key="kwok",
        purpose="stands in for kubelets: makes Nodes Ready and runs their pods",
        binaries=(Binary("kwok", "sigs.k8s.io/kwok/cmd/kwok", ("--version",), r"kwok version v?(\S+)"),),
        cold_minutes=2,
        # The stages kwokctl embeds: Nodes initialize and heartbeat, pods become Ready, complete and go.
        data=tuple(
            f"kustomize/stage/{stage}.yaml"
            for stage in (
                "node/fast/node-initialize",
                "node/heartbeat/node-heartbeat",
                "pod/fast/pod-ready",
                "pod/fast/pod-complete",
                "pod/fast/pod-delete",
            )
        ),
    ),
    Component(
        name="helm",
        module="helm.sh/helm/v3",
        version_key="helm",
        purpose="renders charts for Argo CD's repo-server and the tests",
        binaries=(Binary("helm", "helm.sh/helm/v3/cmd/helm", ("version", "--short"), r"v(\d[^+\s]*)"),),
        cold_minutes=2,
        stamps=_helm_stamps,
    ),
    Component(
        name="kustomize",
        module="sigs.k8s.io/kustomize/kustomize/v5",
        version_key="kustomize",
        purpose="renders gitops/ for Argo CD's repo-server and the gate's oracle test",
        binaries=(Binary("kustomize", "sigs.k8s.io/kustomize/kustomize/v5", ("version",), r"v(\S+)"),),
        cold_minutes=1,
        stamps=lambda facts: {"sigs.k8s.io/kustomize/api/provenance.version": f"kustomize/v{facts.version}"},
    ),
    Component(
        name="argo-cd",
        module="github.com/argoproj/argo-cd/v3",
        version_key="argo_cd",
        purpose="application-controller, repo-server and applicationset-controller (one binary, named per role)",
        binaries=(
            Binary("argocd", "github.com/argoproj/argo-cd/v3/cmd", ("version", "--client", "--short"), r"v(\d[^+\s]*)"),
            *(
                Binary(alias, "", (), "")
                for alias in (
                    "argocd-application-controller",
                    "argocd-repo-server",
                    "argocd-applicationset-controller",
                )
            ),
        ),
        cold_minutes=6,
        stamps=_argo_cd_stamps,
        # The image puts these on PATH: the repo-server runs git-verify-wrapper.sh for every manifest it generates.
        data=("hack/git-verify-wrapper.sh", "hack/gpg-wrapper.sh"),
        ships=("manifests/crds",),  # the CRDs of this very version (infra/addons installs them, not the chart's)
        chart="argo-cd",
    ),
    Component(
        name="karpenter",
        module="github.com/aws/karpenter-provider-aws",
        version_key="karpenter",
        purpose="the Karpenter AWS provider's controller",
        binaries=(
            Binary(
                "karpenter",
                "github.com/aws/karpenter-provider-aws/cmd/controller",
                (),
                r"(?:mod|dep)\s+github\.com/aws/karpenter-provider-aws\s+v(\S+)",
            ),
        ),
        cold_minutes=6,
        stamps=lambda facts: {"sigs.k8s.io/karpenter/pkg/operator.Version": facts.version},
        chart="karpenter",
    ),
    Component(
        name="aws-load-balancer-controller",
        module="sigs.k8s.io/aws-load-balancer-controller/v3",
        version_key="aws_load_balancer_controller",
        purpose="turns the game's Ingress into an ALB",
        binaries=(
            Binary(
                "aws-load-balancer-controller",
                "sigs.k8s.io/aws-load-balancer-controller/v3",
                (),
                r"(?:mod|dep)\s+sigs\.k8s\.io/aws-load-balancer-controller/v3\s+v(\S+)",
            ),
        ),
        cold_minutes=3,
        stamps=lambda facts: {
            "sigs.k8s.io/aws-load-balancer-controller/v3/pkg/version.GitVersion": f"v{facts.version}",
            "sigs.k8s.io/aws-load-balancer-controller/v3/pkg/version.BuildDate": facts.module_time,
        },
        # The chart and IAM policy published with the binary: the release installs this chart, and
        # infra/modules/lb-controller's policy must equal this document (gate EKS023/EKS024).
        ships=("helm/aws-load-balancer-controller", "docs/install/iam_policy.json"),
        chart="aws-load-balancer-controller",
    ),
)

BY_NAME = {c.name: c for c in COMPONENTS}
BINARIES = {b.name: c for c in COMPONENTS for b in c.binaries}


def select(names: list[str] | None) -> list[Component]:
    """The components asked for (all when none), in build order; an unknown name is one line naming the known."""
    if not names:
        return list(COMPONENTS)
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise InputError(f"unknown toolchain component {', '.join(unknown)} (known: {', '.join(BY_NAME)})")
    return [c for c in COMPONENTS if c.name in names]


_REQUIRE = re.compile(r"^(?:require\s+)?(?P<module>\S+)\s+(?P<version>v\S+)$")
_TOOL = re.compile(r"^(?:tool\s+)?(?P<package>[\w.\-~/]+)$")


def wrapper_pins(go_mod: str) -> tuple[dict[str, str], list[str]]:
    """The direct requirements (module -> version) and tool packages a wrapper go.mod declares."""
    requires: dict[str, str] = {}
    tools: list[str] = []
    block = ""
    for raw in go_mod.splitlines():
        stripped = raw.split("//", 1)[0].strip()  # tidy marks a tool's module `// indirect`: still the pin
        if not stripped:
            continue
        if stripped.endswith("(") and stripped.split()[0] in ("require", "tool", "replace"):
            block = stripped.split()[0]
            continue
        if stripped == ")":
            block = ""
            continue
        keyword = stripped.split()[0]
        if keyword == "require" or block == "require":
            if match := _REQUIRE.match(stripped):
                requires[match["module"]] = match["version"]
        elif (keyword == "tool" or block == "tool") and (match := _TOOL.match(stripped)):
            tools.append(match["package"])
    return requires, tools


def check_pins(component: Component, toolchain_dir: Path, pinned: Mapping[str, str]) -> str:
    """The pinned version of `component`, after proving its wrapper go.mod builds exactly that."""
    go_mod_path = toolchain_dir / component.name / "go.mod"
    try:
        go_mod = go_mod_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{go_mod_path}: cannot read ({exc.strerror})") from None
    if component.version_key not in pinned:
        raise InputError(f"versions.yaml: no entry {component.version_key!r} (toolchain component {component.name})")
    version = pinned[component.version_key]
    requires, tools = wrapper_pins(go_mod)
    found = requires.get(component.module)
    if found != f"v{version}":
        raise InputError(
            f"{go_mod_path}: requires {component.module} {found or '(nothing)'}, versions.yaml pins "
            f"{component.version_key}: {version}; change them together"
        )
    missing = sorted(set(component.packages()) - set(tools))
    if missing:
        raise InputError(f"{go_mod_path}: no `tool` line for {', '.join(missing)}")
    return version
