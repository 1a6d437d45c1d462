"""The gate never crashes on bad input: it returns a model/report or raises one InputError line naming file:line.

Three sources of bad input: the committed corpus in tests/fixtures/nasty/ (each file one case), huge
files generated here, and hypothesis (random bytes, mutations of this repo's real files, generated
manifest trees run through the whole `check`).
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import main
from harness.errors import InputError
from harness.gate import report as reporters
from harness.gate.api import Report, check
from harness.gate.loaders import load_manifests, load_terraform
from harness.gate.model import Manifest
from harness.project import repo_root

NASTY = Path(__file__).resolve().parents[1] / "fixtures" / "nasty"
NASTY_MANIFESTS = sorted((NASTY / "manifests").iterdir())
NASTY_TERRAFORM = sorted((NASTY / "terraform").iterdir())
# derandomize: the same examples on every run, so a failure in CI reproduces on a laptop.
FUZZ = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

ALIAS_BOMB = NASTY / "manifests" / "billion_laughs.yaml"


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def cases(paths: list[Path], skip: frozenset[Path] = frozenset()) -> list[Any]:
    return [pytest.param(path, id=case_id(path)) for path in paths if path not in skip]


def assert_one_line_naming(error: InputError, path: Path) -> None:
    """The contract for unreadable input: a single line `<file>:<line>: <what>`."""
    message = str(error)
    assert "\n" not in message, message
    assert re.match(rf"{re.escape(str(path))}:\d+: \S", message), f"does not name {path}:<line>: {message}"


def assert_clean(manifests: list[Manifest]) -> None:
    """Everything rules read from a manifest is a string, whatever the document holds."""
    for manifest in manifests:
        for value in (manifest.kind, manifest.api_version, manifest.group, manifest.name, manifest.namespace):
            assert isinstance(value, str)
        assert manifest.line >= 1
        assert all(line >= 1 for line in manifest.lines.values())


def load_manifests_contract(path: Path) -> list[Manifest] | None:
    try:
        manifests = load_manifests([path])
    except InputError as error:
        assert_one_line_naming(error, path)
        return None
    assert_clean(manifests)
    return manifests


def load_terraform_contract(directory: Path, culprit: Path) -> None:
    try:
        model = load_terraform([directory])
    except InputError as error:
        assert_one_line_naming(error, culprit)
        return
    assert all(resource.line >= 1 for resource in model.resources)


def check_contract(infra: Path, gitops: Path, reference: Path) -> Report | None:
    """The whole gate: a report in which no rule broke, or one InputError line naming a file under the trees."""
    try:
        report = check([infra], [gitops], reference)
    except InputError as error:
        message = str(error)
        assert "\n" not in message, message
        assert message.startswith((str(infra), str(gitops))), message
        assert re.match(r"\S+:\d+: \S", message), f"no file:line: {message}"
        return None
    broken = [f"{f.rule_id}: {f.message}" for f in report.findings if "could not evaluate" in f.message]
    assert broken == []
    assert all(f.line >= 1 and f.file for f in report.findings)
    # Every reporter copes with whatever text the findings quote from the input.
    assert reporters.text(report)
    assert json.loads(reporters.as_json(report))["findings"] is not None
    assert json.loads(reporters.sarif(report))["version"] == "2.1.0"
    ET.fromstring(reporters.junit(report).split("\n", 1)[1])
    return report


# --- the committed corpus -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", cases(NASTY_MANIFESTS, skip=frozenset({ALIAS_BOMB})))
def test_manifest_loader_survives(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)

    load_manifests_contract(copy)


@pytest.mark.parametrize("path", cases(NASTY_TERRAFORM))
def test_terraform_loader_survives(path: Path, tmp_path: Path) -> None:
    copy = tmp_path / path.name
    shutil.copyfile(path, copy)

    load_terraform_contract(tmp_path, copy)


@pytest.mark.parametrize("path", cases(NASTY_MANIFESTS, skip=frozenset({ALIAS_BOMB})))
def test_whole_check_survives_each_nasty_manifest(path: Path, tmp_path: Path, reference: Path) -> None:
    gitops, infra = tmp_path / "gitops", tmp_path / "infra"
    gitops.mkdir(), infra.mkdir()
    shutil.copyfile(path, gitops / (path.stem + ".yaml"))

    check_contract(infra, gitops, reference)


@pytest.mark.parametrize("path", cases(NASTY_TERRAFORM))
def test_whole_check_survives_each_nasty_terraform_file(path: Path, tmp_path: Path, reference: Path) -> None:
    gitops, infra = tmp_path / "gitops", tmp_path / "infra" / "root"
    gitops.mkdir(), infra.mkdir(parents=True)
    shutil.copyfile(path, infra / path.name)

    check_contract(infra.parent, gitops, reference)


@pytest.mark.parametrize("path", cases([*NASTY_MANIFESTS, *NASTY_TERRAFORM], skip=frozenset({ALIAS_BOMB})))
def test_cli_exits_0_1_or_2_with_at_most_one_error_line(
    path: Path, tmp_path: Path, reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gitops, infra = tmp_path / "gitops", tmp_path / "infra" / "root"
    gitops.mkdir(), infra.mkdir(parents=True)
    target = gitops / (path.stem + ".yaml") if path.parent.name == "manifests" else infra / path.name
    shutil.copyfile(path, target)

    code = main(
        [
            "check",
            "--infra",
            str(infra.parent),
            "--gitops",
            str(gitops),
            "--reference",
            str(reference),
            "--format",
            "sarif",
            "--output",
            str(tmp_path / "out.sarif"),
        ]
    )

    err = capsys.readouterr().err
    if code == 2:
        assert re.fullmatch(rf"error: {re.escape(str(target))}:\d+: .+\n", err), err
    else:
        assert code in (0, 1) and err == ""
        assert json.loads((tmp_path / "out.sarif").read_text())["runs"]


def test_python_tags_are_refused_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "evil.yaml").write_text(f'kind: ConfigMap\nx: !!python/object/apply:os.system ["touch {marker}"]\n')

    with pytest.raises(InputError):
        load_manifests([tmp_path])
    assert not marker.exists()


class OverBudget(Exception):
    """More Python calls than any sane load of the input needs."""


def within_call_budget(budget: int, load: Callable[[], object]) -> object:
    """Run load() but stop it after `budget` Python function calls: a deterministic bound, not a stopwatch."""
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        calls += 1
        if calls > budget:
            raise OverBudget(f"{calls} calls")

    sys.settrace(count)
    try:
        return load()
    finally:
        sys.settrace(None)


def test_call_budget_fits_this_repos_whole_gitops_tree() -> None:
    """The budget below is generous: loading all of gitops/ stays far inside it."""
    within_call_budget(ALIAS_BOMB_BUDGET // 10, lambda: load_manifests([repo_root() / "gitops"]))


ALIAS_BOMB_BUDGET = 200_000


def test_alias_bomb_is_loaded_without_expanding_it(tmp_path: Path) -> None:
    copy = tmp_path / ALIAS_BOMB.name
    shutil.copyfile(ALIAS_BOMB, copy)

    within_call_budget(ALIAS_BOMB_BUDGET, lambda: load_manifests_contract(copy))


def test_symlink_loops_dangling_links_and_folders_named_like_files(tmp_path: Path) -> None:
    """Trees as checkouts leave them: a link back up the tree, a link to nothing, a folder called x.yaml."""
    gitops, infra = tmp_path / "gitops", tmp_path / "infra" / "root"
    (gitops / "apps").mkdir(parents=True)
    infra.mkdir(parents=True)
    (gitops / "apps" / "ns.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n")
    (gitops / "apps" / "loop").symlink_to("..")
    (gitops / "dangling.yaml").symlink_to(tmp_path / "nowhere.yaml")
    (gitops / "folder.yaml").mkdir()
    (infra / "main.tf").write_text('resource "aws_sqs_queue" "q" {\n  name = "q"\n}\n')
    (infra / "loop").symlink_to("../..")

    assert [m.name for m in load_manifests([gitops])] == ["a"]
    assert [r.address for r in load_terraform([infra.parent]).resources] == ["aws_sqs_queue.q"]


def test_terraform_json_syntax_is_read(tmp_path: Path) -> None:
    (tmp_path / "main.tf.json").write_text('{"resource": {"aws_sqs_queue": {"q": {"name": "from-json"}}}}\n')

    assert [r.address for r in load_terraform([tmp_path]).resources] == ["aws_sqs_queue.q"]


# --- huge inputs, generated (too big to commit) ---------------------------------------------------------


def test_thousands_of_documents_in_one_file(tmp_path: Path) -> None:
    count = 5000
    (tmp_path / "many.yaml").write_text(
        "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n" for i in range(count))
    )

    manifests = load_manifests([tmp_path])

    assert [m.name for m in manifests] == [f"cm-{i}" for i in range(count)]
    assert manifests[-1].line == 5 * count - 3


def test_one_megabyte_line(tmp_path: Path) -> None:
    blob = "x" * 1_000_000
    (tmp_path / "long.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: long\ndata:\n  blob: {blob}\n"
    )

    (manifest,) = load_manifests([tmp_path])

    assert manifest.get("data", "blob") == blob


def test_terraform_root_with_two_thousand_resources(tmp_path: Path) -> None:
    count = 2000
    (tmp_path / "main.tf").write_text(
        "".join(f'resource "aws_sqs_queue" "q{i}" {{\n  name = "queue-{i}"\n}}\n' for i in range(count))
    )

    model = load_terraform([tmp_path])

    queues = model.of_type("aws_sqs_queue")
    assert len(queues) == count
    assert queues[-1].get("name") == f"queue-{count - 1}"
    assert queues[-1].line == 3 * count - 2


# --- hypothesis: random bytes and mutations of this repo's real files -----------------------------------

REAL_MANIFESTS = sorted((repo_root() / "gitops").rglob("*.yaml"))
REAL_TERRAFORM = sorted(p for p in (repo_root() / "infra").rglob("*.tf") if ".terraform" not in p.parts)
# Fragments that break YAML and HCL in interesting ways.
TOKENS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b"'",
    b":",
    b"- ",
    b"\t",
    b"\x00",
    b"\xff",
    b"\xef\xbb\xbf",
    b"&a ",
    b"*a",
    b"---\n",
    b"${",
    b"%{",
    b"<<EOF\n",
    b"#",
    b"//",
    b"/*",
    b"\\",
    b"\r\n",
    b"!!binary ",
    b"? ",
    b"|\n",
    b"=",
]


@st.composite
def mutated(draw: st.DrawFn, files: list[Path]) -> tuple[Path, bytes]:
    """A real file with a few random edits: delete a slice, duplicate a slice, or insert a nasty token."""
    path = draw(st.sampled_from(files))
    data = bytearray(path.read_bytes())
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.sampled_from(["delete", "duplicate", "insert"]))
        span = draw(st.integers(1, 40))
        if edit == "delete":
            del data[at : at + span]
        elif edit == "duplicate":
            data[at:at] = data[at : at + span]
        else:
            data[at:at] = draw(st.sampled_from(TOKENS))
    return path, bytes(data)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_random_bytes_as_a_manifest(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "random.yaml"
    path.write_bytes(data)

    load_manifests_contract(path)


@FUZZ
@given(text=st.text(max_size=500))
def test_random_text_as_terraform(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    directory = tmp_path_factory.mktemp("text")
    path = directory / "random.tf"
    path.write_text(text, encoding="utf-8")

    load_terraform_contract(directory, path)


@FUZZ
@given(case=mutated(REAL_MANIFESTS))
def test_mutated_real_manifests(tmp_path_factory: pytest.TempPathFactory, case: tuple[Path, bytes]) -> None:
    original, data = case
    path = tmp_path_factory.mktemp("mutated") / original.name
    path.write_bytes(data)

    load_manifests_contract(path)


@FUZZ
@given(case=mutated(REAL_TERRAFORM))
def test_mutated_real_terraform(tmp_path_factory: pytest.TempPathFactory, case: tuple[Path, bytes]) -> None:
    original, data = case
    directory = tmp_path_factory.mktemp("mutated")
    path = directory / original.name
    path.write_bytes(data)

    load_terraform_contract(directory, path)


@FUZZ
@given(case=mutated(REAL_TERRAFORM + REAL_MANIFESTS))
def test_this_repo_with_one_damaged_file_through_the_whole_check(
    tmp_path_factory: pytest.TempPathFactory,
    reference: Path,
    case: tuple[Path, bytes],
) -> None:
    """This repo's infra/ and gitops/ with one file damaged: every rule still runs over what can be read."""
    original, data = case
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(repo_root() / "infra", root / "infra", ignore=shutil.ignore_patterns(".terraform*"))
    shutil.copytree(repo_root() / "gitops", root / "gitops")
    (root / original.relative_to(repo_root())).write_bytes(data)

    check_contract(root / "infra", root / "gitops", reference)


