locals {
  versions = yamldecode(file("${path.module}/../../versions.yaml"))

  # Every controller runs on the ops node group and tolerates its taint; workloads never do.
  ops_toleration = {
    key      = "CriticalAddonsOnly"
    operator = "Exists"
    effect   = "NoSchedule"
  }

  argocd_namespace   = "argocd"
  argocd_crds        = toset(["application", "applicationset", "appproject"])
  in_cluster_server  = "https://kubernetes.default.svc"
  argocd_behind_alb  = var.argocd_exposure != "port-forward"
  argocd_alb_scheme  = var.argocd_exposure == "internet-facing-https" ? "internet-facing" : "internal"
  argocd_alb_tags    = join(",", [for key, value in local.platform.tags : "${key}=${value}"])
  argocd_ui_hostname = local.argocd_behind_alb ? var.argocd_hostname : "localhost:8080"

  # Each chart's repository; a chart var.chart_folders names comes from that folder instead (no repository).
  chart_repositories = {
    "aws-load-balancer-controller" = "https://aws.github.io/eks-charts"
    "karpenter-crd"                = "oci://public.ecr.aws/karpenter"
    "karpenter"                    = "oci://public.ecr.aws/karpenter"
    "argo-cd"                      = "https://argoproj.github.io/argo-helm"
  }
  charts = {
    for chart, repository in local.chart_repositories : chart => {
      repository = contains(keys(var.chart_folders), chart) ? null : repository
      chart      = lookup(var.chart_folders, chart, chart)
    }
  }

  # Argo CD's CRDs: downloaded from the release tag, or read from var.argocd_crds_folder.
  argocd_crd_documents = var.argocd_crds_folder == "" ? {
    for kind, crd in data.http.argocd_crd : kind => crd.response_body
    } : {
    for kind in local.argocd_crds : kind => file("${var.argocd_crds_folder}/${kind}-crd.yaml")
  }

  # HTTPS only: port 80 exists just to redirect; the ALB talks HTTPS to argocd-server too.
  argocd_alb_annotations = merge(
    {
      "alb.ingress.kubernetes.io/scheme"               = local.argocd_alb_scheme
      "alb.ingress.kubernetes.io/target-type"          = "ip"
      "alb.ingress.kubernetes.io/listen-ports"         = jsonencode([{ HTTP = 80 }, { HTTPS = 443 }])
      "alb.ingress.kubernetes.io/ssl-redirect"         = "443"
      "alb.ingress.kubernetes.io/certificate-arn"      = var.argocd_certificate_arn
      "alb.ingress.kubernetes.io/ssl-policy"           = "ELBSecurityPolicy-TLS13-1-2-2021-06"
      "alb.ingress.kubernetes.io/backend-protocol"     = "HTTPS"
      "alb.ingress.kubernetes.io/healthcheck-protocol" = "HTTPS"
      "alb.ingress.kubernetes.io/healthcheck-path"     = "/healthz"
      "alb.ingress.kubernetes.io/tags"                 = local.argocd_alb_tags
    },
    length(var.argocd_allowed_cidrs) == 0 ? {} : {
      "alb.ingress.kubernetes.io/inbound-cidrs" = join(",", var.argocd_allowed_cidrs)
    },
  )
}

resource "helm_release" "aws_load_balancer_controller" {
  name       = "aws-load-balancer-controller"
  repository = local.charts["aws-load-balancer-controller"].repository
  chart      = local.charts["aws-load-balancer-controller"].chart
  version    = local.versions.aws_load_balancer_controller
  namespace  = local.platform.lb_controller_service_account.namespace

  # Region and VPC given explicitly: with IMDS hop limit 1 the pods cannot look them up.
  values = [yamlencode({
    clusterName  = local.platform.cluster_name
    region       = local.platform.region
    vpcId        = local.platform.vpc_id
    replicaCount = 2
    serviceAccount = {
      create = true
      name   = local.platform.lb_controller_service_account.name
    }
    nodeSelector = { "workload-type" = local.platform.ops_node_labels["workload-type"] }
    tolerations  = [local.ops_toleration]
    defaultTags  = local.platform.tags
  })]

  lifecycle {
    precondition {
      condition     = length(setsubtract(keys(var.chart_folders), keys(local.chart_repositories))) == 0
      error_message = "chart_folders names ${join(", ", setsubtract(keys(var.chart_folders), keys(local.chart_repositories)))}: infra/addons installs only ${join(", ", keys(local.chart_repositories))}."
    }

    precondition {
      condition     = !contains(keys(local.platform.unsupported_on_target), "kubernetes")
      error_message = "The platform state comes from a target without a Kubernetes API (${try(local.platform.unsupported_on_target.kubernetes, "")}); infra/addons needs infra/platform applied with target=aws."
    }
  }
}

