"""The local Kubernetes tier's binaries, built from pinned Go modules (toolchain/) into a per-user cache."""
