output "region" {
  description = "AWS region of the platform."
  value       = var.region
}

output "cluster_name" {
  description = "Name of the EKS cluster."
  value       = module.cluster.cluster_name
}

output "cluster_arn" {
  description = "ARN of the EKS cluster."
  value       = module.cluster.cluster_arn
}

output "cluster_endpoint" {
  description = "HTTPS endpoint of the Kubernetes API."
  value       = module.cluster.cluster_endpoint
}

output "cluster_certificate_authority_data" {
  description = "Base64 CA bundle of the Kubernetes API."
  value       = module.cluster.cluster_certificate_authority_data
}

output "kubernetes_version" {
  description = "Kubernetes minor version of the control plane (from versions.yaml)."
  value       = module.cluster.kubernetes_version
}

output "vpc_id" {
  description = "ID of the VPC."
  value       = module.network.vpc_id
}

output "public_subnet_ids" {
  description = "Public subnets (tag kubernetes.io/role/elb=1)."
  value       = module.network.public_subnet_ids
}

output "private_subnet_ids" {
  description = "Private subnets (tags kubernetes.io/role/internal-elb=1, karpenter.sh/discovery)."
  value       = module.network.private_subnet_ids
}

output "discovery_security_group_id" {
  description = "The one security group tagged karpenter.sh/discovery=<cluster>."
  value       = module.cluster.discovery_security_group_id
}

output "ops_node_group_name" {
  description = "Managed node group that runs the controllers."
  value       = module.cluster.ops_node_group_name
}

output "ops_node_labels" {
  description = "Labels of the ops nodes (controllers select them)."
  value       = module.cluster.ops_node_labels
}

output "ops_instance_types" {
  description = "Instance types of the ops node group."
  value       = module.cluster.ops_instance_types
}

output "karpenter_node_role_name" {
  description = "IAM role of Karpenter nodes (EC2NodeClass spec.role)."
  value       = module.karpenter.node_role_name
}

output "karpenter_node_role_arn" {
  description = "ARN of the Karpenter node role."
  value       = module.karpenter.node_role_arn
}

output "karpenter_controller_role_arn" {
  description = "IAM role of the Karpenter controller (EKS Pod Identity)."
  value       = module.karpenter.controller_role_arn
}

output "karpenter_interruption_queue_name" {
  description = "SQS interruption queue (Karpenter chart settings.interruptionQueue)."
  value       = module.karpenter.interruption_queue_name
}

output "karpenter_interruption_queue_url" {
  description = "URL of the interruption queue."
  value       = module.karpenter.interruption_queue_url
}

output "karpenter_service_account" {
  description = "Namespace and name of the Karpenter controller's service account."
  value       = local.karpenter_service_account
}

output "lb_controller_role_arn" {
  description = "IAM role of the AWS Load Balancer Controller (EKS Pod Identity)."
  value       = module.lb_controller.role_arn
}

output "lb_controller_service_account" {
  description = "Namespace and name of the AWS Load Balancer Controller's service account."
  value       = local.lb_controller_service_account
}

output "unsupported_on_target" {
  description = "What the chosen target cannot serve (capability -> reason), from infra/targets.yaml."
  value       = local.unsupported
}

output "tags" {
  description = "Tags every resource of this run carries (provider default_tags and instance tags)."
  value       = local.tags
}

output "eks_addon_versions" {
  description = "Version of each core EKS add-on installed (versions.yaml eks_addon_*); empty on a target without EKS add-ons."
  value       = module.cluster.addon_versions
}

output "eks_support_type" {
  description = "EKS upgrade policy of the cluster (STANDARD or EXTENDED); null on a target that does not keep one."
  value       = module.cluster.support_type
}

output "admin_principal_arns" {
  description = "Principals with a cluster-admin access entry besides the cluster's creator."
  value       = module.cluster.admin_principal_arns
}

output "vpc_cni_role_arn" {
  description = "IAM role of the VPC CNI (kube-system/aws-node) through EKS Pod Identity; null where the node roles carry AmazonEKS_CNI_Policy instead."
  value       = module.cluster.vpc_cni_role_arn
}

output "default_security_group_id" {
  description = "The VPC's default security group, kept without rules."
  value       = module.network.default_security_group_id
}

output "vpc_flow_log_group_name" {
  description = "CloudWatch log group of the VPC flow logs; null when vpc_flow_logs is off."
  value       = module.network.flow_log_group_name
}
