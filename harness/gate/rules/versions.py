"""versions rules."""
