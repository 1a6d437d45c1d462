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

provider "kubernetes" {
  host                   = local.platform.cluster_endpoint
  cluster_ca_certificate = base64decode(local.platform.cluster_certificate_authority_data)

  exec {
    api_version = local.kube_exec.api_version
    command     = local.kube_exec.command
    args        = local.kube_exec.args
  }
}

provider "helm" {
  kubernetes = {
    host                   = local.platform.cluster_endpoint
    cluster_ca_certificate = base64decode(local.platform.cluster_certificate_authority_data)
    exec                   = local.kube_exec
  }
}
