provider "aws" {
  region = local.platform.region
}

# A new EKS token for every Terraform operation, from the caller's AWS credentials, so a long apply or destroy
# never outlives one (EKS accepts a token for 15 minutes). `aws eks get-token` by default; the harness passes
# its own `harness eks-token` (same arguments) where the AWS CLI is not installed.
locals {
  kube_exec = {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = var.kube_token_command[0]
    args = concat(
      slice(var.kube_token_command, 1, length(var.kube_token_command)),
      ["--cluster-name", local.platform.cluster_name, "--region", local.platform.region],
    )
  }
}

# With var.kubeconfig_path (the local target's API server) the providers read that file instead.
locals {
  eks_cluster = var.kubeconfig_path == ""
}

provider "kubernetes" {
  config_path            = local.eks_cluster ? null : var.kubeconfig_path
  host                   = local.eks_cluster ? local.platform.cluster_endpoint : null
  cluster_ca_certificate = local.eks_cluster ? base64decode(local.platform.cluster_certificate_authority_data) : null

  dynamic "exec" {
    for_each = local.eks_cluster ? [local.kube_exec] : []
    content {
      api_version = exec.value.api_version
      command     = exec.value.command
      args        = exec.value.args
    }
  }
}

provider "helm" {
  kubernetes = {
    config_path            = local.eks_cluster ? null : var.kubeconfig_path
    host                   = local.eks_cluster ? local.platform.cluster_endpoint : null
    cluster_ca_certificate = local.eks_cluster ? base64decode(local.platform.cluster_certificate_authority_data) : null
    exec                   = local.eks_cluster ? local.kube_exec : null
  }
}
