"""`harness e2e`: the staged end-to-end run (safety, the stage machine, the orchestration, evidence, the report)."""