# Karpenter's CRDs as a release of their own. Helm installs a chart's crds/ folder on the first install
# only and never upgrades it, so CRDs shipped there would stay at their first version while the
# controller moves on. The karpenter-crd chart carries them as templates: every version change of this
# release upgrades them, in step with the controller (same version, versions.yaml karpenter).
resource "helm_release" "karpenter_crd" {
  name       = "karpenter-crd"
  repository = local.charts["karpenter-crd"].repository
  chart      = local.charts["karpenter-crd"].chart
  version    = local.versions.karpenter
  namespace  = local.platform.karpenter_service_account.namespace

  # After the LB controller, whose release checks first that there is a Kubernetes API at all.
  depends_on = [helm_release.aws_load_balancer_controller]
}

resource "helm_release" "karpenter" {
  name       = "karpenter"
  repository = local.charts["karpenter"].repository
  chart      = local.charts["karpenter"].chart
  version    = local.versions.karpenter
  namespace  = local.platform.karpenter_service_account.namespace
  # The CRDs belong to the karpenter-crd release above; the copies in this chart's crds/ stay out.
  skip_crds = true

  values = [yamlencode({
    replicas = 2
    settings = {
      clusterName       = local.platform.cluster_name
      interruptionQueue = local.platform.karpenter_interruption_queue_name
    }
    serviceAccount = {
      name = local.platform.karpenter_service_account.name
    }
    nodeSelector = { "karpenter.sh/controller" = local.platform.ops_node_labels["karpenter.sh/controller"] }
    tolerations  = [local.ops_toleration]
    controller = {
      # Karpenter otherwise asks instance metadata for the region, which hop limit 1 blocks.
      env = [{ name = "AWS_REGION", value = local.platform.region }]
      resources = {
        requests = { cpu = "500m", memory = "1Gi" }
        limits   = { memory = "1Gi" }
      }
    }
  })]

  # The controller's webhooks and Service must not race the LB controller's Service webhook; its
  # CRDs must exist before it starts watching them.
  depends_on = [helm_release.aws_load_balancer_controller, helm_release.karpenter_crd]
}

# Argo CD's CRDs at the version that runs (versions.yaml argo_cd), from that release's tag: the chart
# (argo_cd_chart) would install those of the version it ships, which lack fields the newer controllers read
# and write (the API server prunes unknown fields silently). On `local` the same files come from the pinned
# module the toolchain extracted (infra/targets.yaml local_target.upstream_files), as var.argocd_crds_folder.
data "http" "argocd_crd" {
  for_each = var.argocd_crds_folder == "" ? local.argocd_crds : toset([])
  url      = "https://raw.githubusercontent.com/argoproj/argo-cd/v${local.versions.argo_cd}/manifests/crds/${each.key}-crd.yaml"

  lifecycle {
    postcondition {
      condition     = self.status_code == 200
      error_message = "Argo CD v${local.versions.argo_cd} has no CRD ${each.key} (HTTP ${self.status_code}): check versions.yaml argo_cd."
    }
  }
}

resource "kubernetes_manifest" "argocd_crd" {
  for_each = local.argocd_crds
  manifest = yamldecode(local.argocd_crd_documents[each.key])

  depends_on = [helm_release.aws_load_balancer_controller]
}

