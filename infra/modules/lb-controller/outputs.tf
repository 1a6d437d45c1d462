output "role_arn" {
  description = "IAM role the AWS Load Balancer Controller assumes through EKS Pod Identity."
  value       = module.controller_role.role_arn
}

output "policy_arn" {
  description = "ARN of the controller's IAM policy (upstream v3.5.0 iam_policy.json)."
  value       = one(values(module.controller_role.policy_arns))
}
