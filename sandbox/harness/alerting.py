"""The sandbox's alerting half: the runbook's rules in its Prometheus, and an Alertmanager.

``write_rules`` puts the rule file ``runbook rules --profile sandbox/profiles/app.yaml`` would
write (release ``app``, the demo's short windows) where the sandbox Prometheus loads rules
from; ``start`` runs Debian's Alertmanager on 127.0.0.1 (port base+95) with its own config and
storage under ``<state>/alerting/``, routing the runbook's alerts to ``runbook serve`` on
base+89 with a bearer token from ``<state>/alerting/receiver.token`` (the receiver reads the
same file).
``stop`` ends it and frees the port; ``status`` says whether it runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

from runbook_lib.adapters.settings_files import read_profile
from runbook_lib.core.settings import Entry, Settings, from_flat
from runbook_sandbox import metrics_stack, paths
from runbook_sandbox.prometheus_server import answers_ready, ports_in_use

__all__ = [
    "DEMO_PROFILE",
    "DEMO_RULES",
    "AlertmanagerError",
    "alertmanager_binary",
    "render_alertmanager_config",
    "rules_glob",
    "start",
    "status",
    "stop",
    "token_file",
    "write_rules",
]

INSTALL_HINT = "apt-get install prometheus-alertmanager"
# The sandbox's service as one profile (sandbox/profiles/app.yaml: release app's series, the
# demo's windows): the alert rules come from it, and `make demo-alert` gives the same file to
# every run the alerts start, so the notebook judges what the rule that fired judged.
DEMO_PROFILE = paths.data_dir() / "profiles" / "app.yaml"
DEMO_RULES = from_flat({}, used_by=Entry.RULES, profile=read_profile(DEMO_PROFILE))
_NAME = "alertmanager"


class AlertmanagerError(RuntimeError):
    """Alertmanager is missing, its port is taken, or it did not become ready (log named)."""


def _dir(state_dir: Path) -> Path:
    return Path(state_dir) / "alerting"


def rules_dir(state_dir: Path) -> Path:
    return Path(state_dir) / "metrics" / "rules"


def rules_glob(state_dir: Path) -> str:
    """What the sandbox Prometheus loads: every ``*.yml`` in ``<state>/metrics/rules``."""
    return str(rules_dir(state_dir) / "*.yml")


def write_rules(state_dir: Path, settings: Settings = DEMO_RULES) -> Path:
    """Write ``<release>.yml`` into the rules folder (Prometheus reads it at start/reload)."""
    folder = rules_dir(state_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{settings.target.namespace}-{settings.target.release}.yml"
    # Here: the rules read the decision engine, which loads pandas; `runbook --help` (which
    # imports this package for its `sandbox` command) must not.
    from runbook_lib.core.alert_rules import render_rule_file

    path.write_text(render_rule_file(settings), encoding="utf-8")
    return path


def token_file(state_dir: Path) -> Path:
    """The receiver's bearer token (created once per state dir, owner-only)."""
    path = _dir(state_dir) / "receiver.token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path


def alertmanager_binary() -> str | None:
    """``$RUNBOOK_ALERTMANAGER_BINARY``, else Debian's ``prometheus-alertmanager`` or upstream's
    ``alertmanager`` on PATH."""
    explicit = os.environ.get("RUNBOOK_ALERTMANAGER_BINARY")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def render_alertmanager_config(receiver_url: str, token_path: Path) -> str:
    """One route to the runbook's webhook; resolved alerts are sent too (the receiver logs them).

    Short waits so the demo sees an alert a second after Prometheus sends it; a real setup
    keeps Alertmanager's defaults (30 s group_wait, 5 m group_interval).
    """
    config = {
        "route": {
            "receiver": "runbook",
            "group_by": ["alertname", "release", "namespace"],
            "group_wait": "1s",
            "group_interval": "5s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "runbook",
                "webhook_configs": [
                    {
                        "url": receiver_url,
                        "send_resolved": True,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(token_path),
                            }
                        },
                    }
                ],
            }
        ],
    }
    return json.dumps(config, indent=2) + "\n"


def url() -> str:
    return f"http://127.0.0.1:{paths.ports().alertmanager}"


def receiver_url() -> str:
    return f"http://127.0.0.1:{paths.ports().receiver}/alerts"


def start(
    state_dir: Path,
    *,
    port: int | None = None,
    receiver: str | None = None,
    timeout_s: float = 30.0,
) -> str:
    """Start Alertmanager (reusing one already running for this state dir); return its URL.

    ``port`` and ``receiver`` (the webhook URL) default to the sandbox's (base+95, base+89).
    Raises ``AlertmanagerError`` (after cleaning up) when the binary is missing, the port is
    taken or it is not ready in time.
    """
    state_dir = Path(state_dir)
    port = port or paths.ports().alertmanager
    base = f"http://127.0.0.1:{port}"
    if metrics_stack._running(state_dir, _NAME):
        return base
    stop(state_dir, port=port)
    binary = alertmanager_binary()
    if binary is None:
        raise AlertmanagerError(f"no Alertmanager binary on PATH ({INSTALL_HINT})")
    problem = ports_in_use([port])
    if problem:
        raise AlertmanagerError(problem)
    work = _dir(state_dir)
    work.mkdir(parents=True, exist_ok=True)
    config = work / "alertmanager.yml"
    config.write_text(render_alertmanager_config(receiver or receiver_url(), token_file(state_dir)))
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={work / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # No high-availability gossip: one instance, and nothing listening beyond loopback.
        "--cluster.listen-address=",
    ]
    log = work / "alertmanager.log"
    proc = metrics_stack.spawn_recorded(state_dir, _NAME, argv, log=log, cwd=work)
    try:
        _wait_ready(proc, log, base, timeout_s)
    except BaseException:
        stop(state_dir, port=port)
        raise
    return base


def _wait_ready(proc: subprocess.Popen[bytes], log: Path, base: str, timeout_s: float) -> None:
    late = f"alertmanager not ready on {url()} after {timeout_s:.0f} s (log: {log})"
    metrics_stack.wait_ready(
        proc,
        log,
        lambda: answers_ready(base),
        timeout_s=timeout_s,
        error=AlertmanagerError,
        what="alertmanager",
        late=late,
    )


def stop(state_dir: Path, *, port: int | None = None, timeout_s: float = 10.0) -> None:
    """Stop Alertmanager if it runs and delete its storage; safe to call any time."""
    state_dir = Path(state_dir)
    metrics_stack.stop_recorded(state_dir, _NAME, timeout_s=timeout_s)
    metrics_stack.wait_ports_free([port or paths.ports().alertmanager], timeout_s=timeout_s)
    shutil.rmtree(_dir(state_dir) / "alertmanager-data", ignore_errors=True)


def status(state_dir: Path) -> dict[str, Any]:
    """Alertmanager's pid, whether it runs, its URL, the receiver it posts to, active alerts."""
    result, alerts = metrics_stack.process_report(
        state_dir, _NAME, urls={"url": url()}, ask=f"{url()}/api/v2/alerts"
    )
    result["receiver_url"] = receiver_url()
    result["rules"] = sorted(str(p) for p in rules_dir(Path(state_dir)).glob("*.yml"))
    result["alerts"] = None
    if alerts is not None:
        with contextlib.suppress(KeyError, TypeError, AttributeError):
            result["alerts"] = [
                {"name": a["labels"].get("alertname"), "state": a["status"]["state"]}
                for a in alerts
            ]
    return result
