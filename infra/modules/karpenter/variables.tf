variable "cluster_name" {
  description = "Name of the EKS cluster Karpenter provisions nodes for; prefixes every name here. Known before the cluster exists: what needs the cluster takes its name from cluster_arn."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 2-32 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "cluster_arn" {
  description = "ARN of the EKS cluster (scopes eks:DescribeCluster and the zonal-shift read)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:eks:[a-z0-9-]+:[0-9]{12}:cluster/", var.cluster_arn))
    error_message = "cluster_arn must be an EKS cluster ARN (arn:<partition>:eks:<region>:<account>:cluster/<name>)."
  }
}

variable "region" {
  description = "AWS region of the cluster (scopes the EC2, SSM and instance-profile statements)."
  type        = string
}

variable "service_account" {
  description = "Namespace and name of the Karpenter controller's Kubernetes service account."
  type = object({
    namespace = string
    name      = string
  })
}

variable "enable_access_entries" {
  description = "Whether the target serves EKS access entries (the EC2_LINUX entry that lets Karpenter nodes join)."
  type        = bool
  default     = true
}

variable "enable_pod_identity_associations" {
  description = "Whether the target serves EKS Pod Identity associations (how the controller gets its role)."
  type        = bool
  default     = true
}

variable "attach_cni_policy" {
  description = "Attach AmazonEKS_CNI_Policy to the node role: only needed when the VPC CNI does not get its own role through EKS Pod Identity."
  type        = bool
  default     = false
}
