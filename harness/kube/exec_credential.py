"""`harness eks-token`: an EKS bearer token as a client-go ExecCredential, for the add-ons' Kubernetes and Helm
providers (infra/addons `kube_token_command`) where the AWS CLI is not installed. Its arguments are those of
`aws eks get-token`, so either command can stand in the providers' `exec` block; a new token is fetched for
every Terraform operation, so a long apply never outlives it."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import boto3

from harness.kube.client import eks_token

API_VERSION = "client.authentication.k8s.io/v1beta1"
# EKS accepts a token for 15 minutes; client-go asks for a new one once this time has passed.
TOKEN_LIFETIME = timedelta(minutes=14)


def exec_credential(token: str, now: datetime) -> dict[str, Any]:
    expires = (now + TOKEN_LIFETIME).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "ExecCredential",
        "apiVersion": API_VERSION,
        "spec": {},
        "status": {"expirationTimestamp": expires, "token": token},
    }


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "eks-token", help="print an EKS token as an ExecCredential (like aws eks get-token)", description=__doc__
    )
    parser.add_argument("--cluster-name", required=True, help="the EKS cluster's name")
    parser.add_argument("--region", default=None, help="its region (default: the AWS SDK's, e.g. $AWS_REGION)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    token = eks_token(args.cluster_name, session=boto3.Session(region_name=args.region), region=args.region)
    sys.stdout.write(json.dumps(exec_credential(token, datetime.now(timezone.utc))) + "\n")
    return 0
