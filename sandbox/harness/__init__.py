"""Local Kubernetes sandbox harness (see sandbox/README.md)."""
