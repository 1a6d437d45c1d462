provider "aws" {
  region = local.platform.region
}

# A short-lived token from the caller's AWS credentials: no aws CLI or kubeconfig needed.
data "aws_eks_cluster_auth" "this" {
  name = local.platform.cluster_name
}

provider "kubernetes" {
  host                   = local.platform.cluster_endpoint
  cluster_ca_certificate = base64decode(local.platform.cluster_certificate_authority_data)
  token                  = data.aws_eks_cluster_auth.this.token
}

provider "helm" {
  kubernetes = {
    host                   = local.platform.cluster_endpoint
    cluster_ca_certificate = base64decode(local.platform.cluster_certificate_authority_data)
    token                  = data.aws_eks_cluster_auth.this.token
  }
}
