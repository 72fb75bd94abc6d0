"""The release lock: one ``coordination.k8s.io/v1`` Lease per Helm release.

Two engineers (or an engineer and an automation) must not roll back the same release at once.
Every write carries the resourceVersion that was read, so of two runs racing for the lock the
API server lets exactly one write win (the other gets 409 Conflict and sees the winner).

The holder renews the Lease while it runs (``renew``); the Lease says for how long a renewal
counts (``leaseDurationSeconds``, the run's ``lock_ttl``). A lease not renewed for that long
belongs to a run that crashed: it frees itself and may be taken over, reported in
``LockInfo.warning``. A live lease is taken over only deliberately, with a reason
(``acquire(..., takeover_reason=...)``), which the Lease keeps in an annotation so the run that
lost it can say why. The Lease also names the holder's incident and evidence folder, so the
run after a crash can find and seal the crashed run's evidence.

The holder is a process, not a name: ``holderIdentity`` carries the holder's pid and host, and
annotations its process start time and run id (``core.run_identity``). Two runs under one
incident id are two holders. A live lease whose holder is provably gone (the caller's
``gone`` says why: same host and the process no longer exists, or its timeline says it ended)
is taken over at once, without waiting for the TTL.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_lib.adapters.kube import Kube
from runbook_lib.core.run_identity import START_TOLERANCE_S, RunIdentity
from runbook_lib.errors import ApiError, LockHeld, LockLost, ParameterError

__all__ = [
    "ANNOTATION_EVIDENCE",
    "ANNOTATION_HOST",
    "ANNOTATION_INCIDENT",
    "ANNOTATION_PID",
    "ANNOTATION_PROCESS_STARTED",
    "ANNOTATION_RUN",
    "ANNOTATION_TAKEOVER",
    "LeaseState",
    "LockInfo",
    "ReleaseLock",
    "held_message",
    "lease_name",
]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

ANNOTATION_INCIDENT = "runbook/incident-id"
ANNOTATION_EVIDENCE = "runbook/evidence-dir"
ANNOTATION_TAKEOVER = "runbook/takeover-reason"
ANNOTATION_HOST = "runbook/host"
ANNOTATION_PID = "runbook/pid"
ANNOTATION_PROCESS_STARTED = "runbook/process-started"  # Unix seconds, two decimals
ANNOTATION_RUN = "runbook/run-id"


def lease_name(release: str) -> str:
    """``runbook-rollback-<release>``: the Lease guarding one release."""
    return f"runbook-rollback-{release}"


@dataclass(frozen=True)
class LeaseState:
    """The Lease as read: who holds it, since when, last renewal, and what the holder said."""

    holder: str
    acquired_at: datetime | None
    renewed_at: datetime | None
    duration_s: float | None  # the holder's lock_ttl (leaseDurationSeconds)
    incident_id: str = ""
    evidence_dir: str = ""
    takeover_reason: str = ""
    resource_version: str = ""
    transitions: int = 0
    # The holder process (annotations; empty for a Lease written by an older version).
    host: str = ""
    pid: int = 0
    process_started: float = 0.0
    run_id: str = ""

    def frees_at(self, default_ttl_s: float) -> datetime | None:
        """When the lock frees itself unless renewed: last renewal + the holder's duration."""
        if self.renewed_at is None:
            return None
        return self.renewed_at + timedelta(seconds=self.duration_s or default_ttl_s)

    def live(self, now: datetime, default_ttl_s: float) -> bool:
        """Whether the holder renewed it recently enough that it still holds it."""
        frees = self.frees_at(default_ttl_s)
        return frees is not None and now <= frees


@dataclass(frozen=True)
class LockInfo:
    """The lock as acquired: who holds it, since when, and any takeover warning.

    ``takeover`` is "" (the lock was free or ours), "stale" (its holder stopped renewing it),
    "gone" (its holder is provably gone: ``reason`` says why) or "deliberate" (a live lock
    taken over with ``reason``); ``previous`` is the Lease as it was before, when another
    holder had it.
    """

    namespace: str
    name: str
    holder: str
    acquired_at: datetime
    resource_version: str
    previous_holder: str | None = None
    warning: str | None = None
    takeover: str = ""
    reason: str = ""
    previous: LeaseState | None = None


def _micro_time(at: datetime) -> datetime:
    # Lease times are MicroTime, which the API server parses only with six fractional digits.
    # The client serialises datetimes with ``isoformat()``, which drops a zero fraction, so a
    # whole-second time is nudged by one microsecond (irrelevant against a TTL in seconds).
    at = at.astimezone(UTC)
    return at if at.microsecond else at.replace(microsecond=1)


