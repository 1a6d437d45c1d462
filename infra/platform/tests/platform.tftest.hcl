# Offline checks of infra/platform with a mocked AWS provider: `terraform -chdir=infra/platform test`
# (needs only `terraform init -backend=false`). Each guard has a run that passes and one that trips it.

mock_provider "aws" {
  mock_data "aws_availability_zones" {
    defaults = {
      names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
    }
  }

  # Mocks return random strings; IAM arguments are validated as JSON even at plan time.
  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition  = "aws"
      dns_suffix = "amazonaws.com"
    }
  }

  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "123456789012"
      arn        = "arn:aws:sts::123456789012:assumed-role/ci-deployer/terraform"
    }
  }

  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-platform"
      certificate_authority = [{ data = "Y2VydGlmaWNhdGU=" }]
    }
  }

  mock_data "aws_iam_session_context" {
    defaults = {
      issuer_arn = "arn:aws:iam::123456789012:role/ci-deployer"
    }
  }
}

variables {
  api_public_cidrs = ["198.51.100.0/24"]
}

run "aws_target_builds_everything" {
  command = plan

  assert {
    condition     = length(output.unsupported_on_target) == 0
    error_message = "target aws must not leave anything out"
  }

  assert {
    condition     = length(module.cluster.ops_node_labels) == 2 && module.cluster.ops_node_labels["workload-type"] == "ops" && module.cluster.ops_node_labels["karpenter.sh/controller"] == "true"
    error_message = "ops nodes must carry workload-type=ops and karpenter.sh/controller=true"
  }

  assert {
    condition     = output.tags == { project = "eks-platform" }
    error_message = "without run id and expiry the only tag is project=eks-platform"
  }

  assert {
    condition = output.eks_addon_versions == {
      "vpc-cni"                = yamldecode(file("../../versions.yaml")).eks_addon_vpc_cni
      "kube-proxy"             = yamldecode(file("../../versions.yaml")).eks_addon_kube_proxy
      "eks-pod-identity-agent" = yamldecode(file("../../versions.yaml")).eks_addon_eks_pod_identity_agent
      "coredns"                = yamldecode(file("../../versions.yaml")).eks_addon_coredns
    }
    error_message = "every core add-on runs the version versions.yaml pins"
  }

  assert {
    condition     = startswith(output.eks_addon_versions["kube-proxy"], "v${output.kubernetes_version}.")
    error_message = "the kube-proxy pin must match the pinned Kubernetes minor"
  }

  assert {
    condition     = output.eks_support_type == "STANDARD"
    error_message = "the upgrade policy is explicit: standard support unless asked otherwise"
  }

  assert {
    condition     = module.cluster.cni_uses_pod_identity && !contains(module.karpenter.node_role_policy_arns, "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy") && !contains(module.cluster.ops_node_role_policy_arns, "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")
    error_message = "on aws the VPC CNI has its own Pod Identity role and no node role carries its policy"
  }

  assert {
    condition     = length(output.admin_principal_arns) == 0 && output.vpc_flow_log_group_name == null
    error_message = "no named admins and no flow logs unless asked for"
  }
}

run "standing_at_the_upgrade_start_takes_its_minor_and_kube_proxy" {
  command = plan

  variables {
    stand_at_upgrade_from = true
  }

  assert {
    condition     = output.kubernetes_version == yamldecode(file("../../versions.yaml")).upgrade_from_kubernetes
    error_message = "stand_at_upgrade_from puts the cluster on versions.yaml upgrade_from_kubernetes"
  }

  assert {
    condition     = output.eks_addon_versions["kube-proxy"] == yamldecode(file("../../versions.yaml")).upgrade_from_eks_addon_kube_proxy
    error_message = "stand_at_upgrade_from runs that minor's kube-proxy (upgrade_from_eks_addon_kube_proxy)"
  }
}

