"""Run a command in a pod (``kubectl exec``), over the API server's websocket.

The revert-migrations step execs ``./migrate`` in the migrator pod; the exit status comes from
the stream's status channel, in whichever of the forms API servers and runtimes send it. The
result is a ``subprocess.CompletedProcess``: what a command run anywhere gives back, under the
names every caller already knows (``returncode``, as ``CommandFailed`` has it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from subprocess import CompletedProcess
from typing import Any

from kubernetes.stream import stream as k8s_stream
from kubernetes.stream.ws_client import ERROR_CHANNEL

from runbook_lib.adapters.kube import CONNECT_TIMEOUT_S, TRANSPORT_ERRORS, Kube, api_error
from runbook_lib.errors import ApiError

__all__ = ["exec_in_pod"]

_EXIT_STATUS = re.compile(r"exit status (\d+)$")


def exec_in_pod(
    kube: Kube, namespace: str, pod: str, argv: list[str], *, timeout_s: float
) -> CompletedProcess[str]:
    """Run ``argv`` in ``pod`` (``kubectl exec pod -- argv``); revert-migrations step.

    Captures stdout, stderr and the exit code from the status channel. Raises
    ``ApiError`` when the pod cannot be reached or the command outlives ``timeout_s``
    (it is then abandoned; retryable).
    """
    command = f"exec {namespace}/{pod} -- {' '.join(argv)}"
    try:
        resp = k8s_stream(
            kube.core.connect_get_namespaced_pod_exec,
            pod,
            namespace,
            command=list(argv),
            stderr=True,
            stdin=False,
            stdout=True,
            tty=False,
            _preload_content=False,
            _request_timeout=(CONNECT_TIMEOUT_S, timeout_s),
        )
    except TRANSPORT_ERRORS as err:
        raise api_error(err, command) from err
    except Exception as err:  # websocket errors have no common base in the client
        raise ApiError(
            f"exec failed: {type(err).__name__}", command=command, stderr=str(err)[:500]
        ) from err
    stdout: list[str] = []
    stderr: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        while resp.is_open():
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApiError(
                    f"command did not finish within {timeout_s:g} s",
                    command=command,
                    stderr="".join(stderr)[-500:],
                    retryable=True,
                )
            resp.update(timeout=min(1.0, left))
            if resp.peek_stdout():
                stdout.append(resp.read_stdout())
            if resp.peek_stderr():
                stderr.append(resp.read_stderr())
        # Data can arrive together with the close frame.
        stdout.append(resp.read_stdout(timeout=0) or "")
        stderr.append(resp.read_stderr(timeout=0) or "")
        status_text = resp.read_channel(ERROR_CHANNEL)
    except ApiError:
        raise
    except Exception as err:  # the websocket broke mid-command (API server gone)
        raise ApiError(
            f"exec stream broke: {type(err).__name__}",
            command=command,
            stderr="".join(stderr)[-500:],
            retryable=True,
        ) from err
    finally:
        resp.close()
    returncode = _exit_code(status_text, command)
    return CompletedProcess(argv, returncode, "".join(stdout), "".join(stderr))


def _exit_code(status_text: str | None, command: str) -> int:
    """Exit code from the exec status channel: ``Success``, or ``NonZeroExitCode`` with
    the code in ``details.causes[reason=ExitCode]``."""
    if not status_text:
        # No status at all: the stream broke before the command reported back.
        raise ApiError("exec ended without an exit status", command=command, retryable=True)
    try:
        status: Mapping[str, Any] = json.loads(status_text)
    except json.JSONDecodeError as err:
        raise ApiError(
            "exec status is not JSON", command=command, stderr=status_text[:500]
        ) from err
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", "1"))
    # Runtimes that do not report NonZeroExitCode (kwok's local exec among them) end the
    # message with the wait status of the command instead.
    match = _EXIT_STATUS.search(str(status.get("message") or ""))
    if match:
        return int(match.group(1))
    raise ApiError(
        f"exec failed: {status.get('message') or status.get('reason') or 'unknown error'}",
        command=command,
        stderr=status_text[:500],
    )
