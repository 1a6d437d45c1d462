"""`harness eks-token`: the ExecCredential the add-ons' providers run for a fresh EKS token."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from harness.cli import main
from harness.kube.exec_credential import API_VERSION
from harness.targets.full_stack import kube_token_command


def test_the_output_is_an_exec_credential_with_a_presigned_sts_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    before = datetime.now(timezone.utc)
    assert main(["eks-token", "--cluster-name", "eks-demo", "--region", "eu-west-1"]) == 0
    credential = json.loads(capsys.readouterr().out)
    assert credential["kind"] == "ExecCredential" and credential["apiVersion"] == API_VERSION
    status = credential["status"]
    expires = datetime.strptime(status["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert 13 * 60 < (expires - before).total_seconds() <= 15 * 60
    token = status["token"]
    assert token.startswith("k8s-aws-v1.")
    encoded = token.removeprefix("k8s-aws-v1.")
    url = urlsplit(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode())
    query = parse_qs(url.query)
    assert url.hostname == "sts.eu-west-1.amazonaws.com"
    assert query["Action"] == ["GetCallerIdentity"]
    assert query["X-Amz-SignedHeaders"] == ["host;x-k8s-aws-id"]  # the cluster name is signed into it


def test_without_credentials_it_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert main(["eks-token", "--cluster-name", "eks-demo", "--region", "eu-west-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "no AWS credentials" in captured.err


def test_the_add_ons_take_the_aws_cli_where_installed_else_the_harness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert kube_token_command() == [sys.executable, "-m", "harness", "eks-token"]
    fake_aws = tmp_path / "aws"
    fake_aws.write_text("#!/bin/sh\n")
    fake_aws.chmod(0o755)
    assert shutil.which("aws") == str(fake_aws)
    assert kube_token_command() == ["aws", "eks", "get-token"]
