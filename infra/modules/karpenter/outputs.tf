output "node_role_name" {
  description = "IAM role of the nodes Karpenter launches (EC2NodeClass spec.role)."
  value       = aws_iam_role.node.name
}

output "node_role_arn" {
  description = "ARN of the Karpenter node role."
  value       = aws_iam_role.node.arn
}

output "controller_role_arn" {
  description = "IAM role the Karpenter controller assumes through EKS Pod Identity."
  value       = module.controller_role.role_arn
}

output "interruption_queue_name" {
  description = "SQS queue Karpenter reads interruption events from (chart settings.interruptionQueue)."
  value       = aws_sqs_queue.interruption.name
}

output "interruption_queue_url" {
  description = "URL of the interruption queue."
  value       = aws_sqs_queue.interruption.id
}

output "interruption_queue_arn" {
  description = "ARN of the interruption queue."
  value       = aws_sqs_queue.interruption.arn
}

output "node_role_policy_arns" {
  description = "Managed policies attached to the Karpenter node role."
  value       = sort([for attachment in aws_iam_role_policy_attachment.node : attachment.policy_arn])
}

output "controller_assume_role_policy" {
  description = "Trust policy of the controller role (JSON)."
  value       = module.controller_role.assume_role_policy
}
