"""A Kubernetes control plane as host processes on loopback: etcd, kube-apiserver, controller-manager and
scheduler from the toolchain, KWOK for kubelets, on generated certificates and free ports, with a kubeconfig
written into the run's directory (never ~/.kube)."""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from harness.errors import EnvironmentProblem
from harness.kube.upgrade import judge_version
from harness.processes import HOST, Supervisor, free_port
from harness.project import versions
from harness.results import Result
from harness.toolchain.build import entry_for, locate
from harness.toolchain.components import BINARIES, CONTROL_PLANE, control_plane_build
from harness.waits import wait_for

SERVICE_CIDR = "172.20.0.0/16"  # EKS's default service range for a 10.x VPC
READY_TIMEOUT_S = 60.0
CONTROLLER_MANAGER = "kube-controller-manager"  # its name among the run's processes
AUDIENCE = "pods.eks.amazonaws.com"  # EKS Pod Identity's token audience
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}  # the Nodes KWOK is the kubelet of
KWOK_NODES = ",".join(f"{key}={value}" for key, value in KWOK_ANNOTATION.items())
AUDIT_LOG = "audit.log"  # in the cluster folder: the API server's record of what ServiceAccounts asked for
# Every request of a ServiceAccount, with its verdict (responseStatus), not its body: enough to name a refused call.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived", "ResponseStarted"],
    "rules": [{"level": "Metadata", "userGroups": ["system:serviceaccounts"]}, {"level": "None"}],
}
CERT_DAYS = 7  # a run's certificates outlive the run, never a week


@dataclass(frozen=True)
class Pki:
    """Files of the run's throwaway PKI: a CA, the API server's serving pair, an admin client, the SA keys."""

    folder: Path

    def path(self, name: str) -> Path:
        return self.folder / name

    def admin_cert(self) -> tuple[str, str]:
        """The admin client's (certificate, key), as requests takes them."""
        return str(self.path("admin.crt")), str(self.path("admin.key"))


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, signer = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def create_pki(folder: Path) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder)
    ca_key, ca_name = _key(), _name("eks-platform-local-ca")
    ca_cert = _certificate(ca_name, ca_key, None, ca=True)
    service_ip = next(ipaddress.IPv4Network(SERVICE_CIDR).hosts())
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.IPv4Address(HOST)),
        x509.IPAddress(service_ip),
        *(x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")),
    ]
    pairs = {
        "apiserver": (_name("kube-apiserver"), sans, ExtendedKeyUsageOID.SERVER_AUTH),
        # system:masters: the admin the harness and Terraform act as, as the cluster creator is on EKS.
        "admin": (_name("eks-platform-admin", "system:masters"), None, ExtendedKeyUsageOID.CLIENT_AUTH),
    }
    pki.path("ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pki.path("ca.key"), ca_key)
    for name, (subject, alt_names, usage) in pairs.items():
        key = _key()
        cert = _certificate(subject, key, (ca_name, ca_key), sans=alt_names, usage=usage)
        pki.path(f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki.path(f"{name}.key"), key)
    sa_key = _key()
    _write_key(pki.path("sa.key"), sa_key)
    pki.path("sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return pki


def kubeconfig(server: str, pki: Pki, name: str = "local") -> dict[str, object]:
    """A kubeconfig for the run's API server as the admin (the run's client certificate, the harness's alone)."""
    admin = {"client-certificate": str(pki.path("admin.crt")), "client-key": str(pki.path("admin.key"))}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(pki.path("ca.crt"))}}],
        "users": [{"name": "admin", "user": admin}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}}],
        "current-context": name,
    }


