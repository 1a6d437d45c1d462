"""ingress rules."""
