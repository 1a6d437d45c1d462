from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_registry import FakeRegistry, serve

from harness.cli import main
from harness.errors import InputError
from harness.gate.api import check
from harness.images.pin import node_architectures, plan_pins, replace_value, write_files
from harness.images.registry_client import RegistryClient
from harness.project import repo_root

AWS_IMAGE = "public.ecr.aws/l6m2t8p7/docker-2048:latest"


def _no_sleep(_seconds: float) -> None:
    pass


def test_replace_value_keeps_quotes_comments_and_list_items() -> None:
    text = textwrap.dedent("""\
        a:
          image: repo/app:latest  # the game
          other: repo/app:latest
        - image: "repo/app:latest"
        image: repo/app:latest-2
        """)
    new, count = replace_value(text, ["image"], "repo/app:latest", "repo/app:latest@sha256:1")
    assert count == 2
    assert new == textwrap.dedent("""\
        a:
          image: repo/app:latest@sha256:1  # the game
          other: repo/app:latest
        - image: "repo/app:latest@sha256:1"
        image: repo/app:latest-2
        """)


def test_node_architectures_come_from_nodepool_requirements() -> None:
    pool = {
        "kind": "NodePool",
        "spec": {
            "template": {
                "spec": {
                    "requirements": [
                        {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]},
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                    ]
                }
            }
        },
    }
    excluded = {
        "kind": "NodePool",
        "spec": {
            "template": {
                "spec": {"requirements": [{"key": "kubernetes.io/arch", "operator": "NotIn", "values": ["s390x"]}]}
            }
        },
    }
    assert node_architectures([pool, excluded, {"kind": "Deployment"}, None]) == {"amd64", "arm64"}
    assert node_architectures([]) == set()


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with serve() as fake:
        yield fake


@pytest.fixture
def checkout(tmp_path: Path, registry: FakeRegistry) -> Path:
    """A copy of this repository whose game image lives in the loopback registry instead of ECR Public."""
    source = repo_root()
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns(".terraform*", "*.tfstate*", "tests")
    shutil.copytree(source / "infra", root / "infra", ignore=ignore)
    shutil.copytree(source / "gitops", root / "gitops")
    shutil.copy(source / "versions.yaml", root / "versions.yaml")
    local_image = f"{registry.host}/l6m2t8p7/docker-2048:latest"
    for path in [root / "versions.yaml", *root.joinpath("gitops").rglob("*.yaml")]:
        text = path.read_text(encoding="utf-8")
        if AWS_IMAGE in text:
            path.write_text(text.replace(AWS_IMAGE, local_image), encoding="utf-8")
    return root


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_pinning_rewrites_versions_and_every_manifest_that_uses_the_image(
    checkout: Path, registry: FakeRegistry, reference: Path
) -> None:
    digest = registry.add_index("l6m2t8p7/docker-2048", "latest", [("linux", "amd64")])
    before = check([checkout / "infra"], [checkout / "gitops"], reference, select=["EKS016", "EKS028"])
    assert [f.rule_id for f in before.findings] == ["EKS028"]  # the moving tag, before pinning

    pins, contents = plan_pins(checkout, None, RegistryClient(sleep=_no_sleep))
    [pin] = pins
    assert pin.key == "game_2048_image"
    assert pin.new == f"{registry.host}/l6m2t8p7/docker-2048:latest@{digest}"
    assert sorted(path.relative_to(checkout).as_posix() for path in contents) == [
        "gitops/apps/game-2048/deployment.yaml",
        "versions.yaml",
    ]

    write_files(contents)
    assert f'game_2048_image: "{pin.new}"' in (checkout / "versions.yaml").read_text(encoding="utf-8")
    after = check([checkout / "infra"], [checkout / "gitops"], reference, select=["EKS016", "EKS028"])
    assert after.findings == []  # one pin, everywhere: versions.yaml and the manifest agree

    again, changes = plan_pins(checkout, None, RegistryClient(sleep=_no_sleep))
    assert again[0].new == again[0].old and changes == {}  # pinning twice changes nothing


def test_an_image_without_a_build_for_a_nodepool_architecture_is_refused(
    checkout: Path, registry: FakeRegistry
) -> None:
    registry.add_image("l6m2t8p7/docker-2048", "latest", arch="arm64")  # the NodePool allows amd64 only
    with pytest.raises(InputError, match=r"no build for linux/amd64.*image has: linux/arm64"):
        plan_pins(checkout, None, RegistryClient(sleep=_no_sleep))


def test_an_unknown_key_is_named(checkout: Path) -> None:
    with pytest.raises(InputError, match=r"no image pin named 'game_image' \(image pins: game_2048_image\)"):
        plan_pins(checkout, ["game_image"], RegistryClient(sleep=_no_sleep))


@pytest.fixture
def cli_repo(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    repo_root.cache_clear()
    monkeypatch.setenv("HARNESS_REPO", str(checkout))
    yield checkout
    repo_root.cache_clear()


def test_cli_pins_and_prints_what_it_changed(
    cli_repo: Path, registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = registry.add_index("l6m2t8p7/docker-2048", "latest", [("linux", "amd64"), ("linux", "arm64")])
    assert main(["pin-image", "--dry-run"]) == 0
    assert "dry run: nothing written" in capsys.readouterr().out
    assert digest not in (cli_repo / "versions.yaml").read_text(encoding="utf-8")

    assert main(["pin-image"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(
        f"game_2048_image: {registry.host}/l6m2t8p7/docker-2048:latest@{digest} "
        "(linux/amd64, linux/arm64; versions.yaml, gitops/apps/game-2048/deployment.yaml)"
    )
    deployment = (cli_repo / "gitops/apps/game-2048/deployment.yaml").read_text(encoding="utf-8")
    assert f"image: {registry.host}/l6m2t8p7/docker-2048:latest@{digest}\n" in deployment
    assert not list(cli_repo.rglob(".*.tmp"))


def test_cli_failure_is_one_line_and_writes_nothing(
    cli_repo: Path, registry: FakeRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.add_schema1("l6m2t8p7/docker-2048", "latest")
    before = _snapshot(cli_repo)
    assert main(["pin-image"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: image ") and "schema 1" in err and "\n" not in err
    assert "Traceback" not in err
    assert _snapshot(cli_repo) == before


def test_a_malformed_manifest_is_named_with_its_line_before_the_registry_is_asked(
    checkout: Path, registry: FakeRegistry
) -> None:
    broken = checkout / "gitops/apps/game-2048/service.yaml"
    broken.write_text("kind: Service\nspec: [\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"service\.yaml:\d+: invalid YAML"):
        plan_pins(checkout, None, RegistryClient(sleep=_no_sleep))
    assert registry.requests == []
