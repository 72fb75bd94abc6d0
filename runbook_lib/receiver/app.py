"""The receiver as a running service: notifiers from the policy, HTTP, and how it stops.

``run_service`` serves ``Receiver`` over ``adapters.webhook`` until a signal: the first
SIGTERM/SIGINT starts a graceful stop (``Receiver.close``: no new work, posts answered 503,
runs in progress get the grace, then local runs are stopped and sealed and Jobs handed back),
a second one stops at once (the runs are still stopped and sealed, never abandoned).
"""

from __future__ import annotations

import signal
import ssl
import threading
from collections.abc import Callable, Mapping

from runbook_lib.adapters.notify import ConsoleNotifier, FileNotifier, Notifier, SlackWebhook
from runbook_lib.adapters.webhook import make_app, serve
from runbook_lib.core.alert_policy import Policy
from runbook_lib.core.run_job import credential_env_name
from runbook_lib.receiver.service import Receiver

__all__ = ["notifiers_from_policy", "run_service"]


def notifiers_from_policy(policy: Policy, environ: Mapping[str, str]) -> list[Notifier]:
    """Slack, file and console channels as the policy's ``notify`` section names them. The
    Slack webhook may come from ``RUNBOOK_SLACK_WEBHOOK_URL`` instead (a mounted Secret)."""
    notify = policy.notify
    found: list[Notifier] = []
    slack = notify.get("slack_webhook_url") or environ.get(credential_env_name("slack_webhook_url"))
    if slack:
        found.append(SlackWebhook(str(slack)))
    if notify.get("notify_file"):
        found.append(FileNotifier(str(notify["notify_file"])))
    if notify.get("console", True) not in (False, "False", "false"):
        found.append(ConsoleNotifier())
    return found


def run_service(
    receiver: Receiver,
    *,
    token: str,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None = None,
    say: Callable[[str], None] = lambda _text: None,
) -> None:
    """Start the workers, serve until stopped by signals (see the module docstring)."""
    stopped = threading.Event()
    signals: list[int] = []

    def stop(grace_s: float) -> None:
        try:
            receiver.close(grace_s)
        finally:
            stopped.set()

    def on_signal(signum: int) -> None:
        signals.append(signum)
        name = signal.Signals(signum).name
        if len(signals) == 1:
            say(
                f"{name}: taking no new work; runs in progress get {receiver.grace_s:g} s, "
                "then are stopped and sealed (Jobs run on; the next start finds them)"
            )
            threading.Thread(target=stop, args=(receiver.grace_s,), daemon=True).start()
        else:
            say(f"{name} again: stopping the runs in progress now (sealed)")
            receiver.stop_now()

    def listening(bound: int) -> None:
        # Work starts once the port is ours: a receiver that cannot listen touches no run
        # (not even those an earlier receiver left running).
        receiver.start()
        started.set()
        scheme = "https" if ssl_context is not None else "http"
        say(f"{scheme}://{host}:{bound}/alerts (runs: /runs)")

    started = threading.Event()
    try:
        serve(
            make_app(receiver, token=token),
            host=host,
            port=port,
            on_signal=on_signal,
            stopped=stopped,
            ssl_context=ssl_context,
            on_listening=listening,
        )
    finally:
        if not started.is_set():
            receiver.journal.close()
        elif not stopped.is_set():
            receiver.close(0)
    say("stopped")
