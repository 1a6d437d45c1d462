"""scheduling rules."""
