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
      arn        = "arn:aws:sts::123456789012:assumed-role/ci-deployer/terraform"
    }
  }

  mock_resource "aws_eks_cluster" {
    defaults = {
      arn                   = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-platform"
      certificate_authority = [{ data = "Y2VydGlmaWNhdGU=" }]
    }
  }

  # The identity running the apply (cluster module: admin access entries must not name it).
  mock_data "aws_iam_session_context" {
    defaults = {
      issuer_arn = "arn:aws:iam::123456789012:role/ci-deployer"
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
  addon_versions = {
    "vpc-cni"                = "v1.22.4-eksbuild.3"
    "kube-proxy"             = "v1.35.3-eksbuild.29"
    "eks-pod-identity-agent" = "v1.3.10-eksbuild.3"
    "coredns"                = "v1.13.2-eksbuild.31"
  }
  name     = "eks-platform"
  vpc_cidr = "10.0.0.0/16"
}

# Every Pod Identity role's trust policy: the service principal, AssumeRole + TagSession, and the three
# session tags EKS sets that pin it to one cluster, namespace and service account. Test files cannot
# declare functions, so each run spells out the statement it expects.

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
    condition     = toset(keys(aws_eks_addon.before_nodes)) == toset(["vpc-cni", "kube-proxy"]) && length(aws_eks_addon.pod_identity_agent) == 1 && length(aws_eks_addon.coredns) == 1
    error_message = "vpc-cni, kube-proxy, eks-pod-identity-agent and coredns must be managed add-ons"
  }

  assert {
    condition     = tomap(output.addon_versions) == var.addon_versions
    error_message = "every add-on must run the pinned version (versions.yaml eks_addon_*), none the EKS default of the day"
  }

  assert {
    condition     = one(aws_eks_cluster.this.upgrade_policy).support_type == "STANDARD"
    error_message = "the upgrade policy must be explicit and STANDARD by default (EKS would pick EXTENDED)"
  }

  assert {
    condition     = one(aws_eks_addon.before_nodes["vpc-cni"].pod_identity_association).service_account == "aws-node" && length(aws_eks_addon.before_nodes["kube-proxy"].pod_identity_association) == 0
    error_message = "the vpc-cni add-on must bind its service account aws-node to its own role through EKS Pod Identity"
  }

  assert {
    condition     = output.cni_uses_pod_identity && !contains(output.ops_node_role_policy_arns, "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")
    error_message = "with the CNI on its own role, the ops node role must not carry AmazonEKS_CNI_Policy"
  }

  # The cluster's ARN is only known after apply here; the full statement, ARN included, is checked
  # by the pod-identity-role and karpenter runs below.
  assert {
    condition     = output.vpc_cni_trusted_session_tags["aws:RequestTag/kubernetes-namespace"] == "kube-system" && output.vpc_cni_trusted_session_tags["aws:RequestTag/kubernetes-service-account"] == "aws-node" && length(output.vpc_cni_trusted_session_tags) == 3
    error_message = "the VPC CNI role must trust only kube-system/aws-node (of this cluster)"
  }

  assert {
    condition     = length(aws_eks_access_entry.admin) == 0 && length(data.aws_iam_session_context.current) == 0
    error_message = "no named admins by default (the creator is admin through the bootstrap flag)"
  }
}

run "cluster_names_admins_through_access_entries" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    admin_principal_arns = ["arn:aws:iam::123456789012:role/platform-admins", "arn:aws:iam::123456789012:user/break-glass"]
  }

  assert {
    condition     = toset(keys(aws_eks_access_entry.admin)) == toset(var.admin_principal_arns) && alltrue([for entry in aws_eks_access_entry.admin : entry.type == "STANDARD"])
    error_message = "every named principal gets a STANDARD access entry"
  }

  assert {
    condition     = alltrue([for association in aws_eks_access_policy_association.admin : association.policy_arn == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy" && one(association.access_scope).type == "cluster"])
    error_message = "every named principal gets AmazonEKSClusterAdminPolicy on the whole cluster"
  }

  assert {
    condition     = output.admin_principal_arns == sort(var.admin_principal_arns)
    error_message = "the admins are reported"
  }
}

run "cluster_refuses_to_name_the_creator_as_admin" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    admin_principal_arns = ["arn:aws:iam::123456789012:role/ci-deployer"]
  }

  expect_failures = [aws_eks_access_entry.admin]
}

run "cluster_rejects_a_session_arn_as_admin" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    admin_principal_arns = ["arn:aws:sts::123456789012:assumed-role/platform-admins/alice"]
  }

  expect_failures = [var.admin_principal_arns]
}

