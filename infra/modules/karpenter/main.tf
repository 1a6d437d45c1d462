data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  account_id = data.aws_caller_identity.current.account_id
  # The cluster's name as its ARN carries it: what needs the cluster to exist (the nodes' access entry, the
  # controller's Pod Identity association) takes this one and so waits for the cluster. Names take
  # var.cluster_name, known before, so the queue, its rules and the roles are created while the cluster is
  # (on the emulator the queue's 25 s attribute wait no longer follows the VPC and the cluster).
  existing_cluster_name = split("/", var.cluster_arn)[1]
  ec2_arn               = "arn:${local.partition}:ec2:${var.region}"
  # Karpenter tags everything it launches with these; the controller policy only lets it touch
  # resources that carry them.
  cluster_tag_key = "kubernetes.io/cluster/${var.cluster_name}"

  # EventBridge rules that feed the interruption queue, as in upstream's v1.14 CloudFormation.
  interruption_events = {
    health               = { source = "aws.health", detail_type = "AWS Health Event" }
    spot-interruption    = { source = "aws.ec2", detail_type = "EC2 Spot Instance Interruption Warning" }
    rebalance            = { source = "aws.ec2", detail_type = "EC2 Instance Rebalance Recommendation" }
    state-change         = { source = "aws.ec2", detail_type = "EC2 Instance State-change Notification" }
    capacity-reservation = { source = "aws.ec2", detail_type = "EC2 Capacity Reservation Instance Interruption Warning" }
  }

  controller_policies = {
    node-lifecycle     = data.aws_iam_policy_document.node_lifecycle.json
    iam-integration    = data.aws_iam_policy_document.iam_integration.json
    eks-integration    = data.aws_iam_policy_document.eks_integration.json
    interruption       = data.aws_iam_policy_document.interruption.json
    zonal-shift        = data.aws_iam_policy_document.zonal_shift.json
    resource-discovery = data.aws_iam_policy_document.resource_discovery.json
  }
}

# ---------------------------------------------------------------- node role

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

resource "aws_iam_role" "node" {
  name               = "${var.cluster_name}-karpenter-node"
  description        = "Instance role of the nodes Karpenter launches for ${var.cluster_name}"
  assume_role_policy = data.aws_iam_policy_document.node_assume_role.json
}

# AmazonEKS_CNI_Policy only when the VPC CNI cannot get its own role through EKS Pod Identity: otherwise
# every pod on the node could use the CNI's EC2 network permissions through the node role.
resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset(concat(
    ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly", "AmazonSSMManagedInstanceCore"],
    var.attach_cni_policy ? ["AmazonEKS_CNI_Policy"] : [],
  ))

  role       = aws_iam_role.node.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/${each.key}"
}

# Lets instances with the node role join the cluster (authentication mode API has no aws-auth ConfigMap).
resource "aws_eks_access_entry" "node" {
  count = var.enable_access_entries ? 1 : 0

  cluster_name  = local.existing_cluster_name
  principal_arn = aws_iam_role.node.arn
  type          = "EC2_LINUX"

  lifecycle {
    precondition {
      condition     = local.existing_cluster_name == var.cluster_name
      error_message = "cluster_arn names cluster ${local.existing_cluster_name}, not cluster_name ${var.cluster_name}: pass the same cluster's name and ARN."
    }
  }
}

# ---------------------------------------------------------------- interruption queue

locals {
  interruption_queue_name = "${var.cluster_name}-karpenter-interruption"
  # Built rather than read from the queue: the policy is inline, so it cannot refer to the queue's arn.
  interruption_queue_arn = "arn:${local.partition}:sqs:${var.region}:${local.account_id}:${local.interruption_queue_name}"
}

resource "aws_sqs_queue" "interruption" {
  name                      = local.interruption_queue_name
  message_retention_seconds = 300
  sqs_managed_sse_enabled   = true
  # Inline, not a separate aws_sqs_queue_policy: the provider waits >= 25 s for queue attributes to
  # settle after every change, so one resource means one wait on create and none extra on destroy.
  policy = data.aws_iam_policy_document.interruption_queue.json
}

data "aws_iam_policy_document" "interruption_queue" {
  policy_id = "EC2InterruptionPolicy"

  statement {
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [local.interruption_queue_arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "sqs.amazonaws.com"]
    }
  }

  statement {
    sid       = "DenyHTTP"
    effect    = "Deny"
    actions   = ["sqs:*"]
    resources = [local.interruption_queue_arn]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_cloudwatch_event_rule" "interruption" {
  for_each = local.interruption_events

  name        = "${var.cluster_name}-karpenter-${each.key}"
  description = "${each.value.detail_type} events for Karpenter in ${var.cluster_name}"
  event_pattern = jsonencode({
    source        = [each.value.source]
    "detail-type" = [each.value.detail_type]
  })
}

resource "aws_cloudwatch_event_target" "interruption" {
  for_each = local.interruption_events

  rule      = aws_cloudwatch_event_rule.interruption[each.key].name
  target_id = "KarpenterInterruptionQueueTarget"
  arn       = aws_sqs_queue.interruption.arn
}

