"""identity rules."""
