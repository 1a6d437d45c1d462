"""gitops rules."""
