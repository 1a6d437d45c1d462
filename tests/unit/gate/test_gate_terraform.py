"""Static evaluation of Terraform: what the rules see of variables, locals, modules and remote state."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.gate.hcl import Encoded, Unknown
from harness.gate.loaders import load_terraform
from harness.gate.model import TerraformModel, TfResource


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def resource(model: TerraformModel, address: str) -> TfResource:
    found = [r for r in model.resources if r.address == address]
    assert found, [r.address for r in model.resources]
    return found[0]


def test_interpolation_functions_and_for_expressions(tmp_path: Path) -> None:
    model = load_terraform(
        [
            write(
                tmp_path,
                {
                    "main.tf": """
        variable "name" {
          default = "demo"
        }
        locals {
          azs   = ["a", "b", "c"]
          tags  = merge({ project = "p" }, { owner = upper(var.name) })
          cidrs = [for i, az in local.azs : cidrsubnet("10.0.0.0/16", 8, i) if az != "b"]
          by_az = { for az in local.azs : az => "${var.name}-${az}" }
        }
        resource "aws_thing" "x" {
          name   = format("%s-%02d", var.name, 7)
          tags   = local.tags
          cidrs  = local.cidrs
          by_az  = local.by_az
          picked = lookup(local.by_az, "c", "none")
          flag   = length(local.azs) > 2 ? "many" : "few"
          joined = join(",", [for az in local.azs : upper(az)])
        }
    """
                },
            )
        ]
    )

    thing = resource(model, "aws_thing.x")
    assert thing.attrs["name"] == "demo-07"
    assert thing.attrs["tags"] == {"project": "p", "owner": "DEMO"}
    assert thing.attrs["cidrs"] == ["10.0.0.0/24", "10.0.2.0/24"]
    assert thing.attrs["by_az"] == {"a": "demo-a", "b": "demo-b", "c": "demo-c"}
    assert thing.attrs["picked"] == "demo-c"
    assert thing.attrs["flag"] == "many"
    assert thing.attrs["joined"] == "A,B,C"
    assert thing.line_of("picked") == 16  # the file starts with an empty line


def test_count_and_for_each_expand_to_instances(tmp_path: Path) -> None:
    model = load_terraform(
        [
            write(
                tmp_path,
                {
                    "main.tf": """
        locals {
          zones = ["z1", "z2"]
        }
        resource "aws_subnet" "s" {
          count             = length(local.zones)
          availability_zone = local.zones[count.index]
        }
        resource "aws_iam_role_policy_attachment" "a" {
          for_each   = toset(["A", "B"])
          policy_arn = "arn:${each.key}"
        }
    """
                },
            )
        ]
    )

    assert [r.attrs["availability_zone"] for r in model.of_type("aws_subnet")] == ["z1", "z2"]
    assert sorted(r.attrs["policy_arn"] for r in model.of_type("aws_iam_role_policy_attachment")) == ["arn:A", "arn:B"]
    assert resource(model, "aws_subnet.s[1]").index == 1


def test_apply_time_values_stay_unknown_without_spoiling_their_neighbours(tmp_path: Path) -> None:
    model = load_terraform(
        [
            write(
                tmp_path,
                {
                    "main.tf": """
        resource "aws_vpc" "v" {
          cidr_block = "10.0.0.0/16"
        }
        resource "aws_subnet" "s" {
          vpc_id = aws_vpc.v.id
          tags = {
            Name = "n-${aws_vpc.v.id}"
            role = "private"
          }
        }
    """
                },
            )
        ]
    )

    subnet = resource(model, "aws_subnet.s")
    assert isinstance(subnet.attrs["vpc_id"], Unknown)
    assert subnet.attrs["vpc_id"].text == "aws_vpc.v.id"
    assert isinstance(subnet.attrs["tags"]["Name"], Unknown)
    assert subnet.attrs["tags"]["role"] == "private"


def test_module_outputs_remote_state_and_files_resolve_across_roots(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "versions.yaml": "kubernetes: '1.35'\n",
            "infra/modules/names/main.tf": """
            variable "base" {}
            output "role" {
              value = "${var.base}-node"
            }
        """,
            "infra/platform/main.tf": """
            locals {
              versions = yamldecode(file("${path.module}/../../versions.yaml"))
            }
            module "names" {
              source = "../modules/names"
              base   = "demo"
            }
            resource "aws_eks_cluster" "c" {
              name    = "demo"
              version = local.versions.kubernetes
            }
            output "node_role" {
              value = module.names.role
            }
        """,
            "infra/addons/main.tf": """
            data "terraform_remote_state" "platform" {
              backend = "local"
            }
            locals {
              platform = data.terraform_remote_state.platform.outputs
            }
            resource "kubernetes_secret_v1" "s" {
              metadata {
                annotations = { role = local.platform.node_role }
              }
            }
        """,
        },
    )

    model = load_terraform([tmp_path / "infra"])

    assert resource(model, "aws_eks_cluster.c").attrs["version"] == "1.35"
    assert resource(model, "kubernetes_secret_v1.s").block("metadata")["annotations"] == {"role": "demo-node"}
    assert model.outputs["platform"]["node_role"] == "demo-node"
    assert "names" not in model.outputs  # a called module is not a root


def test_helm_values_from_yamlencode_heredoc_and_set_blocks(tmp_path: Path) -> None:
    model = load_terraform(
        [
            write(
                tmp_path,
                {
                    "main.tf": """
        variable "cluster" {
          default = "demo"
        }
        resource "helm_release" "r" {
          chart  = "karpenter"
          values = [
            yamlencode({ settings = { clusterName = var.cluster } }),
            <<-YAML
              replicas: 2
              settings:
                clusterEndpoint: ${aws_eks_cluster.c.endpoint}
            YAML
          ]
          set {
            name  = "serviceAccount.annotations.eks\\\\.amazonaws\\\\.com/role-arn"
            value = "arn"
          }
          dynamic "set" {
            for_each = { "a.b" = "1" }
            content {
              name  = set.key
              value = set.value
            }
          }
        }
    """
                },
            )
        ]
    )

    release = resource(model, "helm_release.r")
    first, second = release.attrs["values"]
    assert isinstance(first, Encoded) and first.value == {"settings": {"clusterName": "demo"}}
    assert isinstance(second, Encoded) and second.value["replicas"] == 2
    assert isinstance(second.value["settings"]["clusterEndpoint"], Unknown)
    names = [s["name"] for s in release.attrs["set"]]
    assert names == ["serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn", "a.b"]


def test_provider_default_tags_reach_every_aws_resource(tmp_path: Path) -> None:
    model = load_terraform(
        [
            write(
                tmp_path,
                {
                    "main.tf": """
        provider "aws" {
          default_tags {
            tags = { project = "p" }
          }
        }
        resource "aws_security_group" "g" {
          tags = { Name = "g" }
        }
    """
                },
            )
        ]
    )

    assert resource(model, "aws_security_group.g").tags == {"project": "p", "Name": "g"}


@pytest.mark.parametrize(
    ("text", "line"),
    [('resource "x" "y" {\n  a = \n}\n', 2), ('resource "x" "y" {\n  a = "b"\n', None)],
    ids=["missing value", "unclosed block"],
)
def test_malformed_hcl_is_one_input_error_naming_the_file(tmp_path: Path, text: str, line: int | None) -> None:
    write(tmp_path, {"bad.tf": text})

    with pytest.raises(InputError) as error:
        load_terraform([tmp_path])

    assert "bad.tf" in str(error.value)
    if line is not None:
        assert f"bad.tf:{line}:" in str(error.value)


def test_a_missing_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        load_terraform([tmp_path / "nope"])


def test_registry_modules_become_the_resources_they_create(tmp_path: Path) -> None:
    model = load_terraform(
        [
            write(
                tmp_path,
                {
                    "main.tf": """
        module "vpc" {
          source              = "terraform-aws-modules/vpc/aws"
          azs                 = ["a", "b"]
          private_subnets     = ["10.0.0.0/20", "10.0.16.0/20"]
          private_subnet_tags = { "karpenter.sh/discovery" = "demo" }
        }
        module "eks" {
          source                               = "terraform-aws-modules/eks/aws"
          cluster_name                         = "demo"
          cluster_endpoint_public_access       = true
          cluster_endpoint_public_access_cidrs = ["0.0.0.0/0"]
          eks_managed_node_groups = {
            ops = {
              labels = { role = "ops" }
              taints = { critical = { key = "CriticalAddonsOnly", value = "true", effect = "NO_SCHEDULE" } }
            }
          }
        }
        module "karpenter" {
          source                        = "terraform-aws-modules/eks/aws//modules/karpenter"
          cluster_name                  = module.eks.cluster_name
          node_iam_role_name            = "demo-node"
          node_iam_role_use_name_prefix = false
        }
        resource "aws_sqs_queue" "copy" {
          name = module.karpenter.queue_name
        }
    """
                },
            )
        ]
    )

    subnets = model.of_type("aws_subnet")
    assert [(s.attrs["availability_zone"], s.tags["karpenter.sh/discovery"]) for s in subnets] == [
        ("a", "demo"),
        ("b", "demo"),
    ]
    cluster = resource(model, "module.eks.aws_eks_cluster.this")
    assert cluster.block("vpc_config")["public_access_cidrs"] == ["0.0.0.0/0"]
    assert cluster.line_of("vpc_config.public_access_cidrs") == 12
    assert resource(model, "module.eks.aws_eks_node_group.ops").attrs["labels"] == {"role": "ops"}
    assert (
        resource(model, "module.eks.aws_launch_template.ops").block("metadata_options")["http_put_response_hop_limit"]
        == 2
    )
    assert resource(model, "module.karpenter.aws_iam_role.node").attrs["name"] == "demo-node"
    assert resource(model, "aws_sqs_queue.copy").attrs["name"] == "Karpenter-demo"


def test_json_syntax_files_are_read_with_lines_of_their_keys(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "main.tf.json": """
        {
          "variable": {"name": {"default": "demo"}},
          "resource": {
            "aws_sqs_queue": {
              "q": {"name": "${var.name}-q"}
            }
          }
        }
    """
        },
    )

    (queue,) = load_terraform([tmp_path]).resources

    assert (queue.address, queue.attrs["name"], queue.line_of("name")) == ("aws_sqs_queue.q", "demo-q", 6)


def test_invalid_json_syntax_is_an_input_error_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, {"main.tf.json": '{\n  "resource": ,\n}\n'})

    with pytest.raises(InputError, match=r"main\.tf\.json:2: invalid JSON"):
        load_terraform([tmp_path])


def test_templatefile_values_are_rendered_with_their_variables(tmp_path: Path) -> None:
    model = load_terraform(
        [
            write(
                tmp_path,
                {
                    "values.yaml.tpl": "settings:\n  clusterName: ${cluster}\n  clusterEndpoint: ${endpoint}\n",
                    "main.tf": """
            resource "helm_release" "r" {
              values = [templatefile("${path.module}/values.yaml.tpl", {
                cluster  = "demo"
                endpoint = aws_eks_cluster.c.endpoint
              })]
            }
        """,
                },
            )
        ]
    )

    (values,) = resource(model, "helm_release.r").attrs["values"]
    assert values.value["settings"]["clusterName"] == "demo"
    assert isinstance(values.value["settings"]["clusterEndpoint"], Unknown)