def _aware(at: Any) -> datetime | None:
    if not isinstance(at, datetime):
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _clock(at: datetime | None) -> str:
    return "unknown" if at is None else f"{at.astimezone(UTC):%H:%M:%S} UTC"


def held_message(release: str, where: str, state: LeaseState, now: datetime, ttl_s: float) -> str:
    """Why a run cannot take the lock, and how to go on (the text of ``LockHeld``).

    Names the holder (its process and run), since when it holds the lock, when it frees itself
    unless renewed, and the two ways on: wait (a crashed run stops renewing) or take it over
    deliberately.
    """
    frees = state.frees_at(ttl_s)
    renewed = (
        "never renewed"
        if state.renewed_at is None
        else f"last renewed {_clock(state.renewed_at)}, "
        f"{max(0.0, (now - state.renewed_at).total_seconds()):.0f} s ago"
    )
    when = (
        "unknown"
        if frees is None
        else f"{_clock(frees)}, in {max(0.0, (frees - now).total_seconds()):.0f} s,"
    )
    incident = f", incident {state.incident_id}" if state.incident_id else ""
    run = f", run {state.run_id}" if state.run_id else ""
    return (
        f"release {release!r} is being rolled back by {state.holder!r}{incident}{run} "
        f"(Lease {where}): held since {_clock(state.acquired_at)}, {renewed}; "
        f"it frees itself at {when} unless its run renews it. A running holder renews it "
        f"while it works; if that run crashed, run again after that time. To take the lock "
        f"over now, set lock_takeover_reason to why (recorded in both runs' evidence); never "
        f"while the other run may still be acting"
    )


def _state(lease: Any) -> LeaseState | None:
    if lease is None:
        return None
    spec = lease.spec
    annotations = dict(getattr(lease.metadata, "annotations", None) or {})
    duration = getattr(spec, "lease_duration_seconds", None) if spec else None
    return LeaseState(
        holder=str(spec.holder_identity or "") if spec else "",
        acquired_at=_aware(spec.acquire_time) if spec else None,
        renewed_at=_aware(spec.renew_time or spec.acquire_time) if spec else None,
        duration_s=float(duration) if isinstance(duration, int | float) and duration else None,
        incident_id=str(annotations.get(ANNOTATION_INCIDENT, "")),
        evidence_dir=str(annotations.get(ANNOTATION_EVIDENCE, "")),
        takeover_reason=str(annotations.get(ANNOTATION_TAKEOVER, "")),
        resource_version=str(lease.metadata.resource_version or ""),
        transitions=int(spec.lease_transitions or 0) if spec else 0,
        host=str(annotations.get(ANNOTATION_HOST, "")),
        pid=_number(annotations.get(ANNOTATION_PID), int),
        process_started=_number(annotations.get(ANNOTATION_PROCESS_STARTED), float),
        run_id=str(annotations.get(ANNOTATION_RUN, "")),
    )


def _number(text: object, kind: type[int] | type[float]) -> Any:
    try:
        return kind(str(text)) if text else kind(0)
    except ValueError:
        return kind(0)


