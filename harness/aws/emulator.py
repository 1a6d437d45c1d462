"""The local AWS emulator: a moto server process on 127.0.0.1, or the endpoint in AWS_ENDPOINT_URL.

The process is harness.aws.moto_server (moto's server with the gaps infra/targets.yaml declares patched), serving
the images declared there.

The process runs in its own session, so it outlives `harness up` (the run records its pid and port) and
a terminal Ctrl-C does not reach it; `stop` ends it (SIGTERM, then SIGKILL) and is safe to call twice.
Nothing here starts containers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_exponential, wait_random

from harness.aws.authorization import DECISIONS_ENV
from harness.errors import EnvironmentProblem
from harness.processes import HOST, free_port, port_free, runs, stop_group
from harness.project import local_target

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
EKS_AMI_PARAMETERS = "/aws/service/eks/optimized-ami/"
EKS_AL2023_NAME = re.compile(
    r"^amazon-eks-node-al2023-(?P<arch>x86_64|arm64)-(?P<variant>[a-z]+)-(?P<minor>\d+\.\d+)-v\d+$"
)
PORT_ENV = "HARNESS_EMULATOR_PORT"
READY_TIMEOUT_S = 30.0
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# moto knows AWS managed IAM policies (e.g. AmazonEKSClusterPolicy) only when asked to load them.
MOTO_SETTINGS = {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
# Variables that would send the child to a real account or profile instead of the emulator.
REAL_ACCOUNT_VARS = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@dataclass
class Emulator:
    """An emulator endpoint; `pid` is set only when the harness started (and so owns) the process."""

    endpoint: str
    pid: int | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def owned(self) -> bool:
        return self.pid is not None

    def settings(self) -> dict[str, Any]:
        """What a later `harness verify/down` needs to find this emulator again (Run.settings)."""
        return {"endpoint": self.endpoint, "pid": self.pid, "log": str(self.log_path) if self.log_path else None}

    @classmethod
    def from_settings(cls, data: Mapping[str, Any]) -> Emulator:
        log = data.get("log")
        return cls(str(data["endpoint"]), data.get("pid"), Path(log) if log else None)

    def alive(self) -> bool:
        """For an owned process: is it still the moto server we started? For an external one: does it answer?"""
        if self.pid is None:
            return answers(self.endpoint)
        if self.process is not None:
            return self.process.poll() is None
        return is_moto_process(self.pid)

    def death_notice(self) -> str | None:
        """A watchdog for long Terraform commands: the reason to abort, or None while the emulator lives."""
        if self.pid is not None and not self.alive():
            return f"the emulator (moto server pid {self.pid}) exited"
        return None

    def child_env(self, region: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment that points Terraform and boto3 at this emulator only."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if k not in REAL_ACCOUNT_VARS}
        env.update(DUMMY_CREDENTIALS)
        env.update(
            {
                ENDPOINT_ENV: self.endpoint,
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": region,
                "AWS_EC2_METADATA_DISABLED": "true",
                # Fail fast instead of retrying a dead endpoint 25 times with backoff.
                "AWS_MAX_ATTEMPTS": "5",
            }
        )
        return env

    def stop(self) -> None:
        """End an owned emulator process (no-op for an external endpoint or one already gone)."""
        if self.pid is None:
            return
        if self.process is not None:
            process = self.process
            stop_group(process.pid, lambda: process.poll() is None)
        elif is_moto_process(self.pid):
            pid = self.pid
            stop_group(pid, lambda: is_moto_process(pid))
        self.process = None


def answers(endpoint: str, timeout: float = 2.0) -> bool:
    """True when anything speaks HTTP at the endpoint (an error status still counts as an answer)."""
    try:
        with urllib.request.urlopen(endpoint.rstrip("/") + "/moto-api/", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def is_moto_process(pid: int) -> bool:
    """The pid is alive and (where /proc exists) runs a moto server: never signal a recycled pid."""
    return runs(pid, "moto_server") or runs(pid, "moto.server")


def external(env: Mapping[str, str] | None = None) -> Emulator | None:
    """The emulator named by AWS_ENDPOINT_URL, when set: used as is, nothing is started."""
    endpoint = (os.environ if env is None else env).get(ENDPOINT_ENV)
    return Emulator(endpoint) if endpoint else None


def server_command(port: int) -> list[str]:
    """The harness's moto server, from this interpreter's environment (no container engine involved)."""
    return [sys.executable, "-m", "harness.aws.moto_server", "-H", HOST, "-p", str(port)]


@dataclass(frozen=True)
class EksAmi:
    """An EKS optimized AMI among the emulator's images, with the SSM parameter EKS publishes its id under."""

    image_id: str
    minor: str  # the Kubernetes minor it is built for ("1.36")
    parameter: str  # /aws/service/eks/optimized-ami/<minor>/amazon-linux-2023/<arch>/<variant>/<name>/image_id