run "cluster_rejects_a_service_linked_role_as_admin" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    admin_principal_arns = ["arn:aws:iam::123456789012:role/aws-service-role/eks.amazonaws.com/AWSServiceRoleForAmazonEKS"]
  }

  expect_failures = [var.admin_principal_arns]
}

run "cluster_on_extended_support_when_asked" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    support_type = "EXTENDED"
  }

  assert {
    condition     = one(aws_eks_cluster.this.upgrade_policy).support_type == "EXTENDED"
    error_message = "support_type EXTENDED must reach the cluster"
  }
}

run "cluster_rejects_an_unknown_support_type" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    support_type = "PREMIUM"
  }

  expect_failures = [var.support_type]
}

run "cluster_rejects_kube_proxy_of_another_minor" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    addon_versions = {
      "vpc-cni"                = "v1.22.4-eksbuild.3"
      "kube-proxy"             = "v1.34.6-eksbuild.2"
      "eks-pod-identity-agent" = "v1.3.10-eksbuild.3"
      "coredns"                = "v1.13.2-eksbuild.31"
    }
  }

  expect_failures = [aws_eks_cluster.this]
}

run "cluster_rejects_addon_versions_that_are_not_eks_builds" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    addon_versions = {
      "vpc-cni"                = "latest"
      "kube-proxy"             = "v1.35.3-eksbuild.29"
      "eks-pod-identity-agent" = "v1.3.10-eksbuild.3"
      "coredns"                = "v1.13.2-eksbuild.31"
    }
  }

  expect_failures = [var.addon_versions]
}

