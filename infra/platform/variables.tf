variable "region" {
  description = "AWS region to build the platform in."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region code such as eu-west-1."
  }
}

variable "cluster_name" {
  description = "Name of the EKS cluster; every other name (roles, queue, node group, security group) derives from it."
  type        = string
  default     = "eks-platform"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 2-32 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen (derived IAM role names must stay within 64 characters)."
  }
}

variable "target" {
  description = "Where this runs: \"aws\" (a real account), \"emulator\" (a moto server) or \"local\" (a moto server plus a local Kubernetes control plane). infra/targets.yaml lists what each target cannot serve."
  type        = string
  default     = "aws"

  validation {
    condition     = contains(["aws", "emulator", "local"], var.target)
    error_message = "target must be one of the targets in infra/targets.yaml: aws, emulator or local."
  }
}

variable "api_public_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API endpoint, for example [\"203.0.113.7/32\"] for your own address. No default on purpose."
  type        = list(string)

  validation {
    condition     = length(var.api_public_cidrs) > 0
    error_message = "api_public_cidrs must list at least one CIDR, for example [\"203.0.113.7/32\"] (your public IP with /32)."
  }

  validation {
    condition     = alltrue([for cidr in var.api_public_cidrs : can(cidrnetmask(cidr))])
    error_message = "api_public_cidrs must hold valid IPv4 CIDRs such as 203.0.113.7/32."
  }

  validation {
    condition     = !anytrue([for cidr in var.api_public_cidrs : endswith(cidr, "/0")])
    error_message = "api_public_cidrs must not contain 0.0.0.0/0 or ::/0: that opens the Kubernetes API to the whole internet."
  }
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of the VPC (/16 to /20)."
  type        = string
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrnetmask(var.vpc_cidr)) && try(tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 20, false)
    error_message = "vpc_cidr must be a valid IPv4 CIDR between /16 and /20, for example 10.0.0.0/16."
  }
}

variable "ops_capacity_type" {
  description = "Capacity type of the ops node group that runs the controllers: ON_DEMAND (default, see docs/stack.md) or SPOT."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.ops_capacity_type)
    error_message = "ops_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "ops_instance_types" {
  description = "x86_64 instance types of the ops node group, most preferred first."
  type        = list(string)
  default     = ["m7i.large", "m6i.large"]

  validation {
    condition     = length(var.ops_instance_types) > 0 && alltrue([for type in var.ops_instance_types : can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", type))])
    error_message = "ops_instance_types must be a non-empty list of EC2 instance types such as m7i.large."
  }

  # The ops node group boots the x86_64 AL2023 AMI; an arm64 (Graviton) type would never join.
  validation {
    condition     = !anytrue([for type in var.ops_instance_types : can(regex("^[a-z]+[0-9]+[a-z]*g[a-z]*\\.", type))])
    error_message = "ops_instance_types must be x86_64 types (for example m7i.large): Graviton types such as m7g.large or t4g.medium do not boot the x86_64 AL2023 AMI of the ops node group."
  }
}

variable "ops_min_size" {
  description = "Minimum number of ops nodes. Karpenter runs two replicas that must sit on different nodes."
  type        = number
  default     = 2

  validation {
    condition     = var.ops_min_size >= 1
    error_message = "ops_min_size must be at least 1."
  }
}

variable "ops_desired_size" {
  description = "Desired number of ops nodes (between ops_min_size and ops_max_size)."
  type        = number
  default     = 2

  validation {
    condition     = var.ops_desired_size >= 1
    error_message = "ops_desired_size must be at least 1."
  }
}

variable "ops_max_size" {
  description = "Maximum number of ops nodes."
  type        = number
  default     = 3

  validation {
    condition     = var.ops_max_size >= 1
    error_message = "ops_max_size must be at least 1."
  }
}

variable "run_id" {
  description = "Run id tagged on everything (tag run-id), so teardown and the sweep find it; empty for no tag."
  type        = string
  default     = ""

  validation {
    condition     = var.run_id == "" || can(regex("^[a-z0-9][a-z0-9-]{2,30}$", var.run_id))
    error_message = "run_id must be empty or 3-31 lowercase letters, digits and hyphens."
  }
}

variable "expires_at" {
  description = "RFC 3339 UTC time after which the sweep may delete this run's resources (tag expires-at); empty for no tag."
  type        = string
  default     = ""

  validation {
    condition     = var.expires_at == "" || can(formatdate("YYYY", var.expires_at))
    error_message = "expires_at must be empty or an RFC 3339 timestamp such as 2026-01-31T18:00:00Z."
  }
}

variable "tags" {
  description = "Extra tags on every resource (merged under project, run-id and expires-at)."
  type        = map(string)
  default     = {}
}

variable "eks_support_type" {
  description = "EKS upgrade policy: STANDARD (default; when the Kubernetes version leaves standard support, EKS upgrades the cluster) or EXTENDED (the cluster may stay on the version for up to 12 more months, at $0.60 instead of $0.10 per hour). See docs/stack.md."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "EXTENDED"], var.eks_support_type)
    error_message = "eks_support_type must be STANDARD or EXTENDED."
  }
}

variable "admin_principal_arns" {
  description = "IAM roles or users (ARNs) that become cluster admins through EKS access entries, besides the identity that creates the cluster, for example [\"arn:aws:iam::111122223333:role/platform-admins\"]."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[\\w+=,.@/-]+$", arn))])
    error_message = "admin_principal_arns must hold IAM role or user ARNs such as arn:aws:iam::111122223333:role/platform-admins. An sts assumed-role ARN (what `aws sts get-caller-identity` prints for a role session) is not one: use the role's ARN."
  }

  validation {
    condition     = !anytrue([for arn in var.admin_principal_arns : can(regex(":role/aws-service-role/", arn))])
    error_message = "admin_principal_arns must not name a service-linked role (role/aws-service-role/...): EKS access entries do not support them."
  }

  validation {
    condition     = length(distinct(var.admin_principal_arns)) == length(var.admin_principal_arns)
    error_message = "admin_principal_arns must not name a principal twice."
  }
}

variable "vpc_flow_logs" {
  description = "VPC flow logs into CloudWatch Logs: null (default) for none, or {} for all traffic kept 14 days; traffic_type (ALL, ACCEPT, REJECT) and retention_days can be set. They cost CloudWatch ingestion per GB: see docs/stack.md."
  type = object({
    traffic_type   = optional(string, "ALL")
    retention_days = optional(number, 14)
  })
  default = null

  validation {
    condition     = var.vpc_flow_logs == null || contains(["ALL", "ACCEPT", "REJECT"], try(var.vpc_flow_logs.traffic_type, ""))
    error_message = "vpc_flow_logs.traffic_type must be ALL, ACCEPT or REJECT."
  }

  validation {
    condition     = var.vpc_flow_logs == null || contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365], try(var.vpc_flow_logs.retention_days, 0))
    error_message = "vpc_flow_logs.retention_days must be a CloudWatch retention value: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180 or 365."
  }
}

variable "stand_at_upgrade_from" {
  type        = bool
  default     = false
  description = "Stand the cluster (and its ops node group and kube-proxy) at versions.yaml upgrade_from_kubernetes, the minor its prepared upgrade starts from (harness check EKS049 proves that step); applying again with false is the upgrade: EKS moves the control plane, then the node group. false: versions.yaml kubernetes."
}
