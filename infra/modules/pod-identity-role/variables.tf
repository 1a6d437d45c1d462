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

variable "service_account" {
  description = "Namespace and name of the Kubernetes service account that gets the role."
  type = object({
    namespace = string
    name      = string
  })
}

variable "policies" {
  description = "Customer-managed policies to create and attach, by a key that stays stable when names change."
  type = map(object({
    name        = string
    description = string
    document    = string
  }))

  validation {
    condition     = length(var.policies) > 0 && alltrue([for policy in values(var.policies) : can(regex("^[\\w+=,.@-]{1,128}$", policy.name))])
    error_message = "policies needs at least one policy, each named with 1-128 characters of letters, digits and +=,.@_-."
  }
}

variable "enable_association" {
  description = "Whether to create the Pod Identity association (false on a target without that API)."
  type        = bool
  default     = true
}
