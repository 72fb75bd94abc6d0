"""Local Kubernetes sandbox harness (see sandbox/README.md).

``up()`` starts (or attaches to) the sandbox named by ``RUNBOOK_SANDBOX_NAME`` and returns a
``Sandbox`` handle; ``down()`` stops it; ``build()`` builds the pinned binaries.
"""

from runbook_sandbox.binaries import build
from runbook_sandbox.sandbox import Sandbox, attach, down, status, up

__all__ = ["Sandbox", "attach", "build", "down", "status", "up"]
