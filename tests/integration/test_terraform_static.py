"""infra/ as Terraform itself sees it: formatting, `validate` of the platform root, and its `terraform test` suite.

The platform root is copied (with its modules and versions.yaml) into a temporary folder, so `init` leaves no
lock file or .terraform folder in the checkout. Skips with one line when Terraform or its AWS provider is missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.project import repo_root, versions
from harness.terraform.providers import (
    addons_provider_source,
    addons_providers_missing,
    find_machine_mirror,
    provider_pins,
    provider_source,
    unavailable_reason,
)
from harness.terraform.runner import TerraformCli, find_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cli() -> TerraformCli:
    try:
        return find_cli()
    except HarnessError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def platform_copy(cli: TerraformCli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """An initialised copy of infra/platform and the environment that reaches the provider."""
    version = versions()["aws_provider"]
    if reason := unavailable_reason(version):
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("static")
    source = provider_source(work / "config", find_machine_mirror(version))
    return initialised_copy(cli, work, "platform", source.env, source.unset)


def initialised_copy(
    cli: TerraformCli, work: Path, root_name: str, source_env: dict[str, str], unset: tuple[str, ...] = ()
) -> tuple[Path, dict[str, str]]:
    """infra/ and versions.yaml copied into `work` (init leaves nothing in the checkout), infra/<root_name>
    initialised with the providers from `source_env`; the root and the environment that reaches them."""
    shutil.copytree(repo_root() / "infra", work / "infra")
    shutil.copy(repo_root() / "versions.yaml", work / "versions.yaml")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(source_env, TF_IN_AUTOMATION="1", CHECKPOINT_DISABLE="1", TF_DATA_DIR=str(work / "data"))
    root = work / "infra" / root_name
    run(cli, root, env, "init", "-backend=false", "-input=false")
    return root, env


def run(cli: TerraformCli, root: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(cli.path), f"-chdir={root}", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"terraform {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def test_infra_is_terraform_fmt_clean(cli: TerraformCli) -> None:
    done = subprocess.run(
        [str(cli.path), "fmt", "-check", "-recursive", "-list=true", str(repo_root() / "infra")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"not fmt-clean: {done.stdout.split()}"


def test_platform_root_validates(cli: TerraformCli, platform_copy: tuple[Path, dict[str, str]]) -> None:
    root, env = platform_copy
    assert "The configuration is valid" in run(cli, root, env, "validate", "-no-color").stdout


def test_a_broken_platform_root_fails_validate(cli: TerraformCli, platform_copy: tuple[Path, dict[str, str]]) -> None:
    done = validate_with(cli, platform_copy, 'output "broken" {\n  value = var.no_such_variable\n}\n')
    assert done.returncode != 0
    assert "no_such_variable" in done.stderr + done.stdout


def validate_with(
    cli: TerraformCli, copy: tuple[Path, dict[str, str]], broken: str
) -> subprocess.CompletedProcess[str]:
    """`terraform validate` of the initialised copy with one more file, `broken`, removed again afterwards."""
    root, env = copy
    extra = root / "zz_broken.tf"
    extra.write_text(broken, encoding="utf-8")
    try:
        return subprocess.run(
            [str(cli.path), f"-chdir={root}", "validate", "-no-color"], env=env, capture_output=True, text=True
        )
    finally:
        extra.unlink()


def test_platform_terraform_test_suite_passes(cli: TerraformCli, platform_copy: tuple[Path, dict[str, str]]) -> None:
    """infra/platform/tests: guards that pass and trip, and what the emulator target leaves out (mocked provider)."""
    root, env = platform_copy
    out = run(cli, root, env, "test", "-no-color").stdout
    runs = sum(test.read_text(encoding="utf-8").count('\nrun "') for test in root.glob("tests/*.tftest.hcl"))
    assert f"{runs} passed, 0 failed" in out, out


@pytest.fixture(scope="module")
def addons_copy(cli: TerraformCli, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """An initialised copy of infra/addons: its three providers from one mirror that holds them all, else the
    AWS provider from the machine's mirror and the others from the registry; else a skip naming what is missing."""
    pins = provider_pins(versions())
    work = tmp_path_factory.mktemp("addons-static")
    source = addons_provider_source(work / "config", pins)
    if source is None:
        pytest.skip(addons_providers_missing(pins))
    return initialised_copy(cli, work, "addons", source.env, source.unset)


def test_addons_root_validates(cli: TerraformCli, addons_copy: tuple[Path, dict[str, str]]) -> None:
    root, env = addons_copy
    assert "The configuration is valid" in run(cli, root, env, "validate", "-no-color").stdout


def test_a_broken_addons_root_fails_validate(cli: TerraformCli, addons_copy: tuple[Path, dict[str, str]]) -> None:
    done = validate_with(cli, addons_copy, 'resource "helm_release" "broken" {\n  no_such_argument = 1\n}\n')
    assert done.returncode != 0
    assert "no_such_argument" in done.stderr
