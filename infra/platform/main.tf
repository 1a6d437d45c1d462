locals {
  versions = yamldecode(file("${path.module}/../../versions.yaml"))
  # What the chosen target cannot serve (capability -> reason): the only target switch.
  unsupported = yamldecode(file("${path.module}/../targets.yaml")).targets[var.target].unsupported

  tags = merge(
    var.tags,
    { project = "eks-platform" },
    var.run_id == "" ? {} : { "run-id" = var.run_id },
    var.expires_at == "" ? {} : { "expires-at" = var.expires_at },
  )

  # Defined once here; infra/addons reads them from the outputs for the Helm charts.
  karpenter_service_account     = { namespace = "kube-system", name = "karpenter" }
  lb_controller_service_account = { namespace = "kube-system", name = "aws-load-balancer-controller" }
}

module "network" {
  source = "../modules/network"

  name         = var.cluster_name
  cluster_name = var.cluster_name
  vpc_cidr     = var.vpc_cidr
}

module "cluster" {
  source = "../modules/cluster"

  cluster_name       = var.cluster_name
  kubernetes_version = local.versions.kubernetes
  vpc_id             = module.network.vpc_id
  private_subnet_ids = module.network.private_subnet_ids
  api_public_cidrs   = var.api_public_cidrs

  enable_access_entries = !contains(keys(local.unsupported), "eks_access_entries")
  enable_addons         = !contains(keys(local.unsupported), "eks_addons")

  ops_capacity_type  = var.ops_capacity_type
  ops_instance_types = var.ops_instance_types
  ops_min_size       = var.ops_min_size
  ops_desired_size   = var.ops_desired_size
  ops_max_size       = var.ops_max_size
  instance_tags      = local.tags
}

module "karpenter" {
  source = "../modules/karpenter"

  cluster_name    = module.cluster.cluster_name
  cluster_arn     = module.cluster.cluster_arn
  region          = var.region
  service_account = local.karpenter_service_account

  enable_access_entries            = !contains(keys(local.unsupported), "eks_access_entries")
  enable_pod_identity_associations = !contains(keys(local.unsupported), "eks_pod_identity_associations")
}

module "lb_controller" {
  source = "../modules/lb-controller"

  cluster_name    = module.cluster.cluster_name
  service_account = local.lb_controller_service_account

  enable_pod_identity_associations = !contains(keys(local.unsupported), "eks_pod_identity_associations")
}
