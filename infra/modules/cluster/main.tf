data "aws_partition" "current" {}

locals {
  ops_node_labels = {
    "workload-type"           = "ops"
    "karpenter.sh/controller" = "true"
  }
  # vpc-cni, kube-proxy and the pod identity agent are DaemonSets that must exist before nodes
  # join; coredns is a Deployment that only becomes ACTIVE once nodes can run it. The pod identity
  # agent comes first of all: the VPC CNI gets its credentials through it.
  addons_before_nodes = var.enable_addons ? toset(["vpc-cni", "kube-proxy"]) : toset([])
  control_plane_logs  = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  # The VPC CNI (service account kube-system/aws-node) gets AmazonEKS_CNI_Policy through its own Pod
  # Identity role where the target serves both the add-on and the association; otherwise the node
  # roles carry it, as before.
  cni_via_pod_identity = var.enable_addons && var.enable_pod_identity_associations
  cni_service_account  = { namespace = "kube-system", name = "aws-node" }
  cni_policy_arn       = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKS_CNI_Policy"

  # Named admins get an access entry with the cluster-admin access policy (access entries capability).
  admin_principal_arns = var.enable_access_entries ? toset(var.admin_principal_arns) : toset([])
}

data "aws_iam_policy_document" "cluster_assume_role" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole", "sts:TagSession"]

    principals {
      type        = "Service"
      identifiers = ["eks.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "${var.cluster_name}-cluster"
  assume_role_policy = data.aws_iam_policy_document.cluster_assume_role.json
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_kms_key" "secrets" {
  description             = "Envelope encryption of Kubernetes secrets in EKS cluster ${var.cluster_name}"
  enable_key_rotation     = true
  deletion_window_in_days = 7
}

resource "aws_kms_alias" "secrets" {
  name          = "alias/${var.cluster_name}-eks-secrets"
  target_key_id = aws_kms_key.secrets.key_id
}

resource "aws_iam_role_policy" "cluster_kms" {
  name = "secrets-encryption"
  role = aws_iam_role.cluster.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["kms:Encrypt", "kms:Decrypt", "kms:ListGrants", "kms:DescribeKey"]
      Resource = aws_kms_key.secrets.arn
    }]
  })
}

# Created before the cluster so EKS writes into a group with a retention instead of making its own.
resource "aws_cloudwatch_log_group" "control_plane" {
  name              = "/aws/eks/${var.cluster_name}/cluster"
  retention_in_days = var.log_retention_days
}

# The one security group Karpenter discovers: on the control-plane ENIs, the ops nodes and
# every Karpenter node, so all of them talk to each other through its self-reference.
resource "aws_security_group" "nodes" {
  name        = "${var.cluster_name}-nodes"
  description = "EKS ${var.cluster_name}: control plane ENIs, ops nodes and Karpenter nodes"
  vpc_id      = var.vpc_id

  tags = {
    Name                     = "${var.cluster_name}-nodes"
    "karpenter.sh/discovery" = var.cluster_name
  }
}

# All traffic between control plane, nodes and pods.
resource "aws_vpc_security_group_ingress_rule" "nodes_self" {
  security_group_id            = aws_security_group.nodes.id
  ip_protocol                  = "-1"
  referenced_security_group_id = aws_security_group.nodes.id
}

resource "aws_vpc_security_group_egress_rule" "nodes_all" {
  security_group_id = aws_security_group.nodes.id
  description       = "Nodes reach AWS APIs, image registries and the internet through the NAT gateway"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_eks_cluster" "this" {
  name                      = var.cluster_name
  version                   = var.kubernetes_version
  role_arn                  = aws_iam_role.cluster.arn
  enabled_cluster_log_types = local.control_plane_logs

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    security_group_ids      = [aws_security_group.nodes.id]
    endpoint_private_access = true
    endpoint_public_access  = true
    public_access_cidrs     = var.api_public_cidrs
  }

  # Access entries instead of the aws-auth ConfigMap; whoever creates the cluster becomes admin.
  # Part of the access-entry capability: a target without it reports no access config at all.
  dynamic "access_config" {
    for_each = var.enable_access_entries ? ["API"] : []

    content {
      authentication_mode                         = access_config.value
      bootstrap_cluster_creator_admin_permissions = true
    }
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.secrets.arn
    }
  }

  # Explicit, because EKS otherwise puts a new cluster on EXTENDED support, which costs six times the
  # standard control-plane price once the version leaves standard support. Part of the upgrade-policy
  # capability: a target that does not keep the setting reports none.
  dynamic "upgrade_policy" {
    for_each = var.enable_upgrade_policy ? [var.support_type] : []

    content {
      support_type = upgrade_policy.value
    }
  }

  # EKS only honours the creator-admin flag at creation; never replace a cluster over it.
  lifecycle {
    ignore_changes = [access_config[0].bootstrap_cluster_creator_admin_permissions]

    # kube-proxy must match the control plane's minor version (its add-on versions are built per minor).
    precondition {
      condition     = startswith(var.addon_versions["kube-proxy"], "v${var.kubernetes_version}.")
      error_message = "kube-proxy ${var.addon_versions["kube-proxy"]} does not match Kubernetes ${var.kubernetes_version}: pin a v${var.kubernetes_version}.x-eksbuild.N version in versions.yaml (eks_addon_kube_proxy)."
    }
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_kms,
    aws_cloudwatch_log_group.control_plane,
  ]
}

# ---------------------------------------------------------------- access for named admins