# ---------------------------------------------------------------- controller role
# Each policy document below transcribes one managed policy of upstream's v1.14
# getting-started CloudFormation: same statements, actions, resources and conditions.

data "aws_iam_policy_document" "node_lifecycle" {
  statement {
    sid     = "AllowScopedEC2InstanceAccessActions"
    effect  = "Allow"
    actions = ["ec2:RunInstances", "ec2:CreateFleet"]
    resources = [
      "arn:${local.partition}:ec2:${var.region}::image/*",
      "arn:${local.partition}:ec2:${var.region}::snapshot/*",
      "${local.ec2_arn}:*:security-group/*",
      "${local.ec2_arn}:*:subnet/*",
      "${local.ec2_arn}:*:capacity-reservation/*",
      "${local.ec2_arn}:*:placement-group/*",
    ]
  }

  statement {
    sid       = "AllowScopedEC2LaunchTemplateAccessActions"
    effect    = "Allow"
    actions   = ["ec2:RunInstances", "ec2:CreateFleet"]
    resources = ["${local.ec2_arn}:*:launch-template/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }

  statement {
    sid     = "AllowScopedEC2InstanceActionsWithTags"
    effect  = "Allow"
    actions = ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"]
    resources = [
      "${local.ec2_arn}:*:fleet/*",
      "${local.ec2_arn}:*:instance/*",
      "${local.ec2_arn}:*:volume/*",
      "${local.ec2_arn}:*:network-interface/*",
      "${local.ec2_arn}:*:launch-template/*",
      "${local.ec2_arn}:*:spot-instances-request/*",
    ]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks:eks-cluster-name"
      values   = [var.cluster_name]
    }

    condition {
      test     = "StringLike"
      variable = "aws:RequestTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }

  statement {
    sid     = "AllowScopedResourceCreationTagging"
    effect  = "Allow"
    actions = ["ec2:CreateTags"]
    resources = [
      "${local.ec2_arn}:*:fleet/*",
      "${local.ec2_arn}:*:instance/*",
      "${local.ec2_arn}:*:volume/*",
      "${local.ec2_arn}:*:network-interface/*",
      "${local.ec2_arn}:*:launch-template/*",
      "${local.ec2_arn}:*:spot-instances-request/*",
    ]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks:eks-cluster-name"
      values   = [var.cluster_name]
    }

    condition {
      test     = "StringEquals"
      variable = "ec2:CreateAction"
      values   = ["RunInstances", "CreateFleet", "CreateLaunchTemplate"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:RequestTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }

  statement {
    sid       = "AllowScopedResourceTagging"
    effect    = "Allow"
    actions   = ["ec2:CreateTags"]
    resources = ["${local.ec2_arn}:*:instance/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.sh/nodepool"
      values   = ["*"]
    }

    condition {
      test     = "StringEqualsIfExists"
      variable = "aws:RequestTag/eks:eks-cluster-name"
      values   = [var.cluster_name]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
    }
  }

  statement {
    sid     = "AllowScopedDeletion"
    effect  = "Allow"
    actions = ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"]
    resources = [
      "${local.ec2_arn}:*:instance/*",
      "${local.ec2_arn}:*:launch-template/*",
    ]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.sh/nodepool"
      values   = ["*"]
    }
  }
}

data "aws_iam_policy_document" "iam_integration" {
  statement {
    sid       = "AllowPassingInstanceRole"
    effect    = "Allow"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.node.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]
    }
  }

  statement {
    sid       = "AllowScopedInstanceProfileCreationActions"
    effect    = "Allow"
    actions   = ["iam:CreateInstanceProfile"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:instance-profile/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks:eks-cluster-name"
      values   = [var.cluster_name]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/topology.kubernetes.io/region"
      values   = [var.region]
    }

    condition {
      test     = "StringLike"
      variable = "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass"
      values   = ["*"]
    }
  }

  statement {
    sid       = "AllowScopedInstanceProfileTagActions"
    effect    = "Allow"
    actions   = ["iam:TagInstanceProfile"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:instance-profile/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/topology.kubernetes.io/region"
      values   = [var.region]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks:eks-cluster-name"
      values   = [var.cluster_name]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/topology.kubernetes.io/region"
      values   = [var.region]
    }

    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass"
      values   = ["*"]
    }

    condition {
      test     = "StringLike"
      variable = "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass"
      values   = ["*"]
    }
  }

  statement {
    sid       = "AllowScopedInstanceProfileActions"
    effect    = "Allow"
    actions   = ["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:instance-profile/*"]

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/${local.cluster_tag_key}"
      values   = ["owned"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:ResourceTag/topology.kubernetes.io/region"
      values   = [var.region]
    }

    condition {
      test     = "StringLike"
      variable = "aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass"
      values   = ["*"]
    }
  }
}

data "aws_iam_policy_document" "eks_integration" {
  statement {
    sid       = "AllowAPIServerEndpointDiscovery"
    effect    = "Allow"
    actions   = ["eks:DescribeCluster"]
    resources = [var.cluster_arn]
  }
}

