variable "cluster_name" {
  description = "Name of the EKS cluster; prefixes every name this module creates."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.cluster_name))
    error_message = "cluster_name must be 2-32 lowercase letters, digits or hyphens, starting with a letter and not ending with a hyphen."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version of the control plane, for example \"1.35\"."
  type        = string

  validation {
    condition     = can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.35 (major.minor)."
  }
}

variable "vpc_id" {
  description = "VPC the cluster and its nodes live in."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for the control-plane ENIs and the ops node group (at least two zones)."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "EKS needs private subnets in at least two availability zones."
  }
}

variable "api_public_cidrs" {
  description = "CIDRs allowed to reach the public Kubernetes API endpoint. Never 0.0.0.0/0."
  type        = list(string)

  validation {
    condition = length(var.api_public_cidrs) > 0 && alltrue([
      for cidr in var.api_public_cidrs : can(cidrhost(cidr, 0)) && !endswith(cidr, "/0")
    ])
    error_message = "api_public_cidrs must be a non-empty list of valid IPv4 CIDRs, none of them /0 (0.0.0.0/0 opens the API to the internet)."
  }
}

variable "log_retention_days" {
  description = "Days CloudWatch keeps the control-plane logs."
  type        = number
  default     = 7

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180 or 365."
  }
}

variable "enable_access_entries" {
  description = "Whether the target serves EKS access entries (the cluster-creator admin entry is made by EKS itself)."
  type        = bool
  default     = true
}

variable "enable_addons" {
  description = "Whether the target serves EKS add-ons (vpc-cni, kube-proxy, eks-pod-identity-agent, coredns)."
  type        = bool
  default     = true
}

variable "ops_capacity_type" {
  description = "Capacity type of the ops node group that runs the controllers: ON_DEMAND or SPOT."
  type        = string
  default     = "ON_DEMAND"

  validation {
    condition     = contains(["ON_DEMAND", "SPOT"], var.ops_capacity_type)
    error_message = "ops_capacity_type must be ON_DEMAND or SPOT."
  }
}

variable "ops_instance_types" {
  description = "Instance types of the ops node group, x86_64 (the node group uses the AL2023 x86_64 AMI)."
  type        = list(string)

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
  description = "Minimum number of ops nodes."
  type        = number

  validation {
    condition     = var.ops_min_size >= 1
    error_message = "ops_min_size must be at least 1."
  }
}

variable "ops_desired_size" {
  description = "Desired number of ops nodes (between min and max)."
  type        = number
}

variable "ops_max_size" {
  description = "Maximum number of ops nodes."
  type        = number
}

variable "ops_root_volume_size" {
  description = "Root volume size of each ops node in GiB (gp3, encrypted)."
  type        = number
  default     = 30

  validation {
    condition     = var.ops_root_volume_size >= 20
    error_message = "ops_root_volume_size must be at least 20 GiB (the AL2023 EKS AMI needs it)."
  }
}

variable "instance_tags" {
  description = "Tags copied onto the ops instances, their volumes and network interfaces (provider default_tags do not reach them)."
  type        = map(string)
  default     = {}
}

variable "addon_versions" {
  description = "Version of each core EKS add-on (vpc-cni, kube-proxy, eks-pod-identity-agent, coredns), such as v1.22.4-eksbuild.3; the platform passes versions.yaml's eks_addon_* pins."
  type        = map(string)

  validation {
    condition     = toset(keys(var.addon_versions)) == toset(["vpc-cni", "kube-proxy", "eks-pod-identity-agent", "coredns"])
    error_message = "addon_versions must name exactly vpc-cni, kube-proxy, eks-pod-identity-agent and coredns."
  }

  validation {
    condition     = alltrue([for version in values(var.addon_versions) : can(regex("^v[0-9]+\\.[0-9]+\\.[0-9]+-eksbuild\\.[0-9]+$", version))])
    error_message = "addon_versions must be EKS add-on versions such as v1.22.4-eksbuild.3 (aws eks describe-addon-versions lists them)."
  }
}

variable "support_type" {
  description = "EKS upgrade policy: STANDARD (the cluster is upgraded automatically when its version leaves standard support) or EXTENDED (it stays, at the extended-support price)."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "EXTENDED"], var.support_type)
    error_message = "support_type must be STANDARD or EXTENDED."
  }
}

variable "enable_upgrade_policy" {
  description = "Whether the target keeps the cluster's upgrade policy (false leaves the block out)."
  type        = bool
  default     = true
}

variable "enable_pod_identity_associations" {
  description = "Whether the target serves EKS Pod Identity associations; with the add-ons it decides whether the VPC CNI gets its own role or the node roles carry its policy."
  type        = bool
  default     = true
}

variable "admin_principal_arns" {
  description = "IAM roles or users (ARNs) made cluster admins through access entries with AmazonEKSClusterAdminPolicy, in addition to the cluster's creator."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[\\w+=,.@/-]+$", arn))])
    error_message = "admin_principal_arns must hold IAM role or user ARNs such as arn:aws:iam::111122223333:role/platform-admins (not an sts assumed-role session ARN)."
  }

  validation {
    condition     = !anytrue([for arn in var.admin_principal_arns : can(regex(":role/aws-service-role/", arn))])
    error_message = "admin_principal_arns must not name a service-linked role (role/aws-service-role/...): EKS access entries do not support them."
  }

  validation {
    condition     = length(distinct(var.admin_principal_arns)) == length(var.admin_principal_arns)
    error_message = "admin_principal_arns must not name a principal twice (EKS allows one access entry per principal)."
  }
}
