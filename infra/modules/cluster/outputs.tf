output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = aws_eks_cluster.this.name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = aws_eks_cluster.this.arn
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the Kubernetes API."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "kubernetes_version" {
  description = "Kubernetes minor version of the control plane."
  value       = aws_eks_cluster.this.version
}

output "discovery_security_group_id" {
  description = "The one security group tagged karpenter.sh/discovery=<cluster> (control plane ENIs, ops and Karpenter nodes)."
  value       = aws_security_group.nodes.id
}

output "kms_key_arn" {
  description = "KMS key that encrypts Kubernetes secrets."
  value       = aws_kms_key.secrets.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the control-plane logs."
  value       = aws_cloudwatch_log_group.control_plane.name
}

output "ops_node_group_name" {
  description = "Name of the managed node group for controllers."
  value       = aws_eks_node_group.ops.node_group_name
}

output "ops_node_labels" {
  description = "Labels of the ops nodes; controllers select them."
  value       = local.ops_node_labels
}

output "ops_instance_types" {
  description = "Instance types of the ops node group."
  value       = aws_eks_node_group.ops.instance_types
}

output "ops_node_role_arn" {
  description = "IAM role of the ops nodes."
  value       = aws_iam_role.ops_node.arn
}