data "aws_iam_policy_document" "interruption" {
  statement {
    sid       = "AllowInterruptionQueueActions"
    effect    = "Allow"
    actions   = ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"]
    resources = [aws_sqs_queue.interruption.arn]
  }
}

data "aws_iam_policy_document" "zonal_shift" {
  statement {
    sid       = "AllowZonalShiftStatusReadOnly"
    effect    = "Allow"
    actions   = ["arc-zonal-shift:GetManagedResource"]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "arc-zonal-shift:ResourceIdentifier"
      values   = [var.cluster_arn]
    }
  }
}

data "aws_iam_policy_document" "resource_discovery" {
  statement {
    sid    = "AllowRegionalReadActions"
    effect = "Allow"
    actions = [
      "ec2:DescribeCapacityReservations",
      "ec2:DescribeImages",
      "ec2:DescribeInstances",
      "ec2:DescribeInstanceStatus",
      "ec2:DescribeInstanceTypeOfferings",
      "ec2:DescribeInstanceTypes",
      "ec2:DescribeLaunchTemplates",
      "ec2:DescribePlacementGroups",
      "ec2:DescribeSecurityGroups",
      "ec2:DescribeSpotPriceHistory",
      "ec2:DescribeSubnets",
    ]
    resources = ["*"]

    condition {
      test     = "StringEquals"
      variable = "aws:RequestedRegion"
      values   = [var.region]
    }
  }

  statement {
    sid       = "AllowSSMReadActions"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = ["arn:${local.partition}:ssm:${var.region}::parameter/aws/service/*"]
  }

  statement {
    sid       = "AllowPricingReadActions"
    effect    = "Allow"
    actions   = ["pricing:GetProducts"]
    resources = ["*"]
  }

  statement {
    sid       = "AllowUnscopedInstanceProfileListAction"
    effect    = "Allow"
    actions   = ["iam:ListInstanceProfiles"]
    resources = ["*"]
  }

  statement {
    sid       = "AllowInstanceProfileReadActions"
    effect    = "Allow"
    actions   = ["iam:GetInstanceProfile"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:instance-profile/*"]
  }
}

module "controller_role" {
  source = "../pod-identity-role"

  name               = "${var.cluster_name}-karpenter-controller"
  description        = "Karpenter controller of ${var.cluster_name}, assumed through EKS Pod Identity"
  cluster_name       = local.existing_cluster_name
  cluster_arn        = var.cluster_arn
  service_account    = var.service_account
  enable_association = var.enable_pod_identity_associations

  policies = {
    for key, document in local.controller_policies : key => {
      name        = "${var.cluster_name}-karpenter-${key}"
      description = "Karpenter controller ${key} permissions for ${var.cluster_name} (upstream v1.14 policy)"
      document    = document
    }
  }
}

# The controller role used to live in this module: state from then moves instead of being replaced.
moved {
  from = aws_iam_role.controller
  to   = module.controller_role.aws_iam_role.this
}

moved {
  from = aws_eks_pod_identity_association.controller
  to   = module.controller_role.aws_eks_pod_identity_association.this
}

moved {
  from = aws_iam_policy.controller["node-lifecycle"]
  to   = module.controller_role.aws_iam_policy.this["node-lifecycle"]
}

moved {
  from = aws_iam_role_policy_attachment.controller["node-lifecycle"]
  to   = module.controller_role.aws_iam_role_policy_attachment.this["node-lifecycle"]
}

moved {
  from = aws_iam_policy.controller["iam-integration"]
  to   = module.controller_role.aws_iam_policy.this["iam-integration"]
}

moved {
  from = aws_iam_role_policy_attachment.controller["iam-integration"]
  to   = module.controller_role.aws_iam_role_policy_attachment.this["iam-integration"]
}

moved {
  from = aws_iam_policy.controller["eks-integration"]
  to   = module.controller_role.aws_iam_policy.this["eks-integration"]
}

moved {
  from = aws_iam_role_policy_attachment.controller["eks-integration"]
  to   = module.controller_role.aws_iam_role_policy_attachment.this["eks-integration"]
}

moved {
  from = aws_iam_policy.controller["interruption"]
  to   = module.controller_role.aws_iam_policy.this["interruption"]
}

moved {
  from = aws_iam_role_policy_attachment.controller["interruption"]
  to   = module.controller_role.aws_iam_role_policy_attachment.this["interruption"]
}

moved {
  from = aws_iam_policy.controller["zonal-shift"]
  to   = module.controller_role.aws_iam_policy.this["zonal-shift"]
}

moved {
  from = aws_iam_role_policy_attachment.controller["zonal-shift"]
  to   = module.controller_role.aws_iam_role_policy_attachment.this["zonal-shift"]
}

moved {
  from = aws_iam_policy.controller["resource-discovery"]
  to   = module.controller_role.aws_iam_policy.this["resource-discovery"]
}

moved {
  from = aws_iam_role_policy_attachment.controller["resource-discovery"]
  to   = module.controller_role.aws_iam_role_policy_attachment.this["resource-discovery"]
}