class ReleaseLock:
    """Lock for ``release`` in ``namespace``, held as ``holder`` (e.g. "alice@laptop/INC-42").

    ``ttl_s`` is how long a renewal counts: the Lease frees itself that long after its last
    renewal. ``incident_id`` and ``evidence_dir`` are written on the Lease so a later run can
    find this run's evidence; ``identity`` (the run's process and run id) so a later run can
    tell whether the holder is gone. Raises ``ParameterError`` for a release name that cannot name a
    Lease, an empty holder or a TTL that is not positive. Safe to renew from another thread.
    """

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        release: str,
        holder: str,
        ttl_s: float = 60.0,
        incident_id: str = "",
        evidence_dir: str = "",
        identity: RunIdentity | None = None,
    ) -> None:
        problems = []
        name = lease_name(release)
        if len(name) > 253 or not _DNS_LABEL.match(release):
            problems.append(f"release: {release!r} is not a valid DNS label for a Lease name")
        if not holder.strip():
            problems.append("holder: must not be empty")
        if ttl_s <= 0:
            problems.append(f"ttl_s: must be positive, got {ttl_s}")
        if problems:
            raise ParameterError(problems)
        self.kube = kube
        self.namespace = namespace
        self.release_name = release
        self.name = name
        self.holder = holder
        self.ttl_s = ttl_s
        self.incident_id = incident_id
        self.evidence_dir = evidence_dir
        self.identity = identity
        self._acquired_at: datetime | None = None
        self._reason = ""
        self._guard = threading.Lock()  # renewals from a prompt's renewer thread
        self.renewed_monotonic = 0.0  # when this holder last wrote the Lease (time.monotonic)

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    def _body(
        self,
        now: datetime,
        *,
        acquired: datetime,
        resource_version: str | None,
        transitions: int,
    ) -> dict[str, Any]:
        annotations = {
            key: value
            for key, value in (
                (ANNOTATION_INCIDENT, self.incident_id),
                (ANNOTATION_EVIDENCE, self.evidence_dir),
                (ANNOTATION_TAKEOVER, self._reason),
                *self._identity_annotations(),
            )
            if value
        }
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "runbook",
                "runbook/release": self.release_name,
            },
            "annotations": annotations,
        }
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": {
                "holderIdentity": self.holder,
                "leaseDurationSeconds": max(1, round(self.ttl_s)),
                "acquireTime": _micro_time(acquired),
                "renewTime": _micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    def _identity_annotations(self) -> tuple[tuple[str, str], ...]:
        who = self.identity
        if who is None:
            return ()
        return (
            (ANNOTATION_HOST, who.host),
            (ANNOTATION_PID, str(who.pid) if who.pid else ""),
            (
                ANNOTATION_PROCESS_STARTED,
                f"{who.process_started:.2f}" if who.process_started else "",
            ),
            (ANNOTATION_RUN, who.run_id),
        )

    def _ours(self, state: LeaseState) -> bool:
        """The Lease names this holder, and (when both are known) this very process."""
        if state.holder != self.holder:
            return False
        mine = self.identity.process_started if self.identity is not None else 0.0
        if not mine or not state.process_started:
            return True
        return abs(mine - state.process_started) <= START_TOLERANCE_S

    def _read(self) -> Any | None:
        try:
            return self.kube.call(
                f"get lease {self.where}",
                self.kube.coordination.read_namespaced_lease,
                self.name,
                self.namespace,
            )
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def _replace(self, body: dict[str, Any]) -> Any:
        return self.kube.call(
            f"replace lease {self.where}",
            self.kube.coordination.replace_namespaced_lease,
            self.name,
            self.namespace,
            body,
        )

    def state(self) -> LeaseState | None:
        """The Lease as it is now (None when there is none). Raises ``ApiError``."""
        return _state(self._read())

    def acquire(
        self,
        now: datetime,
        *,
        takeover_reason: str = "",
        gone: Callable[[LeaseState], str] | None = None,
    ) -> LockInfo:
        """Take the lock (preflight, "lock"). ``now`` is the caller's clock (UTC, aware).

        Re-entrant for the same holder process only. A lease its holder stopped renewing
        (older than the holder's duration) is taken over with a warning; a live one at once
        when ``gone(state)`` says why its holder is provably gone, else only with a non-empty
        ``takeover_reason``. Raises ``LockHeld`` (saying who holds it, since when, when it
        frees itself and how to take it over) when another holder renewed it recently or won
        a race for it, ``ApiError`` when the API fails (including a 403 naming the missing
        permission on leases).
        """
        reason = takeover_reason.strip()
        with self._guard:
            for attempt in range(4):
                # Usually there is no Lease (every run deletes its own): create first and read
                # only after a collision, one round trip fewer before the rollback.
                lease = self._read() if attempt else None
                if lease is None:
                    self._reason = ""
                    try:
                        created = self.kube.call(
                            f"create lease {self.where}",
                            self.kube.coordination.create_namespaced_lease,
                            self.namespace,
                            self._body(now, acquired=now, resource_version=None, transitions=0),
                        )
                    except ApiError as err:
                        if err.status == 409:  # created by someone else meanwhile: look again
                            continue
                        raise
                    self._acquired_at = now
                    self.renewed_monotonic = time.monotonic()
                    return self._info(now, created)
                state = _state(lease)
                assert state is not None
                other = state.holder
                warning = None
                takeover = ""
                why = ""
                transitions = state.transitions
                acquired = now
                if self._ours(state):
                    acquired = state.acquired_at or now
                elif other:
                    if state.live(now, self.ttl_s):
                        why = gone(state) if gone is not None else ""
                        if why:
                            takeover = "gone"
                            warning = f"took over the lock of {other!r} at once: {why}"
                        elif not reason:
                            raise LockHeld(
                                held_message(self.release_name, self.where, state, now, self.ttl_s),
                                holder=other,
                                frees_at=state.frees_at(self.ttl_s),
                            )
                        else:
                            takeover, why = "deliberate", reason
                            warning = (
                                f"took over the LIVE lock of {other!r} deliberately (last "
                                f"renewed {_clock(state.renewed_at)}); reason: {reason}"
                            )
                    else:
                        takeover = "stale"
                        since = (
                            "never renewed"
                            if state.renewed_at is None
                            else f"last renewed {_clock(state.renewed_at)}"
                        )
                        warning = (
                            f"took over the stale lock of {other!r} ({since}; it freed itself "
                            f"at {_clock(state.frees_at(self.ttl_s))}: its run stopped renewing)"
                        )
                    transitions += 1
                self._reason = reason if takeover == "deliberate" else ""
                body = self._body(
                    now,
                    acquired=acquired,
                    resource_version=state.resource_version,
                    transitions=transitions,
                )
                try:
                    replaced = self._replace(body)
                except ApiError as err:
                    if err.status == 409:  # someone wrote in between: re-read and decide again
                        continue
                    raise
                self._acquired_at = acquired
                self.renewed_monotonic = time.monotonic()
                return self._info(
                    now,
                    replaced,
                    previous=state if other and takeover else None,
                    warning=warning,
                    takeover=takeover,
                    reason=why,
                )
            holder = self.holder_now() or ""
            raise LockHeld(
                f"release {self.release_name!r}: lost the race for Lease {self.where} to "
                f"{holder or 'another run'}; run again to see who holds it and until when",
                holder=holder,
            )

    def _info(
        self,
        now: datetime,
        lease: Any,
        *,
        previous: LeaseState | None = None,
        warning: str | None = None,
        takeover: str = "",
        reason: str = "",
    ) -> LockInfo:
        return LockInfo(
            namespace=self.namespace,
            name=self.name,
            holder=self.holder,
            acquired_at=now,
            resource_version=str(lease.metadata.resource_version),
            previous_holder=previous.holder if previous is not None else None,
            warning=warning,
            takeover=takeover,
            reason=reason,
            previous=previous,
        )

    def renew(self, now: datetime) -> None:
        """Renew the lock while the run holds it (every step, and during long waits).

        The write carries the resourceVersion read just before, so it succeeds only while the
        Lease is still this holder's. Raises ``LockLost`` naming the holder now (or nobody,
        when the Lease is gone), ``ApiError`` when the API fails.
        """
        with self._guard:
            for _ in range(3):
                state = self.state()
                if state is None or not state.holder:
                    raise LockLost(
                        f"the rollback lock (Lease {self.where}) was released while this run "
                        f"held it; nobody holds it now; run the step again to take it again",
                        holder=None,
                    )
                if not self._ours(state):
                    why = (
                        f" (reason given: {state.takeover_reason})" if state.takeover_reason else ""
                    )
                    raise LockLost(
                        f"the rollback lock (Lease {self.where}) is now held by "
                        f"{state.holder!r} since {_clock(state.acquired_at)}{why}; this run "
                        f"no longer holds it and changes nothing",
                        holder=state.holder,
                    )
                body = self._body(
                    now,
                    acquired=state.acquired_at or self._acquired_at or now,
                    resource_version=state.resource_version,
                    transitions=state.transitions,
                )
                try:
                    self._replace(body)
                except ApiError as err:
                    if err.status == 409:  # written in between: look again
                        continue
                    raise
                self.renewed_monotonic = time.monotonic()
                return
            raise LockLost(
                f"the rollback lock (Lease {self.where}) kept changing under this run; "
                f"held now by {self.holder_now() or 'nobody'}",
                holder=self.holder_now(),
            )

    def holder_now(self) -> str | None:
        """Who holds the lease now (None when there is none). Raises ``ApiError``."""
        state = self.state()
        return (state.holder or None) if state is not None else None

    def release(self) -> bool:
        """Give the lock back ("finish", and every failure path). Idempotent.

        Deletes the Lease only if this holder still holds it, with a resourceVersion
        precondition so a takeover in between is never undone. Returns whether a lease was
        deleted. Raises ``ApiError``.
        """
        with self._guard:
            lease = self._read()
            if lease is None or lease.spec is None:
                return False
            state = _state(lease)
            if state is None or not self._ours(state):
                return False
            try:
                self.kube.call(
                    f"delete lease {self.where}",
                    self.kube.coordination.delete_namespaced_lease,
                    self.name,
                    self.namespace,
                    body={
                        "apiVersion": "v1",
                        "kind": "DeleteOptions",
                        "preconditions": {"resourceVersion": str(lease.metadata.resource_version)},
                    },
                )
            except ApiError as err:
                if err.status in (404, 409):  # gone already, or taken over since we read it
                    return False
                raise
            return True