@dataclass(frozen=True)
class ControlPlane:
    server: str  # https://127.0.0.1:PORT
    kubeconfig: Path
    pki: Pki
    supervisor: Supervisor
    etcd: str = ""  # its client URL, where the API server that started it keeps the cluster's objects

    def crd_established(self, name: str, timeout: float = 120.0) -> None:
        """Wait until the CRD `name` serves its kind. `kubectl wait --for=condition=Established` fails outright
        on a CRD created a moment ago ("status.conditions accessor error": it has no status yet), so poll it."""
        established = '{.status.conditions[?(@.type=="Established")].status}'
        verdict = wait_for(
            lambda: self.kubectl("get", f"crd/{name}", "-o", f"jsonpath={established}").strip(),
            lambda status: (
                Result.passed("crd", "Established")
                if status == "True"
                else Result.pending("crd", f"Established is {status or 'not reported yet'}")
            ),
            timeout,
            interval=0.5,
            max_interval=2.0,
            retry_on=(EnvironmentProblem,),
        )
        if not verdict.ok:
            raise EnvironmentProblem(f"CRD {name} not Established within {timeout:.0f} s: {verdict.why}")

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 180.0) -> str:
        """The toolchain's kubectl against this cluster; a failure is one line with kubectl's last words."""
        # The run's own discovery cache: ~/.kube/cache is keyed by host:port, which another run's server had before.
        cache = self.kubeconfig.parent / "kubectl-cache"
        done = subprocess.run(
            [str(locate("kubectl")), "--kubeconfig", str(self.kubeconfig), f"--cache-dir={cache}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "no output")
            raise EnvironmentProblem(f"kubectl {' '.join(args[:3])}: {last.strip()}")
        return done.stdout

    @property
    def audit_log(self) -> Path:
        return self.kubeconfig.with_name(AUDIT_LOG)

    def audit_events(self, containing: str = "") -> list[dict[str, Any]]:
        """The audit log's events whose line contains `containing` (a cheap filter before parsing)."""
        try:
            lines = self.audit_log.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            if containing in line:
                with contextlib.suppress(json.JSONDecodeError):  # the line being written as we read
                    events.append(json.loads(line))
        return events

    def serving(self) -> bool:
        """Whether the API server answers (its /readyz), whatever else of the run has died."""
        try:
            return self.get("/readyz").status_code == 200
        except requests.RequestException:
            return False

    def get(self, path: str, timeout: float = 5.0) -> requests.Response:
        """An authenticated GET against the API server as the admin."""
        return requests.get(
            f"{self.server}{path}",
            cert=self.pki.admin_cert(),
            verify=str(self.pki.path("ca.crt")),
            timeout=timeout,
        )


def answers(url: str, **kwargs: Any) -> bool:
    """A readiness probe: True once `url` answers 200 (requests' keywords: `verify`, `cert`)."""
    try:
        return requests.get(url, timeout=2.0, **kwargs).status_code == 200
    except requests.RequestException:
        return False


def start_etcd(supervisor: Supervisor, data_dir: Path) -> str:
    client, peer = f"http://{HOST}:{free_port()}", f"http://{HOST}:{free_port()}"
    command = [
        str(locate("etcd")),
        "--name=local",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=local={peer}",
        "--unsafe-no-fsync",  # a throwaway run's store: durability buys nothing and costs seconds
        "--listen-metrics-urls=",
    ]
    supervisor.start("etcd", command, ready=lambda: answers(f"{client}/health"), timeout_s=READY_TIMEOUT_S)
    return client


def serves_release(server: str, release: str, **kwargs: Any) -> bool:
    """A readiness probe of one API server among those sharing a port: True once a connection reaches one that
    reports `release` and is ready (both asked on that same connection; requests' keywords: `verify`, `cert`)."""
    with requests.Session() as session:
        try:
            version = session.get(f"{server}/version", timeout=2.0, **kwargs).json().get("gitVersion", "")
            if not judge_version(str(version), release).ok:
                return False
            return session.get(f"{server}/readyz", timeout=2.0, **kwargs).status_code == 200
        except (requests.RequestException, ValueError):
            return False


def start_apiserver(
    supervisor: Supervisor,
    pki: Pki,
    etcd: str,
    audit_log: Path,
    *,
    suffix: str = "",
    port: int | None = None,
    release: str | None = None,
) -> str:
    """`suffix`: which minor's binary (components.UPGRADE_FROM for the previous one); `port`: a server's own, which
    it then shares with the server it replaces until that one stops; `release`: what the new one reports, for its
    readiness probe to tell it from the one it replaces."""
    port = port or free_port()
    server = f"https://{HOST}:{port}"
    policy = audit_log.with_name("audit-policy.yaml")
    policy.write_text(yaml.safe_dump(AUDIT_POLICY), encoding="utf-8")
    command = [
        str(locate(f"kube-apiserver{suffix}")),
        f"--etcd-servers={etcd}",
        f"--bind-address={HOST}",
        f"--advertise-address={HOST}",
        f"--secure-port={port}",
        f"--tls-cert-file={pki.path('apiserver.crt')}",
        f"--tls-private-key-file={pki.path('apiserver.key')}",
        f"--client-ca-file={pki.path('ca.crt')}",
        f"--service-account-issuer={server}",
        f"--service-account-key-file={pki.path('sa.pub')}",
        f"--service-account-signing-key-file={pki.path('sa.key')}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit_log}",
        "--audit-log-format=json",
        "--allow-privileged=true",
        "--profiling=false",
        # No kube-proxy makes Service IPs answer: the API server calls a webhook's Service at a ready endpoint.
        "--enable-aggregator-routing=true",
        # EKS runs its API servers side by side behind one endpoint and replaces them one at a time: a replacement
        # here serves on the same port (SO_REUSEPORT) before the one it replaces stops.
        "--permit-port-sharing=true",
    ]
    auth = {
        "cert": pki.admin_cert(),
        "verify": str(pki.path("ca.crt")),
    }

    def ready() -> bool:
        return serves_release(server, release, **auth) if release else answers(f"{server}/readyz", **auth)

    supervisor.start("kube-apiserver", command, ready=ready, timeout_s=READY_TIMEOUT_S)
    return server


def _serving(pki: Pki) -> tuple[list[str], Callable[[], bool]]:
    """Flags that make a component serve on a free loopback port with the run's certificate, and its probe."""
    port = free_port()
    flags = [
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        f"--tls-cert-file={pki.path('apiserver.crt')}",
        f"--tls-private-key-file={pki.path('apiserver.key')}",
        *(
            f"--{flag}={pki.path('admin.kubeconfig')}"
            for flag in ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig")
        ),
        "--leader-elect=false",
    ]
    return flags, lambda: answers(f"https://{HOST}:{port}/healthz", verify=str(pki.path("ca.crt")))


def start_controller_manager(supervisor: Supervisor, pki: Pki, *, suffix: str = "") -> None:
    serving, ready = _serving(pki)
    command = [
        str(locate(f"{CONTROLLER_MANAGER}{suffix}")),
        *serving,
        f"--service-account-private-key-file={pki.path('sa.key')}",
        f"--root-ca-file={pki.path('ca.crt')}",
        f"--cluster-signing-cert-file={pki.path('ca.crt')}",
        f"--cluster-signing-key-file={pki.path('ca.key')}",
        "--use-service-account-credentials=true",
    ]
    supervisor.start(CONTROLLER_MANAGER, command, ready=ready, timeout_s=READY_TIMEOUT_S)


def start_scheduler(supervisor: Supervisor, pki: Pki, *, suffix: str = "") -> None:
    serving, ready = _serving(pki)
    supervisor.start(
        "kube-scheduler", [str(locate(f"kube-scheduler{suffix}")), *serving], ready=ready, timeout_s=READY_TIMEOUT_S
    )


def start_kwok(supervisor: Supervisor, kubeconfig_path: Path) -> None:
    """KWOK in place of the kubelets of the nodes Karpenter launches (the node registrar marks them): it makes them
    Ready and runs their pods. The ops nodes' pods are harness.targets.kubelet's."""
    port = free_port()
    entry = entry_for(BINARIES["kwok"])
    command = [
        str(locate("kwok")),
        f"--kubeconfig={kubeconfig_path}",
        f"--manage-nodes-with-annotation-selector={KWOK_NODES}",
        f"--server-address={HOST}:{port}",
        *(f"--config={entry.data(stage)}" for stage in entry.component.data),
    ]
    supervisor.start("kwok", command, ready=lambda: answers(f"http://{HOST}:{port}/healthz"), timeout_s=READY_TIMEOUT_S)


def start_control_plane(run_dir: Path, supervisor: Supervisor, *, full: bool = True, suffix: str = "") -> ControlPlane:
    """Start the control plane into `supervisor` (the caller stops it).

    `full`: also the controller-manager, the scheduler and KWOK; without it only etcd and the API server.
    `suffix`: the minor of the API server, controller-manager and scheduler (components.UPGRADE_FROM: the previous).
    """
    pki = create_pki(run_dir / "pki")
    etcd = start_etcd(supervisor, run_dir / "etcd")
    server = start_apiserver(supervisor, pki, etcd, run_dir / AUDIT_LOG, suffix=suffix)
    path = run_dir / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig(server, pki)), encoding="utf-8")
    shutil.copyfile(path, pki.path("admin.kubeconfig"))  # what the components use; `path` is the user's
    if full:
        start_controller_manager(supervisor, pki, suffix=suffix)
        start_scheduler(supervisor, pki, suffix=suffix)
        start_kwok(supervisor, path)
    return ControlPlane(server, path, pki, supervisor, etcd)