def eks_amis(images: Sequence[Mapping[str, Any]]) -> list[EksAmi]:
    """The images named as EKS names its AL2023 AMIs (amazon-eks-node-al2023-<arch>-<variant>-<minor>-v<release>),
    each with the parameter Karpenter's `al2023@v<release>` alias reads for its cluster's minor."""
    found = []
    for image in images:
        if named := EKS_AL2023_NAME.match(str(image.get("name", ""))):
            arch, variant, minor = named["arch"], named["variant"], named["minor"]
            path = f"{EKS_AMI_PARAMETERS}{minor}/amazon-linux-2023/{arch}/{variant}/{image['name']}/image_id"
            found.append(EksAmi(str(image["ami_id"]), minor, path))
    return found


def images_file(folder: Path) -> Path:
    """The images the emulator serves (infra/targets.yaml local_target.emulator_images), written for MOTO_AMIS_PATH."""
    path = folder / "emulator-images.json"
    path.write_text(json.dumps(local_target().emulator_images, indent=2), encoding="utf-8")
    return path


def start(
    log_path: Path,
    *,
    port: int | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
    iam_decisions: Path | None = None,
) -> Emulator:
    """Start `python -m moto.server` on 127.0.0.1 (port from the argument, $HARNESS_EMULATOR_PORT or a free one);
    with `iam_decisions`, calls on assumed roles are authorized as IAM would and recorded there
    (harness.aws.authorization)."""
    requested = port or (int(os.environ[PORT_ENV]) if os.environ.get(PORT_ENV, "").isdigit() else None)
    if requested is not None and not port_free(requested):
        raise EnvironmentProblem(
            f"emulator port {requested} on {HOST} is taken by another process: free it or choose another "
            f"(unset {PORT_ENV} to pick a free port)"
        )
    chosen = requested or free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            server_command(chosen),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={
                **os.environ,
                **MOTO_SETTINGS,
                "MOTO_AMIS_PATH": str(images_file(log_path.parent)),
                **({DECISIONS_ENV: str(iam_decisions)} if iam_decisions else {}),
            },
        )
    emulator = Emulator(f"http://{HOST}:{chosen}", process.pid, log_path, process)
    try:
        _wait_ready(emulator, ready_timeout_s)
    except BaseException:
        emulator.stop()
        raise
    return emulator


def _wait_ready(emulator: Emulator, timeout_s: float) -> None:
    def not_ready(ok: bool) -> bool:
        return not ok

    def probe() -> bool:
        if emulator.process is not None and emulator.process.poll() is not None:
            raise EnvironmentProblem(
                f"the emulator exited at start (code {emulator.process.returncode}): {_log_tail(emulator.log_path)}"
            )
        return answers(emulator.endpoint, timeout=1.0)

    try:
        Retrying(
            retry=retry_if_result(not_ready),
            stop=stop_after_delay(timeout_s),
            wait=wait_exponential(multiplier=0.1, max=1.0) + wait_random(0, 0.1),
        )(probe)
    except RetryError:
        raise EnvironmentProblem(
            f"the emulator did not answer at {emulator.endpoint} within {timeout_s:.0f}s (log: {emulator.log_path})"
        ) from None


def _log_tail(log_path: Path | None) -> str:
    if log_path is None or not log_path.is_file():
        return "no log"
    lines = [line for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"empty log {log_path}"
