"""Where infra/addons' helm and kubernetes providers can be installed (a filesystem mirror holding them, or the
registry), the local target applies infra/addons with `terraform apply` itself, as a user's account would get it:
the releases from the pinned chart folders (chart_folders), Argo CD's CRDs from the pinned module
(argocd_crds_folder), the run's API server (kubeconfig_path). The stage reports that Terraform ran (a pass), and the
teardown's `terraform destroy` takes the add-ons out again. A root Terraform refuses fails the stage in one line
naming its file and line, and leaves nothing running.

Where the providers cannot be installed (this project's own CI: the Go module proxy refuses them), both tests skip
in one line saying so, and the run takes the release-by-release path (tests/e2e, test_local_identity.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree

import pytest

from harness.e2e.orchestration import ADDONS_BY_TERRAFORM_CHECK
from harness.project import repo_root, versions
from harness.targets.local import unavailable
from harness.terraform.providers import addons_provider_source, addons_providers_missing, provider_pins

if TYPE_CHECKING:
    from tests.conftest import LocalE2E

pytestmark = [pytest.mark.integration, pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))]
BROKEN = """resource "helm_release" "broken" {
  name             = "broken"
  chart            = "${path.module}/charts/bootstrap"
  no_such_argument = 1
}
"""


@pytest.fixture
def providers(tmp_path: Path) -> None:
    pins = provider_pins(versions())
    if addons_provider_source(tmp_path / "providers", pins) is None:
        pytest.skip(f"the Terraform path of the add-ons cannot run here: {addons_providers_missing(pins)}")


def test_terraform_applies_the_addons_to_the_local_cluster_and_destroys_them(
    providers: None, local_e2e: LocalE2E
) -> None:
    done, run = local_e2e(repo_root(), 1200)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    (row,) = ElementTree.parse(run / "junit.xml").findall(f".//testcase[@name='{ADDONS_BY_TERRAFORM_CHECK}']")
    assert list(row) == [], ElementTree.tostring(row)  # neither failed nor skipped (not applicable)
    applied = (run / "logs").glob("addons-*-apply.log")
    assert any("Apply complete! Resources: 9 added" in log.read_text(encoding="utf-8") for log in applied), output
    assert "teardown destroy-addons: pass: terraform destroyed infra/addons" in output, output
    assert "teardown sweep: pass" in output, output
    state = json.loads((run / "addons.tfstate").read_text(encoding="utf-8"))
    assert state["resources"] == [] or all(not r.get("instances") for r in state["resources"]), state


def test_a_root_terraform_refuses_fails_the_addons_stage_naming_its_file_and_line(
    providers: None, repo_copy: Path, local_e2e: LocalE2E
) -> None:
    (repo_copy / "infra" / "addons" / "zz_broken.tf").write_text(BROKEN, encoding="utf-8")
    done, run = local_e2e(repo_copy, 1200)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output, output
    failed = next(line for line in output.splitlines() if line.startswith("stage addons: fail"))
    assert "zz_broken.tf:4" in failed and "no_such_argument" in failed, output
    assert "teardown sweep: pass" in output, output
    assert json.loads((run / "run.json").read_text(encoding="utf-8"))["settings"].get("processes") in (None, [])
