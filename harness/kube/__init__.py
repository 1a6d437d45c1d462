"""The Kubernetes side: the client (EKS token, reads, deletes, scales) and the pure judges over API objects:
core (nodes, pods), Argo CD, Karpenter and the ALB chain of an Ingress."""
