"""How ``runbook run`` starts the notebook's kernel: over Unix sockets, not loopback TCP.

papermill (through nbclient and jupyter_client) starts kernels on TCP by default, and
ipykernel then warns on every run that code and outputs travel unencrypted. The IPC transport
keeps them in socket files only this user can open, which also ends the warning.
"""

from __future__ import annotations

from typing import Any

__all__ = ["papermill_kernel_options"]


def papermill_kernel_options() -> dict[str, Any]:
    """Extra ``papermill.execute_notebook`` arguments: the kernel manager's configuration.

    papermill hands unknown arguments to nbclient's ``NotebookClient``, which gives its
    ``config`` to the kernel manager it creates; ``transport`` is that manager's setting.
    """
    from traitlets.config import Config

    return {"config": Config({"KernelManager": {"transport": "ipc"}})}
