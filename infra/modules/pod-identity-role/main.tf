# An IAM role a service account assumes through EKS Pod Identity: the one trust policy every such role
# shares, its policies, and (unless an EKS add-on owns it) the association that binds role and account.

locals {
  # EKS Pod Identity sets these session tags on every AssumeRole it makes (EKS User Guide, "Create IAM
  # role with trust policy required by EKS Pod Identity"): eks-cluster-arn, eks-cluster-name,
  # kubernetes-namespace, kubernetes-service-account, kubernetes-pod-name, kubernetes-pod-uid. Requiring
  # three of them means no other cluster, namespace or service account can obtain this role, even
  # through a Pod Identity association someone creates for it by mistake.
  trusted_session_tags = {
    "aws:RequestTag/eks-cluster-arn"            = var.cluster_arn
    "aws:RequestTag/kubernetes-namespace"       = var.service_account.namespace
    "aws:RequestTag/kubernetes-service-account" = var.service_account.name
  }
}

resource "aws_iam_role" "this" {
  name        = var.name
  description = var.description

  # jsonencode rather than aws_iam_policy_document: the exact document is then known at plan time, so
  # `terraform test` (mocked provider) checks the conditions themselves.
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "EksPodIdentityForOneServiceAccount"
      Effect    = "Allow"
      Principal = { Service = "pods.eks.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
      Condition = { StringEquals = local.trusted_session_tags }
    }]
  })

  lifecycle {
    precondition {
      condition     = length(var.policies) + length(var.managed_policy_arns) > 0
      error_message = "The role ${var.name} needs at least one policy: give policies (documents to create) or managed_policy_arns."
    }
  }
}

resource "aws_iam_policy" "this" {
  for_each = var.policies

  name        = each.value.name
  description = each.value.description
  policy      = each.value.document
}

resource "aws_iam_role_policy_attachment" "this" {
  for_each = var.policies

  role       = aws_iam_role.this.name
  policy_arn = aws_iam_policy.this[each.key].arn
}

resource "aws_iam_role_policy_attachment" "managed" {
  for_each = var.managed_policy_arns

  role       = aws_iam_role.this.name
  policy_arn = each.value
}

resource "aws_eks_pod_identity_association" "this" {
  count = var.enable_association ? 1 : 0

  cluster_name    = var.cluster_name
  namespace       = var.service_account.namespace
  service_account = var.service_account.name
  role_arn        = aws_iam_role.this.arn
}
