output "role_name" {
  description = "Name of the IAM role."
  value       = aws_iam_role.this.name
}

output "role_arn" {
  description = "ARN of the IAM role."
  value       = aws_iam_role.this.arn
}

output "policy_arns" {
  description = "ARNs of the attached policies, by policy name."
  value       = { for policy in aws_iam_policy.this : policy.name => policy.arn }
}

output "association_service_account" {
  description = "namespace/name bound to the role, or null when no association was created."
  value       = one([for association in aws_eks_pod_identity_association.this : "${association.namespace}/${association.service_account}"])
}
