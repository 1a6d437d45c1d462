variable "name" {
  description = "Name of the IAM role (IAM allows 64 characters)."
  type        = string

  validation {
    condition     = can(regex("^[\\w+=,.@-]{1,64}$", var.name))
    error_message = "name must be 1-64 characters of letters, digits and +=,.@_-."
  }
}

variable "description" {
  description = "What assumes the role, shown in the IAM console."
  type        = string
}

variable "cluster_name" {
  description = "EKS cluster whose Pod Identity agent hands out the role."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of that cluster: the trust policy admits only sessions tagged with it (eks-cluster-arn)."
  type        = string

  validation {
    condition     = can(regex("^arn:[a-z-]+:eks:[a-z0-9-]+:[0-9]{12}:cluster/[A-Za-z0-9][A-Za-z0-9_-]*$", var.cluster_arn))
    error_message = "cluster_arn must be an EKS cluster ARN (arn:<partition>:eks:<region>:<account>:cluster/<name>)."
  }
}

variable "service_account" {
  description = "Namespace and name of the Kubernetes service account that gets the role (the trust policy admits only it)."
  type = object({
    namespace = string
    name      = string
  })

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.service_account.namespace)) && can(regex("^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", var.service_account.name))
    error_message = "service_account needs a Kubernetes namespace and service account name (lowercase letters, digits, '-' and, in the name, '.'); wildcards are not allowed."
  }
}

variable "policies" {
  description = "Customer-managed policies to create and attach, by a key that stays stable when names change."
  type = map(object({
    name        = string
    description = string
    document    = string
  }))
  default = {}

  validation {
    condition     = alltrue([for policy in values(var.policies) : can(regex("^[\\w+=,.@-]{1,128}$", policy.name))])
    error_message = "every policy needs a name of 1-128 characters of letters, digits and +=,.@_-."
  }
}

variable "managed_policy_arns" {
  description = "Existing (for example AWS managed) policies to attach, by ARN."
  type        = set(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.managed_policy_arns : can(regex("^arn:[a-z-]+:iam::([0-9]{12}|aws):policy/", arn))])
    error_message = "managed_policy_arns must be IAM policy ARNs such as arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy."
  }
}

variable "enable_association" {
  description = "Whether to create the Pod Identity association here (false on a target without that API, or when an EKS add-on creates and owns it)."
  type        = bool
  default     = true
}