# Whoever creates the cluster is admin through bootstrap_cluster_creator_admin_permissions; these
# principals are admins by name, so access no longer hangs on one person's identity.
resource "aws_eks_access_entry" "admin" {
  for_each = local.admin_principal_arns

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
  type          = "STANDARD"

  lifecycle {
    # EKS already has an entry for the creator: a second one fails with ResourceInUseException.
    precondition {
      condition     = each.value != one(data.aws_iam_session_context.current[*].issuer_arn)
      error_message = "admin_principal_arns names ${each.value}, the identity running this apply: it is cluster admin already as the cluster's creator, and EKS refuses a second access entry for it. Leave it out."
    }
  }
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = local.admin_principal_arns

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_eks_access_entry.admin[each.key].principal_arn
  policy_arn    = "arn:${data.aws_partition.current.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }
}

data "aws_caller_identity" "current" {
  count = length(local.admin_principal_arns) > 0 ? 1 : 0
}

# The role (not the session) behind the caller: what EKS recorded as the creator's principal.
data "aws_iam_session_context" "current" {
  count = length(local.admin_principal_arns) > 0 ? 1 : 0

  arn = data.aws_caller_identity.current[0].arn
}

# ---------------------------------------------------------------- core add-ons

resource "aws_eks_addon" "pod_identity_agent" {
  count = var.enable_addons ? 1 : 0

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "eks-pod-identity-agent"
  addon_version               = var.addon_versions["eks-pod-identity-agent"]
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
}

moved {
  from = aws_eks_addon.before_nodes["eks-pod-identity-agent"]
  to   = aws_eks_addon.pod_identity_agent[0]
}

resource "aws_eks_addon" "before_nodes" {
  for_each = local.addons_before_nodes

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  addon_version               = var.addon_versions[each.key]
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  # The association is created and owned by the add-on (deleted with it).
  dynamic "pod_identity_association" {
    for_each = each.key == "vpc-cni" && local.cni_via_pod_identity ? [local.cni_service_account.name] : []

    content {
      role_arn        = module.vpc_cni_role[0].role_arn
      service_account = pod_identity_association.value
    }
  }

  depends_on = [aws_eks_addon.pod_identity_agent]
}

module "vpc_cni_role" {
  source = "../pod-identity-role"
  count  = local.cni_via_pod_identity ? 1 : 0

  name                = "${var.cluster_name}-vpc-cni"
  description         = "Amazon VPC CNI (aws-node) of ${var.cluster_name}, assumed through EKS Pod Identity"
  cluster_name        = aws_eks_cluster.this.name
  cluster_arn         = aws_eks_cluster.this.arn
  service_account     = local.cni_service_account
  managed_policy_arns = [local.cni_policy_arn]
  enable_association  = false
}

data "aws_iam_policy_document" "node_assume_role" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ec2.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

resource "aws_iam_role" "ops_node" {
  name               = "${var.cluster_name}-ops-node"
  assume_role_policy = data.aws_iam_policy_document.node_assume_role.json
}

# AmazonEKS_CNI_Policy only when the VPC CNI has no Pod Identity role of its own (see vpc_cni_role).
resource "aws_iam_role_policy_attachment" "ops_node" {
  for_each = toset(concat(
    ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly", "AmazonSSMManagedInstanceCore"],
    local.cni_via_pod_identity ? [] : ["AmazonEKS_CNI_Policy"],
  ))

  role       = aws_iam_role.ops_node.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/${each.key}"
}

resource "aws_launch_template" "ops" {
  name                   = "${var.cluster_name}-ops"
  description            = "Ops nodes of EKS ${var.cluster_name}: IMDSv2 only, hop limit 1, encrypted root volume"
  update_default_version = true
  vpc_security_group_ids = [aws_security_group.nodes.id]

  # Hop limit 1 keeps pods (one network hop further) away from the node role's credentials;
  # controllers get their own through EKS Pod Identity instead.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = var.ops_root_volume_size
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  dynamic "tag_specifications" {
    for_each = toset(["instance", "volume", "network-interface"])

    content {
      resource_type = tag_specifications.value
      tags          = merge(var.instance_tags, { Name = "${var.cluster_name}-ops" })
    }
  }
}

resource "aws_eks_node_group" "ops" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "ops"
  node_role_arn   = aws_iam_role.ops_node.arn
  subnet_ids      = var.private_subnet_ids
  ami_type        = "AL2023_x86_64_STANDARD"
  # The cluster's minor, read from the cluster: an upgrade moves the control plane first, then this group.
  version        = aws_eks_cluster.this.version
  capacity_type  = var.ops_capacity_type
  instance_types = var.ops_instance_types
  labels         = local.ops_node_labels

  # Only pods that tolerate this (the controllers) land on ops nodes; workloads go to Karpenter nodes.
  taint {
    key    = "CriticalAddonsOnly"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  scaling_config {
    min_size     = var.ops_min_size
    desired_size = var.ops_desired_size
    max_size     = var.ops_max_size
  }

  launch_template {
    id      = aws_launch_template.ops.id
    version = aws_launch_template.ops.latest_version
  }

  lifecycle {
    # SSH is never configured (nodes are reached through SSM); a reported default must not
    # replace the node group.
    ignore_changes = [remote_access]

    precondition {
      condition     = var.ops_min_size <= var.ops_desired_size && var.ops_desired_size <= var.ops_max_size
      error_message = "The ops node group needs ops_min_size <= ops_desired_size <= ops_max_size."
    }
  }

  depends_on = [
    aws_iam_role_policy_attachment.ops_node,
    aws_eks_addon.pod_identity_agent,
    aws_eks_addon.before_nodes,
  ]
}

resource "aws_eks_addon" "coredns" {
  count = var.enable_addons ? 1 : 0

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "coredns"
  addon_version               = var.addon_versions["coredns"]
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"

  depends_on = [aws_eks_node_group.ops]
}
