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

  # Each capability of infra/targets.yaml, true where the chosen target serves it.
  supports = {
    for capability in ["eks_access_entries", "eks_pod_identity_associations", "eks_addons", "eks_upgrade_policy"] :
    capability => !contains(keys(local.unsupported), capability)
  }

  # The cluster's minor: versions.yaml kubernetes, or where its prepared upgrade starts (upgrade_from_*), with the
  # kube-proxy of that minor.
  kubernetes_version = var.stand_at_upgrade_from ? local.versions.upgrade_from_kubernetes : local.versions.kubernetes
  kube_proxy         = var.stand_at_upgrade_from ? local.versions.upgrade_from_eks_addon_kube_proxy : local.versions.eks_addon_kube_proxy

  # Core EKS add-on versions (versions.yaml, eks_addon_*), by add-on name.
  addon_versions = {
    "vpc-cni"                = local.versions.eks_addon_vpc_cni
    "kube-proxy"             = local.kube_proxy
    "eks-pod-identity-agent" = local.versions.eks_addon_eks_pod_identity_agent
    "coredns"                = local.versions.eks_addon_coredns
  }

  # Defined once here; infra/addons reads them from the outputs for the Helm charts.
  karpenter_service_account     = { namespace = "kube-system", name = "karpenter" }
  lb_controller_service_account = { namespace = "kube-system", name = "aws-load-balancer-controller" }
}

module "network" {
  source = "../modules/network"

  name         = var.cluster_name
  cluster_name = var.cluster_name
  vpc_cidr     = var.vpc_cidr
  region       = var.region
  flow_logs    = var.vpc_flow_logs
}

module "cluster" {
  source = "../modules/cluster"

  cluster_name       = var.cluster_name
  kubernetes_version = local.kubernetes_version
  vpc_id             = module.network.vpc_id
  private_subnet_ids = module.network.private_subnet_ids
  api_public_cidrs   = var.api_public_cidrs

  addon_versions       = local.addon_versions
  support_type         = var.eks_support_type
  admin_principal_arns = var.admin_principal_arns

  enable_access_entries            = local.supports.eks_access_entries
  enable_addons                    = local.supports.eks_addons
  enable_pod_identity_associations = local.supports.eks_pod_identity_associations
  enable_upgrade_policy            = local.supports.eks_upgrade_policy

  ops_capacity_type  = var.ops_capacity_type
  ops_instance_types = var.ops_instance_types
  ops_min_size       = var.ops_min_size
  ops_desired_size   = var.ops_desired_size
  ops_max_size       = var.ops_max_size
  instance_tags      = local.tags
}

module "karpenter" {
  source = "../modules/karpenter"

  # The plain name, not module.cluster's output: the queue and roles need not wait for the cluster (the module
  # makes what needs the cluster wait for it through cluster_arn).
  cluster_name    = var.cluster_name
  cluster_arn     = module.cluster.cluster_arn
  region          = var.region
  service_account = local.karpenter_service_account

  # The node role carries the CNI policy only where the VPC CNI cannot have its own role.
  attach_cni_policy = !module.cluster.cni_uses_pod_identity

  enable_access_entries            = local.supports.eks_access_entries
  enable_pod_identity_associations = local.supports.eks_pod_identity_associations
}

module "lb_controller" {
  source = "../modules/lb-controller"

  cluster_name    = module.cluster.cluster_name
  cluster_arn     = module.cluster.cluster_arn
  service_account = local.lb_controller_service_account

  enable_pod_identity_associations = local.supports.eks_pod_identity_associations
}
