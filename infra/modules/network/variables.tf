variable "name" {
  description = "Prefix for the Name tag of every network resource (the cluster name)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,31}$", var.name))
    error_message = "name must be 2-32 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "cluster_name" {
  description = "EKS cluster whose Karpenter discovers the private subnets (karpenter.sh/discovery tag)."
  type        = string
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC; /16 to /20. Private subnets get one quarter each, public subnets one sixty-fourth each."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    error_message = "vpc_cidr must be a valid IPv4 CIDR with a prefix length between /16 and /20, for example 10.0.0.0/16."
  }
}

variable "az_count" {
  description = "How many availability zones to spread subnets over."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 3
    error_message = "az_count must be 2 or 3 (EKS needs subnets in at least two zones; the CIDR plan has room for three)."
  }
}

variable "region" {
  description = "AWS region of the VPC (scopes the flow-log role's trust policy)."
  type        = string
}

variable "flow_logs" {
  description = "VPC flow logs into CloudWatch Logs, or null (default) for none. traffic_type: ALL, ACCEPT or REJECT; retention_days: a CloudWatch retention value."
  type = object({
    traffic_type   = optional(string, "ALL")
    retention_days = optional(number, 14)
  })
  default = null

  validation {
    condition     = var.flow_logs == null || contains(["ALL", "ACCEPT", "REJECT"], try(var.flow_logs.traffic_type, ""))
    error_message = "flow_logs.traffic_type must be ALL, ACCEPT or REJECT."
  }

  validation {
    condition     = var.flow_logs == null || contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365], try(var.flow_logs.retention_days, 0))
    error_message = "flow_logs.retention_days must be a CloudWatch retention value: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180 or 365."
  }
}
