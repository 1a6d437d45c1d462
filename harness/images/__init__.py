"""Container images: references as runtimes read them, the OCI registry client, and `harness pin-image`."""