# --- hypothesis: generated manifest trees through the whole `check` -------------------------------------

KINDS = [
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("networking.k8s.io/v1", "Ingress"),
    ("v1", "Namespace"),
    ("karpenter.sh/v1", "NodePool"),
    ("karpenter.k8s.aws/v1", "EC2NodeClass"),
    ("karpenter.sh/v1beta1", "NodePool"),
    ("argoproj.io/v1alpha1", "Application"),
    ("argoproj.io/v1alpha1", "ApplicationSet"),
    ("v1", "Secret"),
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("example.com/v1", "Unknown"),
]
# Field names rules look at, so generated documents reach deep into the rules rather than stop at the top.
FIELDS = [
    "metadata",
    "spec",
    "template",
    "name",
    "namespace",
    "labels",
    "annotations",
    "selector",
    "matchLabels",
    "containers",
    "ports",
    "port",
    "targetPort",
    "backend",
    "service",
    "rules",
    "http",
    "paths",
    "requirements",
    "key",
    "operator",
    "values",
    "nodeClassRef",
    "role",
    "subnetSelectorTerms",
    "tags",
    "metadataOptions",
    "httpPutResponseHopLimit",
    "ingressClassName",
    "source",
    "destination",
    "generators",
    "resources",
    "patches",
    "nodeSelector",
    "tolerations",
    "amiSelectorTerms",
    "alias",
    "kubernetes.io/ingress.class",
]
# Surrogates cannot be written as UTF-8; every other character, control characters included, can.
printable = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70000),
    st.sampled_from(
        ["", "spot", "alb", "1", "*", "{{ .name }}", "set-by-applicationset", "0.0.0.0/0", "http", "internet-facing"]
    ),
    printable,
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=5)),
    max_leaves=30,
)


@st.composite
def manifest_documents(draw: st.DrawFn) -> dict[str, Any]:
    api_version, kind = draw(st.sampled_from(KINDS))
    document: dict[str, Any] = {"apiVersion": api_version, "kind": kind}
    document["metadata"] = draw(
        st.one_of(
            st.fixed_dictionaries(
                {"name": printable.filter(bool)},
                optional={"namespace": scalars, "labels": values, "annotations": values},
            ),
            values,
        )
    )
    document.update(draw(st.dictionaries(st.sampled_from(FIELDS), values, max_size=4)))
    return document


@FUZZ
@given(files=st.lists(st.lists(manifest_documents(), min_size=1, max_size=4), min_size=1, max_size=5))
def test_generated_manifest_trees_through_the_whole_check(
    tmp_path_factory: pytest.TempPathFactory,
    reference: Path,
    files: list[list[dict[str, Any]]],
) -> None:
    root = tmp_path_factory.mktemp("tree")
    gitops, infra = root / "gitops", root / "infra"
    infra.mkdir()
    for index, documents in enumerate(files):
        folder = gitops / f"app-{index % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file-{index}.yaml").write_text(yaml.safe_dump_all(documents, sort_keys=False))

    check_contract(infra, gitops, reference)
