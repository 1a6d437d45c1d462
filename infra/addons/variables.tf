variable "platform_state_path" {
  description = "Path to the local Terraform state of infra/platform (relative paths start in infra/addons); unused with platform_state_s3. Checked to exist before it is read."
  type        = string
  default     = "../platform/terraform.tfstate"
}

variable "platform_state_s3" {
  description = "Where infra/platform keeps its state when it uses the S3 backend (examples/backend): the same bucket, key and region as its backend configuration. null (default): read platform_state_path."
  type = object({
    bucket = string
    key    = string
    region = string
  })
  default = null

  validation {
    condition     = var.platform_state_s3 == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.platform_state_s3.bucket))
    error_message = "platform_state_s3.bucket must be an S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)."
  }

  validation {
    condition     = var.platform_state_s3 == null || can(regex("^[^/].*[^/]$", var.platform_state_s3.key))
    error_message = "platform_state_s3.key must be the object key of the platform state, such as eks-platform/platform.tfstate (no leading or trailing /)."
  }

  validation {
    condition     = var.platform_state_s3 == null || can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.platform_state_s3.region))
    error_message = "platform_state_s3.region must be an AWS region code such as eu-west-1."
  }
}

variable "gitops_repo_url" {
  description = "Git repository Argo CD syncs (this repo or your fork), for example https://github.com/<you>/eks-platform.git. No default on purpose."
  type        = string

  validation {
    condition     = can(regex("^https://[^/\\s]+/\\S+$", var.gitops_repo_url)) || can(regex("^(ssh://)?git@[^:/\\s]+[:/]\\S+$", var.gitops_repo_url))
    error_message = "gitops_repo_url must be an https:// or git@/ssh:// Git URL, for example https://github.com/<you>/eks-platform.git."
  }
}

variable "gitops_revision" {
  description = "Branch, tag or commit of gitops_repo_url that Argo CD follows."
  type        = string
  default     = "main"

  validation {
    condition     = length(trimspace(var.gitops_revision)) > 0
    error_message = "gitops_revision must not be empty (use a branch, tag or commit such as main)."
  }
}

variable "run_id" {
  description = "Run id the GitOps manifests tag their AWS resources with (cluster-secret annotation eks-platform/run-id)."
  type        = string
  default     = ""

  validation {
    condition     = var.run_id == "" || can(regex("^[a-z0-9][a-z0-9-]{2,30}$", var.run_id))
    error_message = "run_id must be empty or 3-31 lowercase letters, digits and hyphens."
  }
}

variable "expires_at" {
  description = "RFC 3339 UTC expiry the GitOps manifests tag their AWS resources with (annotation eks-platform/expires-at)."
  type        = string
  default     = ""

  validation {
    condition     = var.expires_at == "" || can(formatdate("YYYY", var.expires_at))
    error_message = "expires_at must be empty or an RFC 3339 timestamp such as 2026-01-31T18:00:00Z."
  }
}

variable "argocd_exposure" {
  description = "How people reach the Argo CD UI: port-forward (default, nothing exposed), internal-alb (HTTPS inside the VPC) or internet-facing-https (HTTPS from argocd_allowed_cidrs only)."
  type        = string
  default     = "port-forward"

  validation {
    condition     = contains(["port-forward", "internal-alb", "internet-facing-https"], var.argocd_exposure)
    error_message = "argocd_exposure must be port-forward, internal-alb or internet-facing-https."
  }
}

variable "argocd_hostname" {
  description = "DNS name of the Argo CD UI behind an ALB (must match argocd_certificate_arn); unused with port-forward."
  type        = string
  default     = ""

  validation {
    condition     = var.argocd_hostname == "" || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.argocd_hostname))
    error_message = "argocd_hostname must be empty or a DNS name such as argocd.example.com."
  }
}

variable "argocd_certificate_arn" {
  description = "ACM certificate for argocd_hostname; required by both ALB exposures (the ALB only listens on HTTPS, HTTP redirects)."
  type        = string
  default     = ""

  validation {
    condition     = var.argocd_certificate_arn == "" || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.argocd_certificate_arn))
    error_message = "argocd_certificate_arn must be empty or an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)."
  }
}

variable "argocd_allowed_cidrs" {
  description = "Source CIDRs the Argo CD ALB admits; required for internet-facing-https, optional for internal-alb. Never 0.0.0.0/0."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.argocd_allowed_cidrs : can(cidrnetmask(cidr))])
    error_message = "argocd_allowed_cidrs must hold valid IPv4 CIDRs such as 203.0.113.7/32."
  }

  validation {
    condition     = !anytrue([for cidr in var.argocd_allowed_cidrs : endswith(cidr, "/0")])
    error_message = "argocd_allowed_cidrs must not contain 0.0.0.0/0 or ::/0: list the addresses that may reach Argo CD."
  }
}

variable "kube_token_command" {
  description = "Command (with its leading arguments) that prints an EKS ExecCredential for the Kubernetes and Helm providers; `--cluster-name <cluster> --region <region>` is appended. The AWS CLI by default; `[\"harness\", \"eks-token\"]` takes the same arguments."
  type        = list(string)
  default     = ["aws", "eks", "get-token"]

  validation {
    condition     = length(var.kube_token_command) > 0 && alltrue([for part in var.kube_token_command : length(trimspace(part)) > 0])
    error_message = "kube_token_command must name a command, for example [\"aws\", \"eks\", \"get-token\"] or [\"harness\", \"eks-token\"]."
  }
}

variable "kubeconfig_path" {
  description = "A kubeconfig the Kubernetes and Helm providers use instead of the EKS endpoint and kube_token_command (the harness's local target: its own API server). Empty (default): the cluster of the platform state, with an EKS token."
  type        = string
  default     = ""

  validation {
    condition     = var.kubeconfig_path == "" || fileexists(var.kubeconfig_path)
    error_message = "kubeconfig_path: no file there; leave it empty to reach the EKS cluster of the platform state."
  }
}

variable "chart_folders" {
  description = "Chart name -> a local folder holding that chart at the version versions.yaml pins, for a machine without the chart repositories (the harness passes the pinned chart folders on local). A chart not named here comes from its repository."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for folder in values(var.chart_folders) : fileexists("${folder}/Chart.yaml")])
    error_message = "chart_folders: every folder must hold a chart (its Chart.yaml), such as <reference>/charts/argo-cd-<version>."
  }
}

variable "argocd_crds_folder" {
  description = "A folder holding Argo CD's CRDs (<kind>-crd.yaml) as the release tag of versions.yaml argo_cd has them under manifests/crds, for a machine that cannot download them. Empty (default): downloaded from that tag."
  type        = string
  default     = ""

  validation {
    condition     = var.argocd_crds_folder == "" || fileexists("${var.argocd_crds_folder}/application-crd.yaml")
    error_message = "argocd_crds_folder must hold application-crd.yaml and its siblings, as argo-cd's manifests/crds does."
  }
}

variable "gitops_repo_certificates" {
  description = "Git server host -> the PEM certificate (or CA) Argo CD trusts for it: needed when gitops_repo_url is a private Git server whose certificate no public CA signed (the harness's local Git endpoint). Argo CD's configs.tls.certificates."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for pem in values(var.gitops_repo_certificates) : startswith(trimspace(pem), "-----BEGIN CERTIFICATE-----")])
    error_message = "gitops_repo_certificates values must be PEM certificates (-----BEGIN CERTIFICATE----- ...)."
  }
}