resource "helm_release" "argocd" {
  name             = "argocd"
  repository       = local.charts["argo-cd"].repository
  chart            = local.charts["argo-cd"].chart
  version          = local.versions.argo_cd_chart
  namespace        = local.argocd_namespace
  create_namespace = true

  values = [yamlencode({
    # The CRDs are kubernetes_manifest.argocd_crd's, at the version that runs.
    crds = {
      install = false
    }
    global = {
      # The version the local target builds and proves (binary = image; gate EKS046).
      image        = { tag = "v${local.versions.argo_cd}" }
      domain       = local.argocd_ui_hostname
      nodeSelector = { "workload-type" = local.platform.ops_node_labels["workload-type"] }
      tolerations  = [local.ops_toleration]
    }
    # No SSO is configured, so Dex would only be an idle pod.
    dex = {
      enabled = false
    }
    # Argo CD 3 keeps per-resource health only in its cache; persisting it into Application
    # status.resources lets the e2e name each unhealthy resource and its message.
    configs = {
      params = { "controller.resource.health.persist" = "true" }
      # The CA of a private Git server (argocd-tls-certs-cm), by host.
      tls = { certificates = var.gitops_repo_certificates }
    }
    server = {
      ingress = {
        enabled          = local.argocd_behind_alb
        ingressClassName = "alb"
        hostname         = var.argocd_hostname
        annotations      = local.argocd_behind_alb ? local.argocd_alb_annotations : {}
      }
    }
  })]

  lifecycle {
    precondition {
      condition     = !local.argocd_behind_alb || (var.argocd_certificate_arn != "" && var.argocd_hostname != "")
      error_message = "argocd_exposure=${var.argocd_exposure} needs argocd_hostname and argocd_certificate_arn (an ACM certificate for that name): the ALB serves HTTPS only."
    }

    precondition {
      condition     = var.argocd_exposure != "internet-facing-https" || length(var.argocd_allowed_cidrs) > 0
      error_message = "argocd_exposure=internet-facing-https needs argocd_allowed_cidrs, for example [\"203.0.113.7/32\"]; the UI is never open to the whole internet."
    }
  }

  depends_on = [helm_release.aws_load_balancer_controller, kubernetes_manifest.argocd_crd]
}

# Registers the cluster Argo CD runs in; its annotations carry the cluster-specific values the
# ApplicationSets template into the GitOps manifests (docs/architecture.md).
resource "kubernetes_secret_v1" "in_cluster" {
  metadata {
    name      = "in-cluster"
    namespace = helm_release.argocd.namespace

    labels = {
      "argocd.argoproj.io/secret-type" = "cluster"
      "eks-platform/managed"           = "true"
    }

    annotations = {
      "eks-platform/cluster-name"        = local.platform.cluster_name
      "eks-platform/karpenter-node-role" = local.platform.karpenter_node_role_name
      "eks-platform/run-id"              = var.run_id
      "eks-platform/expires-at"          = var.expires_at
      "eks-platform/gitops-repo-url"     = var.gitops_repo_url
      "eks-platform/gitops-revision"     = var.gitops_revision
    }
  }

  data = {
    name   = "in-cluster"
    server = local.in_cluster_server
    config = jsonencode({ tlsClientConfig = { insecure = false } })
  }
}

# The root Application. Created last and destroyed first: its finalizer makes Argo CD delete
# everything it synced (NodePools, Ingresses) while Karpenter and the LB controller still run
# to remove the instances and ALBs behind them; wait makes destroy block until that is done.
resource "helm_release" "bootstrap" {
  name      = "bootstrap"
  chart     = "${path.module}/charts/bootstrap"
  namespace = helm_release.argocd.namespace
  wait      = true
  timeout   = 1200

  values = [yamlencode({
    repoURL        = var.gitops_repo_url
    targetRevision = var.gitops_revision
  })]

  depends_on = [
    helm_release.aws_load_balancer_controller,
    helm_release.karpenter_crd,
    helm_release.karpenter,
    helm_release.argocd,
    kubernetes_secret_v1.in_cluster,
  ]
}
