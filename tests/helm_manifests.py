"""Helm manifests as ``helm get manifest`` prints them, for the tests that read one: the images
a release should run, what the evidence bundle keeps of it, the last good commit."""

from __future__ import annotations

__all__ = ["RELEASE_MANIFEST", "annotated_manifest"]

# A Secret with planted values (the bundle must never show them), a Service, the ``app``
# Deployment (an init container, a sidecar pinned by digest, a planted env value) and a second
# Deployment.
RELEASE_MANIFEST = """\
---
# Source: app/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: app-db
type: Opaque
data:
  tls.key: UExBTlRFRG9sZFRsc0tleQ==
stringData:
  password: PLANTEDoldPassword
---
# Source: app/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: api}
---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 3
  template:
    spec:
      initContainers:
        - name: wait
          image: busybox:1.36
      containers:
        - name: api
          image: registry.local/api:v1.0.0
          env:
            - name: DB_PASSWORD
              value: PLANTEDoldEnvPw
        - name: sidecar
          image: envoyproxy/envoy@sha256:aaaa
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: other
spec:
  template:
    spec:
      containers:
        - name: x
          image: registry.local/other:v9
"""


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