run "admins_and_flow_logs_when_asked" {
  command = plan

  variables {
    admin_principal_arns = ["arn:aws:iam::123456789012:role/platform-admins"]
    vpc_flow_logs        = {}
    eks_support_type     = "EXTENDED"
  }

  assert {
    condition     = output.admin_principal_arns == tolist(["arn:aws:iam::123456789012:role/platform-admins"])
    error_message = "a named admin gets an access entry with the cluster-admin policy"
  }

  assert {
    condition     = output.vpc_flow_log_group_name == "/aws/vpc/eks-platform/flow-logs"
    error_message = "vpc_flow_logs = {} turns flow logs on"
  }

  assert {
    condition     = output.eks_support_type == "EXTENDED"
    error_message = "eks_support_type reaches the cluster"
  }
}

run "emulator_target_leaves_out_what_moto_lacks" {
  command = plan

  variables {
    target = "emulator"
  }

  assert {
    condition     = toset(keys(output.unsupported_on_target)) == toset(["eks_access_entries", "eks_pod_identity_associations", "eks_addons", "eks_upgrade_policy", "target_health_checks", "resource_tagging_api", "kubernetes"])
    error_message = "the emulator target must report the capabilities from infra/targets.yaml"
  }

  assert {
    condition     = output.eks_support_type == null && output.eks_addon_versions == {}
    error_message = "no upgrade policy and no add-ons where the emulator cannot keep them"
  }

  assert {
    condition     = !module.cluster.cni_uses_pod_identity && output.vpc_cni_role_arn == null && contains(module.karpenter.node_role_policy_arns, "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy") && contains(module.cluster.ops_node_role_policy_arns, "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")
    error_message = "without add-ons and Pod Identity the node roles keep the CNI policy"
  }
}

run "run_tags_are_added_when_given" {
  command = plan

  variables {
    run_id     = "r20261125-1200-ab12"
    expires_at = "2026-11-25T16:00:00Z"
    tags       = { owner = "platform-team" }
  }

  assert {
    condition     = output.tags == { project = "eks-platform", "run-id" = "r20261125-1200-ab12", "expires-at" = "2026-11-25T16:00:00Z", owner = "platform-team" }
    error_message = "tags must be var.tags plus project, run-id and expires-at"
  }
}

run "api_open_to_the_internet_is_rejected" {
  command = plan

  variables {
    api_public_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.api_public_cidrs]
}

run "empty_api_cidrs_are_rejected" {
  command = plan

  variables {
    api_public_cidrs = []
  }

  expect_failures = [var.api_public_cidrs]
}

run "malformed_api_cidr_is_rejected" {
  command = plan

  variables {
    api_public_cidrs = ["198.51.100.0/33"]
  }

  expect_failures = [var.api_public_cidrs]
}

run "unknown_target_is_rejected" {
  command = plan

  variables {
    target = "localstack"
  }

  expect_failures = [var.target]
}

run "graviton_ops_types_are_rejected" {
  command = plan

  variables {
    ops_instance_types = ["m7i.large", "m7g.large"]
  }

  expect_failures = [var.ops_instance_types]
}

run "cluster_name_too_long_for_role_names_is_rejected" {
  command = plan

  variables {
    cluster_name = "a-cluster-name-that-is-far-too-long-for-iam"
  }

  expect_failures = [var.cluster_name]
}

run "bad_expiry_is_rejected" {
  command = plan

  variables {
    expires_at = "tomorrow"
  }

  expect_failures = [var.expires_at]
}

run "support_type_must_be_standard_or_extended" {
  command = plan

  variables {
    eks_support_type = "standard"
  }

  expect_failures = [var.eks_support_type]
}

run "admin_as_a_session_arn_is_rejected" {
  command = plan

  variables {
    admin_principal_arns = ["arn:aws:sts::123456789012:assumed-role/platform-admins/alice"]
  }

  expect_failures = [var.admin_principal_arns]
}

run "admin_named_twice_is_rejected" {
  command = plan

  variables {
    admin_principal_arns = ["arn:aws:iam::123456789012:role/platform-admins", "arn:aws:iam::123456789012:role/platform-admins"]
  }

  expect_failures = [var.admin_principal_arns]
}

run "flow_logs_with_a_retention_cloudwatch_lacks_are_rejected" {
  command = plan

  variables {
    vpc_flow_logs = { retention_days = 10 }
  }

  expect_failures = [var.vpc_flow_logs]
}
