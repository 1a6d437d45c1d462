"""The S3 backend option (examples/backend) against a moto server: native locking, and infra/addons reading
the platform's outputs from the same bucket.

Two throwaway roots stand in for the real ones, which need the AWS, helm and kubernetes providers:
- "platform": one output, `backend_override.tf` copied from examples/backend as the README says, initialised
  with examples/backend/platform.s3.tfbackend and applied. Its state lands in the bucket; a lock object left
  behind (`<key>.tflock`, what use_lockfile writes) makes the next plan wait for the lock and fail.
- "addons": infra/addons/platform_state.tf as committed plus the two variables it reads from
  infra/addons/variables.tf, with `platform_state_s3` pointing at the platform's state key.
Only what the emulator needs is added: the endpoint (AWS_ENDPOINT_URL_S3/STS), path-style addressing and no
account lookups, in a backend file of the test's own and in the reader's S3 settings.

The S3 backend and terraform_remote_state are built into Terraform, so no provider is involved. Skips with one
line without Terraform >= 1.10 (use_lockfile) or moto. Self-contained on purpose (no harness imports).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "backend"
ADDONS = REPO / "infra" / "addons"
BUCKET = "example-terraform-state-111122223333-eu-west-1"  # the examples' bucket name, created in moto
PLATFORM_KEY = "eks-platform/platform.tfstate"
REGION = "eu-west-1"
EMULATOR_SETTINGS = {
    "use_path_style": "true",
    "skip_credentials_validation": "true",
    "skip_requesting_account_id": "true",
    "skip_metadata_api_check": "true",
}


def terraform() -> str:
    cli = shutil.which("terraform")
    if cli is None:
        pytest.skip("terraform is not on PATH")
    shown = subprocess.run([cli, "version", "-json"], capture_output=True, text=True, timeout=60, check=False)
    version = json.loads(shown.stdout or "{}").get("terraform_version", "0")
    if tuple(int(p) for p in re.findall(r"\d+", version)[:2]) < (1, 10):
        pytest.skip(f"terraform {version}: the S3 backend's use_lockfile needs >= 1.10")
    return cli


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server of this module's own, with the examples' bucket in it."""
    pytest.importorskip("moto.server", reason="moto server is not installed")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start (see {log.name})")
                time.sleep(0.3)
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def environment(endpoint: str, data_dir: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TF_"))}
    return {
        **keep,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ENDPOINT_URL_STS": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_DATA_DIR": str(data_dir),
    }


def run(cli: str, root: Path, env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [cli, f"-chdir={root}", *args, "-no-color"], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if ok:
        assert done.returncode == 0, f"terraform {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def variable_blocks(text: str, names: set[str]) -> str:
    """The `variable "<name>" { ... }` blocks of a variables.tf (top-level blocks end at a line '}')."""
    found = dict(
        (name, block)
        for block, name in re.findall(r'(^variable "([^"]+)" \{\n.*?^\}\n)', text, flags=re.MULTILINE | re.DOTALL)
    )
    assert names <= set(found), f"infra/addons/variables.tf lacks {names - set(found)}"
    return "\n".join(found[name] for name in sorted(names))


@pytest.fixture(scope="module")
def platform(s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict[str, str]]:
    """The stand-in platform root, applied into the bucket through the example backend files."""
    cli = terraform()
    work = tmp_path_factory.mktemp("s3-platform")
    root = work / "platform"
    root.mkdir()
    (root / "main.tf").write_text(
        'terraform {\n  backend "local" {}\n}\n\noutput "cluster_name" {\n  value = "eks-platform"\n}\n',
        encoding="utf-8",
    )
    shutil.copy(EXAMPLES / "backend_override.tf", root / "backend_override.tf")
    emulator = work / "emulator.s3.tfbackend"
    emulator.write_text("".join(f"{k} = {v}\n" for k, v in EMULATOR_SETTINGS.items()), encoding="utf-8")
    env = environment(s3_endpoint, work / "data")
    run(
        cli,
        root,
        env,
        "init",
        "-input=false",
        f"-backend-config={EXAMPLES / 'platform.s3.tfbackend'}",
        f"-backend-config={emulator}",
    )
    run(cli, root, env, "apply", "-auto-approve", "-input=false")
    return cli, root, env


def test_the_platform_state_lands_in_the_bucket_under_the_example_key(
    platform: tuple[str, Path, dict[str, str]], s3_endpoint: str
) -> None:
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    state = json.loads(s3.get_object(Bucket=BUCKET, Key=PLATFORM_KEY)["Body"].read())
    assert state["outputs"]["cluster_name"]["value"] == "eks-platform"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert f"{PLATFORM_KEY}.tflock" not in listed  # released after the apply
    assert not (platform[1] / "terraform.tfstate").exists()


def test_a_held_lock_stops_a_second_run(platform: tuple[str, Path, dict[str, str]], s3_endpoint: str) -> None:
    """use_lockfile: another run's <key>.tflock makes Terraform refuse to touch the state."""
    import boto3

    cli, root, env = platform
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    held = {
        "ID": "6a1f9d3e-0000-4000-8000-000000000000",
        "Operation": "OperationTypeApply",
        "Who": "someone@elsewhere",
        "Version": "1.11.4",
        "Created": "2026-11-28T10:00:00Z",
        "Info": "",
        "Path": f"{BUCKET}/{PLATFORM_KEY}",
    }
    s3.put_object(Bucket=BUCKET, Key=f"{PLATFORM_KEY}.tflock", Body=json.dumps(held).encode())
    try:
        blocked = run(cli, root, env, "plan", "-input=false", "-lock-timeout=2s", ok=False)
    finally:
        s3.delete_object(Bucket=BUCKET, Key=f"{PLATFORM_KEY}.tflock")
    assert blocked.returncode != 0
    assert "Error acquiring the state lock" in blocked.stderr + blocked.stdout
    run(cli, root, env, "plan", "-input=false")  # free again once the lock is gone


def test_the_addons_root_reads_the_platform_outputs_from_the_bucket(
    platform: tuple[str, Path, dict[str, str]], tmp_path: Path
) -> None:
    cli, _, env = platform
    reader = tmp_path / "addons"
    reader.mkdir()
    source = (ADDONS / "platform_state.tf").read_text(encoding="utf-8")
    settings = "".join(f'    {k} = "{v}"\n' for k, v in EMULATOR_SETTINGS.items())
    patched = source.replace(
        "    region = var.platform_state_s3.region\n", f"    region = var.platform_state_s3.region\n{settings}"
    )
    assert patched != source, "infra/addons/platform_state.tf no longer passes the region to the S3 reader"
    (reader / "platform_state.tf").write_text(patched, encoding="utf-8")
    variables = variable_blocks(
        (ADDONS / "variables.tf").read_text(encoding="utf-8"), {"platform_state_path", "platform_state_s3"}
    )
    (reader / "variables.tf").write_text(variables, encoding="utf-8")
    (reader / "outputs.tf").write_text(
        'output "cluster_name" {\n  value = local.platform.cluster_name\n}\n', encoding="utf-8"
    )
    reader_env = {**env, "TF_DATA_DIR": str(tmp_path / "data")}
    run(cli, reader, reader_env, "init", "-input=false")
    location = json.dumps({"bucket": BUCKET, "key": PLATFORM_KEY, "region": REGION})
    run(cli, reader, reader_env, "apply", "-auto-approve", "-input=false", f"-var=platform_state_s3={location}")
    shown = run(cli, reader, reader_env, "output", "-raw", "cluster_name")
    assert shown.stdout.strip() == "eks-platform"


def test_without_s3_the_addons_root_refuses_a_missing_local_state(
    platform: tuple[str, Path, dict[str, str]], tmp_path: Path
) -> None:
    cli, _, env = platform
    reader = tmp_path / "addons"
    reader.mkdir()
    shutil.copy(ADDONS / "platform_state.tf", reader / "platform_state.tf")
    (reader / "variables.tf").write_text(
        variable_blocks(
            (ADDONS / "variables.tf").read_text(encoding="utf-8"), {"platform_state_path", "platform_state_s3"}
        ),
        encoding="utf-8",
    )
    reader_env = {**env, "TF_DATA_DIR": str(tmp_path / "data")}
    run(cli, reader, reader_env, "init", "-input=false")
    refused = run(cli, reader, reader_env, "plan", "-input=false", "-var=platform_state_path=nowhere.tfstate", ok=False)
    assert refused.returncode != 0
    assert "no state file at nowhere.tfstate" in " ".join((refused.stderr + refused.stdout).split())
