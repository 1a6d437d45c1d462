# Offline checks of the local modules, one run per guard, with the same mocked AWS provider:
# `terraform -chdir=infra/platform test`.

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
    }
  }

  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-platform"
      certificate_authority = [{ data = "Y2VydGlmaWNhdGU=" }]
    }
  }
}

variables {
  cluster_name       = "eks-platform"
  kubernetes_version = "1.35"
  vpc_id             = "vpc-0123456789abcdef0"
  private_subnet_ids = ["subnet-0a", "subnet-0b", "subnet-0c"]
  api_public_cidrs   = ["198.51.100.0/24"]
  ops_instance_types = ["m7i.large"]
  ops_min_size       = 2
  ops_desired_size   = 2
  ops_max_size       = 3
  instance_tags      = { project = "eks-platform", "run-id" = "r-test" }
  cluster_arn        = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-platform"
  region             = "eu-west-1"
  service_account    = { namespace = "kube-system", name = "karpenter" }
}

run "cluster_nodes_are_locked_down" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  assert {
    condition     = aws_launch_template.ops.metadata_options[0].http_tokens == "required" && aws_launch_template.ops.metadata_options[0].http_put_response_hop_limit == 1
    error_message = "ops nodes need IMDSv2 only with hop limit 1"
  }

  assert {
    condition     = aws_launch_template.ops.block_device_mappings[0].ebs[0].encrypted == "true"
    error_message = "the ops root volume must be encrypted"
  }

  assert {
    condition     = toset([for spec in aws_launch_template.ops.tag_specifications : spec.resource_type]) == toset(["instance", "volume", "network-interface"]) && alltrue([for spec in aws_launch_template.ops.tag_specifications : spec.tags["run-id"] == "r-test"])
    error_message = "run tags must reach instances, volumes and network interfaces"
  }

  assert {
    condition     = one(aws_eks_node_group.ops.taint).key == "CriticalAddonsOnly" && one(aws_eks_node_group.ops.taint).effect == "NO_SCHEDULE"
    error_message = "the ops node group must be tainted CriticalAddonsOnly:NoSchedule"
  }

  assert {
    condition     = aws_eks_cluster.this.vpc_config[0].endpoint_private_access && aws_eks_cluster.this.vpc_config[0].public_access_cidrs == toset(["198.51.100.0/24"])
    error_message = "the API must have its private endpoint and only the given public CIDRs"
  }

  assert {
    condition     = one(aws_eks_cluster.this.access_config).authentication_mode == "API"
    error_message = "the cluster must use access entries (authentication mode API)"
  }

  assert {
    condition     = aws_kms_key.secrets.enable_key_rotation && one(aws_eks_cluster.this.encryption_config).resources == toset(["secrets"])
    error_message = "secrets must be encrypted with a rotating KMS key"
  }

  assert {
    condition     = aws_security_group.nodes.tags["karpenter.sh/discovery"] == "eks-platform"
    error_message = "the node security group is the one Karpenter discovers"
  }

  assert {
    condition     = length(aws_eks_addon.before_nodes) == 3 && length(aws_eks_addon.coredns) == 1
    error_message = "vpc-cni, kube-proxy, eks-pod-identity-agent and coredns must be managed add-ons"
  }
}

run "cluster_without_addons_or_access_entries" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    enable_addons         = false
    enable_access_entries = false
  }

  assert {
    condition     = length(aws_eks_addon.before_nodes) == 0 && length(aws_eks_addon.coredns) == 0
    error_message = "no add-ons on a target without the EKS add-on API"
  }

  assert {
    condition     = length(aws_eks_cluster.this.access_config) == 0
    error_message = "no access config on a target without access entries"
  }
}

run "node_group_sizes_out_of_order_are_rejected" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    ops_min_size     = 3
    ops_desired_size = 2
  }

  expect_failures = [aws_eks_node_group.ops]
}

run "karpenter_queue_rules_and_access" {
  command = plan

  module {
    source = "../modules/karpenter"
  }

  assert {
    condition     = aws_sqs_queue.interruption.name == "eks-platform-karpenter-interruption" && aws_sqs_queue.interruption.message_retention_seconds == 300 && aws_sqs_queue.interruption.sqs_managed_sse_enabled
    error_message = "the interruption queue keeps messages 300 s, encrypted with SQS-managed keys"
  }

  assert {
    condition = toset([for rule in aws_cloudwatch_event_rule.interruption : jsondecode(rule.event_pattern)["detail-type"][0]]) == toset([
      "AWS Health Event",
      "EC2 Spot Instance Interruption Warning",
      "EC2 Instance Rebalance Recommendation",
      "EC2 Instance State-change Notification",
      "EC2 Capacity Reservation Instance Interruption Warning",
    ])
    error_message = "the five upstream interruption event types must feed the queue"
  }

  assert {
    condition     = aws_iam_role.node.name == "eks-platform-karpenter-node" && module.controller_role.role_name == "eks-platform-karpenter-controller"
    error_message = "role names derive from the cluster name"
  }

  assert {
    condition     = one(aws_eks_access_entry.node).type == "EC2_LINUX" && module.controller_role.association_service_account == "kube-system/karpenter"
    error_message = "Karpenter nodes need an EC2_LINUX access entry and the controller its Pod Identity association"
  }

  assert {
    condition     = length(module.controller_role.policy_arns) == 6
    error_message = "the controller gets upstream's six policies"
  }
}

run "karpenter_without_access_entries_or_pod_identity" {
  command = plan

  module {
    source = "../modules/karpenter"
  }

  variables {
    enable_access_entries            = false
    enable_pod_identity_associations = false
  }

  assert {
    condition     = length(aws_eks_access_entry.node) == 0 && module.controller_role.association_service_account == null
    error_message = "a target without those APIs gets neither resource"
  }
}

run "karpenter_rejects_a_cluster_arn_that_is_not_one" {
  command = plan

  module {
    source = "../modules/karpenter"
  }

  variables {
    cluster_arn = "eks-platform"
  }

  expect_failures = [var.cluster_arn]
}

run "lb_controller_role_through_pod_identity" {
  command = plan

  module {
    source = "../modules/lb-controller"
  }

  variables {
    service_account = { namespace = "kube-system", name = "aws-load-balancer-controller" }
  }

  assert {
    condition     = module.controller_role.role_name == "eks-platform-aws-load-balancer-controller" && keys(module.controller_role.policy_arns) == ["eks-platform-aws-load-balancer-controller"]
    error_message = "the controller role and its one upstream policy are named after the cluster"
  }

  assert {
    condition     = module.controller_role.association_service_account == "kube-system/aws-load-balancer-controller"
    error_message = "the controller's service account is bound to its role"
  }
}

run "pod_identity_role_refuses_a_role_without_policies" {
  command = plan

  module {
    source = "../modules/pod-identity-role"
  }

  variables {
    name            = "eks-platform-example"
    description     = "example"
    service_account = { namespace = "default", name = "example" }
    policies        = {}
  }

  expect_failures = [var.policies]
}