run "cluster_without_pod_identity_keeps_the_cni_policy_on_nodes" {
  command = plan

  module {
    source = "../modules/cluster"
  }

  variables {
    enable_pod_identity_associations = false
  }

  assert {
    condition     = !output.cni_uses_pod_identity && output.vpc_cni_role_arn == null && length(aws_eks_addon.before_nodes["vpc-cni"].pod_identity_association) == 0
    error_message = "without Pod Identity the CNI gets no role and no association"
  }

  assert {
    condition     = contains(output.ops_node_role_policy_arns, "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")
    error_message = "without Pod Identity the ops node role must carry AmazonEKS_CNI_Policy, or pods get no IPs"
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
    enable_upgrade_policy = false
    admin_principal_arns  = ["arn:aws:iam::123456789012:role/platform-admins"]
  }

  assert {
    condition     = length(aws_eks_addon.before_nodes) == 0 && length(aws_eks_addon.pod_identity_agent) == 0 && length(aws_eks_addon.coredns) == 0
    error_message = "no add-ons on a target without the EKS add-on API"
  }

  assert {
    condition     = length(aws_eks_cluster.this.access_config) == 0 && length(aws_eks_access_entry.admin) == 0
    error_message = "no access config and no admin entries on a target without access entries"
  }

  assert {
    condition     = length(aws_eks_cluster.this.upgrade_policy) == 0
    error_message = "no upgrade policy on a target that does not keep one"
  }

  assert {
    condition     = !output.cni_uses_pod_identity && contains(output.ops_node_role_policy_arns, "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")
    error_message = "without the add-on API the CNI policy stays on the node role"
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
    condition     = one(aws_eks_access_entry.node).cluster_name == "eks-platform"
    error_message = "the access entry takes the cluster's name from its ARN, so it waits for the cluster"
  }

  assert {
    condition     = length(module.controller_role.policy_arns) == 6
    error_message = "the controller gets upstream's six policies"
  }

  assert {
    condition = jsondecode(module.controller_role.assume_role_policy).Statement == [{
      Sid       = "EksPodIdentityForOneServiceAccount"
      Effect    = "Allow"
      Principal = { Service = "pods.eks.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
      Condition = { StringEquals = {
        "aws:RequestTag/eks-cluster-arn"            = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-platform"
        "aws:RequestTag/kubernetes-namespace"       = "kube-system"
        "aws:RequestTag/kubernetes-service-account" = "karpenter"
      } }
    }]
    error_message = "the controller role must trust only kube-system/karpenter of this cluster"
  }

  assert {
    condition     = output.node_role_policy_arns == sort(["arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy", "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly", "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"])
    error_message = "Karpenter's node role carries no CNI policy by default (the CNI has its own role)"
  }
}

run "karpenter_node_role_carries_the_cni_policy_when_asked" {
  command = plan

  module {
    source = "../modules/karpenter"
  }

  variables {
    attach_cni_policy = true
  }

  assert {
    condition     = contains(output.node_role_policy_arns, "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy")
    error_message = "attach_cni_policy must put AmazonEKS_CNI_Policy on the node role"
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

run "karpenter_refuses_a_cluster_arn_of_another_cluster" {
  command = plan

  module {
    source = "../modules/karpenter"
  }

  variables {
    cluster_arn = "arn:aws:eks:eu-west-1:123456789012:cluster/another-cluster"
  }

  expect_failures = [aws_eks_access_entry.node]
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

  assert {
    condition = jsondecode(module.controller_role.assume_role_policy).Statement[0].Condition == { StringEquals = {
      "aws:RequestTag/eks-cluster-arn"            = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-platform"
      "aws:RequestTag/kubernetes-namespace"       = "kube-system"
      "aws:RequestTag/kubernetes-service-account" = "aws-load-balancer-controller"
    } }
    error_message = "the controller role must trust only kube-system/aws-load-balancer-controller of this cluster"
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

  expect_failures = [aws_iam_role.this]
}

run "pod_identity_role_with_a_managed_policy_only" {
  command = plan

  module {
    source = "../modules/pod-identity-role"
  }

  variables {
    name                = "eks-platform-example"
    description         = "example"
    service_account     = { namespace = "default", name = "example" }
    managed_policy_arns = ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"]
    enable_association  = false
  }

  assert {
    condition = jsondecode(aws_iam_role.this.assume_role_policy) == {
      Version = "2012-10-17"
      Statement = [{
        Sid       = "EksPodIdentityForOneServiceAccount"
        Effect    = "Allow"
        Principal = { Service = "pods.eks.amazonaws.com" }
        Action    = ["sts:AssumeRole", "sts:TagSession"]
        Condition = { StringEquals = {
          "aws:RequestTag/eks-cluster-arn"            = "arn:aws:eks:eu-west-1:123456789012:cluster/eks-platform"
          "aws:RequestTag/kubernetes-namespace"       = "default"
          "aws:RequestTag/kubernetes-service-account" = "example"
        } }
      }]
    }
    error_message = "the trust policy admits pods.eks.amazonaws.com only for this cluster, namespace and service account"
  }

  assert {
    condition     = length(aws_eks_pod_identity_association.this) == 0 && output.association_service_account == null
    error_message = "no association when an add-on owns it"
  }

  assert {
    condition     = keys(aws_iam_role_policy_attachment.managed) == ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"] && length(aws_iam_policy.this) == 0
    error_message = "a managed policy is attached as is; nothing is created"
  }
}

run "pod_identity_role_refuses_a_wildcard_service_account" {
  command = plan

  module {
    source = "../modules/pod-identity-role"
  }

  variables {
    name                = "eks-platform-example"
    description         = "example"
    service_account     = { namespace = "default", name = "*" }
    managed_policy_arns = ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"]
  }

  expect_failures = [var.service_account]
}

run "pod_identity_role_refuses_a_cluster_arn_that_is_not_one" {
  command = plan

  module {
    source = "../modules/pod-identity-role"
  }

  variables {
    name                = "eks-platform-example"
    description         = "example"
    cluster_arn         = "eks-platform"
    service_account     = { namespace = "default", name = "example" }
    managed_policy_arns = ["arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"]
  }

  expect_failures = [var.cluster_arn]
}

run "network_default_security_group_has_no_rules" {
  command = plan

  module {
    source = "../modules/network"
  }

  assert {
    condition     = length(aws_default_security_group.this.ingress) == 0 && length(aws_default_security_group.this.egress) == 0 && aws_default_security_group.this.tags["Name"] == "eks-platform-default-unused"
    error_message = "the VPC's default security group must be held with no ingress and no egress rule"
  }

  assert {
    condition     = length(aws_flow_log.this) == 0 && length(aws_iam_role.flow_logs) == 0 && output.flow_log_group_name == null
    error_message = "flow logs are off unless asked for"
  }
}

run "network_flow_logs_when_asked" {
  command = plan

  module {
    source = "../modules/network"
  }

  variables {
    flow_logs = { retention_days = 30 }
  }

  assert {
    condition     = one(aws_flow_log.this).traffic_type == "ALL" && one(aws_flow_log.this).log_destination_type == "cloud-watch-logs"
    error_message = "flow logs record all traffic into CloudWatch Logs by default"
  }

  assert {
    condition     = one(aws_cloudwatch_log_group.flow_logs).retention_in_days == 30 && output.flow_log_group_name == "/aws/vpc/eks-platform/flow-logs"
    error_message = "the flow-log group keeps what retention_days says"
  }

  assert {
    condition     = jsondecode(one(aws_iam_role.flow_logs).assume_role_policy).Statement[0].Condition.StringEquals == { "aws:SourceAccount" = "123456789012" }
    error_message = "only this account's flow logs may assume the delivery role"
  }
}

run "network_rejects_an_unknown_flow_log_traffic_type" {
  command = plan

  module {
    source = "../modules/network"
  }

  variables {
    flow_logs = { traffic_type = "SOME" }
  }

  expect_failures = [var.flow_logs]
}
