"""Provider installation: mirror detection (env, Terraform's implied dirs, bounded search) and the generated config."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import hcl2
import pytest

from harness.errors import InputError
from harness.terraform.providers import (
    AWS_PROVIDER,
    MIRROR_ENV,
    REGISTRY_HOST,
    SEARCH_DEPTH,
    addons_provider_source,
    addons_providers_missing,
    cli_config,
    find_mirror,
    install_failure,
    mirror_holding,
    os_arch,
    provider_source,
    unavailable_reason,
)

VERSION = "5.100.0"
ARCH = "linux_amd64"


def make_mirror(base: Path, version: str = VERSION, *, packed: bool = False) -> Path:
    provider = base / AWS_PROVIDER
    if packed:
        provider.mkdir(parents=True)
        (provider / f"terraform-provider-aws_{version}_{ARCH}.zip").write_bytes(b"PK")
    else:
        (provider / version / ARCH).mkdir(parents=True)
    return base


def empty_home(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"HOME": str(home), "XDG_DATA_DIRS": str(tmp_path / "no-data-dirs")}


def test_os_arch_is_terraforms_platform_name() -> None:
    assert re.fullmatch(r"[a-z]+_[a-z0-9]+", os_arch())


def test_the_env_override_wins_and_must_hold_the_provider(tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path / "m")
    env = {**empty_home(tmp_path), MIRROR_ENV: str(mirror)}
    assert find_mirror(VERSION, env=env, search_roots=(), arch=ARCH) == mirror.resolve()
    with pytest.raises(InputError, match=re.escape(f"has no {AWS_PROVIDER}/9.9.9/{ARCH}/")):
        find_mirror("9.9.9", env=env, search_roots=(), arch=ARCH)


def test_terraforms_implied_mirror_dirs_are_used(tmp_path: Path) -> None:
    env = empty_home(tmp_path)
    mirror = make_mirror(Path(env["HOME"]) / ".terraform.d" / "plugins")
    assert find_mirror(VERSION, env=env, search_roots=(), arch=ARCH) == mirror.resolve()


def test_a_bounded_search_finds_mirrors_under_install_roots_packed_or_not(tmp_path: Path) -> None:
    env = empty_home(tmp_path)
    roots = tmp_path / "opt"
    mirror = make_mirror(roots / "vendor" / "tf-plugins", packed=True)
    assert find_mirror(VERSION, env=env, search_roots=(roots,), arch=ARCH) == mirror.resolve()


def test_the_search_stops_at_its_depth_and_ignores_other_versions(tmp_path: Path) -> None:
    env = empty_home(tmp_path)
    roots = tmp_path / "opt"
    deep = roots.joinpath(*[f"d{i}" for i in range(SEARCH_DEPTH + 1)])
    make_mirror(deep)
    make_mirror(roots / "old", version="4.0.0")
    assert find_mirror(VERSION, env=env, search_roots=(roots,), arch=ARCH) is None


def test_the_generated_cli_config_takes_only_aws_from_the_mirror(tmp_path: Path) -> None:
    config = hcl2.loads(cli_config(tmp_path / "with space"))
    installation = config["provider_installation"][0]
    mirror = installation["filesystem_mirror"][0]
    assert mirror["path"].strip('"') == str(tmp_path / "with space")
    assert [p.strip('"') for p in mirror["include"]] == [AWS_PROVIDER]
    assert [p.strip('"') for p in installation["direct"][0]["exclude"]] == [AWS_PROVIDER]


def test_provider_source_writes_the_config_into_the_run_only_when_a_mirror_exists(tmp_path: Path) -> None:
    mirror = make_mirror(tmp_path / "m")
    source = provider_source(tmp_path / "run", mirror, env={})
    assert source.kind == "mirror"
    config = Path(source.env["TF_CLI_CONFIG_FILE"])
    assert config.parent == tmp_path / "run" and str(mirror) in config.read_text()

    registry = provider_source(tmp_path / "run2", None, env={"TF_CLI_CONFIG_FILE": str(tmp_path / "missing.rc")})
    assert registry.kind == "registry" and registry.env == {}
    assert registry.unset == ("TF_CLI_CONFIG_FILE",)
    assert not (tmp_path / "run2").exists()


def test_an_existing_user_cli_config_is_left_alone(tmp_path: Path) -> None:
    user = tmp_path / "user.rc"
    user.write_text("")
    assert provider_source(tmp_path / "run", None, env={"TF_CLI_CONFIG_FILE": str(user)}).unset == ()


def test_registry_failures_explain_themselves_only_for_the_registry_source(tmp_path: Path) -> None:
    output = "Error: Failed to query available provider packages: could not connect to registry.terraform.io"
    registry = provider_source(tmp_path, None, env={})
    problem = install_failure(output, registry)
    assert problem is not None
    assert str(problem).startswith("Terraform's AWS provider is not installed and the registry is unreachable: ")
    assert install_failure("Error: Unsupported argument", registry) is None
    mirror = provider_source(tmp_path, make_mirror(tmp_path / "m"), env={})
    assert install_failure(output, mirror) is None


def test_unavailable_reason_needs_neither_mirror_nor_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.terraform.providers as providers

    monkeypatch.setattr(providers, "find_machine_mirror", lambda version: None)
    monkeypatch.setattr(providers, "registry_reachable", lambda timeout=3.0: False)
    reason = unavailable_reason(VERSION)
    assert reason is not None and "not installed and the registry is unreachable" in reason
    monkeypatch.setattr(providers, "registry_reachable", lambda timeout=3.0: True)
    assert unavailable_reason(VERSION) is None


def test_mirror_holding_needs_every_provider_in_one_mirror(tmp_path: Path) -> None:
    roots = tmp_path / "opt"
    mirror = roots / "tf-plugins"
    pins = {"aws": VERSION, "helm": "3.1.1", "kubernetes": "3.2.1"}
    for name, version in pins.items():
        (mirror / REGISTRY_HOST / "hashicorp" / name / version / ARCH).mkdir(parents=True)
    assert mirror_holding(pins, search_roots=(roots,), arch=ARCH) == mirror.resolve()
    shutil.rmtree(mirror / REGISTRY_HOST / "hashicorp" / "kubernetes")
    assert mirror_holding(pins, search_roots=(roots,), arch=ARCH) is None


def test_the_addons_take_their_providers_from_one_mirror_holding_all_or_say_why_none_serves_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from harness.terraform import providers

    monkeypatch.setattr(providers, "registry_reachable", lambda timeout=3.0: False)
    roots = tmp_path / "opt"
    mirror = roots / "session-mirror"
    pins = {"aws": VERSION, "helm": "3.1.1", "kubernetes": "3.2.1", "http": "3.5.0"}
    for name, version in pins.items():
        (mirror / REGISTRY_HOST / "hashicorp" / name / version / ARCH).mkdir(parents=True)
    found = addons_provider_source(tmp_path / "config", pins, search_roots=(roots,))
    assert found is not None and found.kind == "mirror"
    config = Path(found.env["TF_CLI_CONFIG_FILE"]).read_text(encoding="utf-8")
    assert f'"{REGISTRY_HOST}/hashicorp/http"' in config and str(mirror.resolve()) in config
    shutil.rmtree(mirror / REGISTRY_HOST / "hashicorp" / "helm")  # the AWS provider alone does not do
    assert addons_provider_source(tmp_path / "config", pins, search_roots=(roots,)) is None
    reason = addons_providers_missing(pins)
    assert "hashicorp/helm 3.1.1 and hashicorp/kubernetes 3.2.1 and hashicorp/http 3.5.0" in reason
    assert "hashicorp/aws" not in reason and "unreachable" in reason


def test_cli_config_takes_every_named_provider_from_the_mirror(tmp_path: Path) -> None:
    config = cli_config(tmp_path, ("aws", "helm"))
    assert f'include = ["{REGISTRY_HOST}/hashicorp/aws", "{REGISTRY_HOST}/hashicorp/helm"]' in config
    assert f'exclude = ["{REGISTRY_HOST}/hashicorp/aws", "{REGISTRY_HOST}/hashicorp/helm"]' in config
