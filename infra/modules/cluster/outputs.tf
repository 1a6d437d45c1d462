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

output "addon_versions" {
  description = "Version of each core EKS add-on the module installs (empty on a target without EKS add-ons)."
  value = merge(
    { for name, addon in aws_eks_addon.before_nodes : name => addon.addon_version },
    { for addon in aws_eks_addon.pod_identity_agent : addon.addon_name => addon.addon_version },
    { for addon in aws_eks_addon.coredns : addon.addon_name => addon.addon_version },
  )
}

output "support_type" {
  description = "EKS upgrade policy of the cluster (null on a target that does not keep one)."
  value       = one(aws_eks_cluster.this.upgrade_policy[*].support_type)
}

output "admin_principal_arns" {
  description = "Principals with a cluster-admin access entry besides the creator."
  value       = sort(keys(aws_eks_access_policy_association.admin))
}

output "cni_uses_pod_identity" {
  description = "Whether the VPC CNI gets its own role through EKS Pod Identity (otherwise the node roles carry AmazonEKS_CNI_Policy)."
  value       = local.cni_via_pod_identity
}

output "vpc_cni_role_arn" {
  description = "Role of the VPC CNI (kube-system/aws-node) through EKS Pod Identity, or null when the node roles carry its policy."
  value       = one(module.vpc_cni_role[*].role_arn)
}

output "vpc_cni_trusted_session_tags" {
  description = "Session tags (condition key -> value) the VPC CNI role's trust policy requires, or null."
  value       = one(module.vpc_cni_role[*].trusted_session_tags)
}

output "vpc_cni_pod_identity_service_accounts" {
  description = "Service accounts the vpc-cni add-on binds to a role through its own Pod Identity associations."
  value       = flatten([for addon in aws_eks_addon.before_nodes : [for association in addon.pod_identity_association : association.service_account]])
}

output "ops_node_role_policy_arns" {
  description = "Managed policies attached to the ops node role."
  value       = sort([for attachment in aws_iam_role_policy_attachment.ops_node : attachment.policy_arn])
}
