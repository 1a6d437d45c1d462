"""`harness check`: the offline conformance gate."""
