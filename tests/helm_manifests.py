"""A Helm manifest as ``helm get manifest`` prints it, for the tests that read the last good
commit from it (the post-mortem's follow-up and the fix-forward branch)."""

from __future__ import annotations

__all__ = ["annotated_manifest"]


def annotated_manifest(commit: str) -> str:
    """A Service and the ``app`` Deployment, annotated ``runbook.io/git-commit: <commit>``."""
    return f"""---
apiVersion: v1
kind: Service
metadata: {{name: app}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  annotations:
    runbook.io/git-commit: "{commit}"
spec:
  template:
    metadata: {{labels: {{app: api}}}}
"""
