output "argocd_namespace" {
  description = "Namespace of Argo CD."
  value       = helm_release.argocd.namespace
}

output "argocd_url" {
  description = "Where the Argo CD UI is reached (after kubectl port-forward when argocd_exposure=port-forward)."
  value       = "https://${local.argocd_ui_hostname}"
}

output "argocd_port_forward_command" {
  description = "Reach the UI without exposing it."
  value       = "kubectl -n ${helm_release.argocd.namespace} port-forward svc/argocd-server 8080:443"
}

output "bootstrap_application" {
  description = "Name and namespace of the root Argo CD Application."
  value       = { name = "bootstrap", namespace = helm_release.bootstrap.namespace }
}
