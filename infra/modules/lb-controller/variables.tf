variable "cluster_name" {
  description = "Name of the EKS cluster; prefixes the role name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 2-32 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "cluster_arn" {
  description = "ARN of the EKS cluster (the controller role's trust policy admits only this cluster's pods)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:eks:[a-z0-9-]+:[0-9]{12}:cluster/", var.cluster_arn))
    error_message = "cluster_arn must be an EKS cluster ARN (arn:<partition>:eks:<region>:<account>:cluster/<name>)."
  }
}

variable "service_account" {
  description = "Namespace and name of the AWS Load Balancer Controller's Kubernetes service account."
  type = object({
    namespace = string
    name      = string
  })
}

variable "enable_pod_identity_associations" {
  description = "Whether the target serves EKS Pod Identity associations (how the controller gets its role)."
  type        = bool
  default     = true
}
