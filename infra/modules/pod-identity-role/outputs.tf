output "role_name" {
  description = "Name of the IAM role."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the IAM role."
  value       = aws_iam_role.this.arn
}

output "assume_role_policy" {
  description = "The role's trust policy (JSON): pods.eks.amazonaws.com, limited to one cluster, namespace and service account."
  value       = aws_iam_role.this.assume_role_policy
}

output "trusted_session_tags" {
  description = "The session tags (condition key -> value) a session must carry to assume the role."
  value       = local.trusted_session_tags
}

output "policy_arns" {
  description = "ARNs of the policies created here, by policy name."
  value       = { for policy in aws_iam_policy.this : policy.name => policy.arn }
}

output "managed_policy_arns" {
  description = "ARNs of the existing policies attached."
  value       = sort(tolist(var.managed_policy_arns))
}

output "association_service_account" {
  description = "namespace/name bound to the role here, or null when no association was created here."
  value       = one([for association in aws_eks_pod_identity_association.this : "${association.namespace}/${association.service_account}"])
}
