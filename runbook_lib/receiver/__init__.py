"""``runbook serve`` as a service: from Alertmanager's alerts to runs, nothing accepted lost.

- ``service``: the ``Receiver`` (accept, queue and workers, restart, stopping)
- ``runs``: the life of one run (plan, journal, dispatch, wait, record, report; reconcile)
- ``journal``: durable JSON lines with group commit and compaction
- ``replay``: what the journal says after a restart, and what compaction keeps (pure)
- ``dispatch``: where a run executes (a local child holding a lock, or a Kubernetes Job)
- ``outcome``: how a run ended, read from its timeline
- ``texts``, ``status``: what people read (notifications; ``/metrics``, ``/runs`` and the
  breaker's history in the ``Ledger``)
- ``app``: the service wired to HTTP and signals

It never imports ``runbook_lib.steps``: a run is a child process or a Job, never this process.
"""

from runbook_lib.receiver.app import notifiers_from_policy, run_service
from runbook_lib.receiver.dispatch import JobDispatch, LocalDispatch, RunSpec
from runbook_lib.receiver.service import Receiver

__all__ = [
    "JobDispatch",
    "LocalDispatch",
    "Receiver",
    "RunSpec",
    "notifiers_from_policy",
    "run_service",
]