def replace_control_plane(
    plane: ControlPlane, supervisor: Supervisor, stop: Callable[[], None], *, release: str, suffix: str = ""
) -> None:
    """What EKS does to a control plane in a minor upgrade, on `local`: the API server of `suffix`'s minor (which
    reports `release`) starts beside the running one on the same port, etcd data, certificates and ServiceAccount
    issuer (tokens already issued stay valid); once it serves, `stop` stops the old control plane, and the new
    controller-manager and scheduler start. KWOK and etcd keep running. No client loses the API server, as none
    does on EKS (only a watch or a request the old one held ends, and is made again)."""
    if not plane.etcd:
        raise EnvironmentProblem(
            "the control-plane upgrade needs the control plane's etcd; this one was attached without its URL"
        )
    port = urlsplit(plane.server).port
    start_apiserver(supervisor, plane.pki, plane.etcd, plane.audit_log, port=port, suffix=suffix, release=release)
    stop()
    start_controller_manager(supervisor, plane.pki, suffix=suffix)
    start_scheduler(supervisor, plane.pki, suffix=suffix)


def upgrade_control_plane(plane: ControlPlane) -> None:
    """The minor upgrade of a control plane this process started: the pinned minor's in place of its own."""
    if not plane.etcd or not plane.supervisor.running:
        raise EnvironmentProblem(
            "the control-plane upgrade needs the control plane this process started (its etcd and processes); "
            "one attached from a run's records has neither"
        )
    old = [process for process in plane.supervisor.running if process.name in CONTROL_PLANE]
    pins = versions()
    release, suffix = control_plane_build(str(pins["kubernetes"]), pins)
    replace_control_plane(plane, plane.supervisor, lambda: plane.supervisor.stop(old), release=release, suffix=suffix)


def attach(run_dir: Path, server: str, etcd: str = "") -> ControlPlane:
    """A control plane another process started in `run_dir` (its processes are stopped by their records)."""
    return ControlPlane(server, run_dir / "kubeconfig", Pki(run_dir / "pki"), Supervisor(run_dir / "logs"), etcd)


@contextmanager
def control_plane(run_dir: Path, *, full: bool = True) -> Iterator[ControlPlane]:
    """The control plane for the duration of the block, stopped however the block ends."""
    supervisor = Supervisor(run_dir / "logs")
    try:
        yield start_control_plane(run_dir, supervisor, full=full)
    finally:
        supervisor.stop_all()
