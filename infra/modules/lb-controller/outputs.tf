output "role_arn" {
  description = "IAM role the AWS Load Balancer Controller assumes through EKS Pod Identity."
  value       = aws_iam_role.controller.arn
}

output "policy_arn" {
  description = "ARN of the controller's IAM policy (upstream v3.5.0 iam_policy.json)."
  value       = aws_iam_policy.controller.arn
}
