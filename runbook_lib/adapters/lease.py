"""The release lock: one ``coordination.k8s.io/v1`` Lease per Helm release.

Two engineers (or an engineer and an automation) must not roll back the same release at once.
Every write carries the resourceVersion that was read, so of two runs racing for the lock the
API server lets exactly one write win (the other gets 409 Conflict and sees the winner). A
lease whose holder stopped renewing longer than ``ttl_s`` ago is stale (its run crashed) and
may be taken over; the takeover is reported in ``LockInfo.warning`` for the timeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runbook_lib.adapters.kube import Kube
from runbook_lib.errors import ApiError, LockHeld, ParameterError

__all__ = ["LockInfo", "ReleaseLock", "lease_name"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def lease_name(release: str) -> str:
    """``runbook-rollback-<release>``: the Lease guarding one release."""
    return f"runbook-rollback-{release}"


@dataclass(frozen=True)
class LockInfo:
    """The lock as acquired: who holds it, since when, and any takeover warning."""

    namespace: str
    name: str
    holder: str
    acquired_at: datetime
    resource_version: str
    previous_holder: str | None = None
    warning: str | None = None


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


class ReleaseLock:
    """Lock for ``release`` in ``namespace``, held as ``holder`` (e.g. "alice@laptop/INC-42").

    ``ttl_s`` is how long after its last renewal a lease counts as abandoned. Raises
    ``ParameterError`` for a release name that cannot name a Lease, or an empty holder.
    """

    def __init__(
        self, kube: Kube, *, namespace: str, release: str, holder: str, ttl_s: float = 900.0
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

    def _body(
        self, now: datetime, *, resource_version: str | None, transitions: int
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.name,
            "namespace": self.namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "runbook",
                "runbook/release": self.release_name,
            },
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
                "acquireTime": _micro_time(now),
                "renewTime": _micro_time(now),
                "leaseTransitions": transitions,
            },
        }

    def _read(self) -> Any | None:
        try:
            return self.kube.call(
                f"get lease {self.namespace}/{self.name}",
                self.kube.coordination.read_namespaced_lease,
                self.name,
                self.namespace,
            )
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def acquire(self, now: datetime) -> LockInfo:
        """Take the lock (preflight, "lock"). ``now`` is the caller's clock (UTC, aware).

        Re-entrant for the same holder. Raises ``LockHeld`` when another holder renewed it
        within ``ttl_s`` or won a race for it, ``ApiError`` when the API fails (including a
        403 naming the missing permission on leases).
        """
        for attempt in range(4):
            # Usually there is no Lease (every run deletes its own): create first and read only
            # after a collision, one round trip fewer before the rollback.
            lease = self._read() if attempt else None
            if lease is None:
                try:
                    created = self.kube.call(
                        f"create lease {self.namespace}/{self.name}",
                        self.kube.coordination.create_namespaced_lease,
                        self.namespace,
                        self._body(now, resource_version=None, transitions=0),
                    )
                except ApiError as err:
                    if err.status == 409:  # created by someone else meanwhile: look again
                        continue
                    raise
                return self._info(now, created)
            spec = lease.spec
            other = str(spec.holder_identity or "") if spec else ""
            renewed = _aware(spec.renew_time or spec.acquire_time) if spec else None
            transitions = int(spec.lease_transitions or 0) if spec else 0
            warning = None
            if other and other != self.holder:
                age = None if renewed is None else (now - renewed).total_seconds()
                if age is not None and age <= self.ttl_s:
                    raise LockHeld(
                        f"release {self.release_name!r} is being rolled back by {other!r} "
                        f"(lease {self.namespace}/{self.name}, renewed {age:.0f} s ago; "
                        f"stale after {self.ttl_s:g} s)",
                        holder=other,
                    )
                since = "never renewed" if age is None else f"last renewed {age:.0f} s ago"
                warning = (
                    f"took over stale lock from {other!r} ({since}, older than {self.ttl_s:g} s)"
                )
                transitions += 1
            body = self._body(
                now, resource_version=str(lease.metadata.resource_version), transitions=transitions
            )
            try:
                replaced = self.kube.call(
                    f"replace lease {self.namespace}/{self.name}",
                    self.kube.coordination.replace_namespaced_lease,
                    self.name,
                    self.namespace,
                    body,
                )
            except ApiError as err:
                if err.status == 409:  # someone wrote in between: re-read and decide again
                    continue
                raise
            return self._info(now, replaced, previous=other or None, warning=warning)
        lease = self._read()
        holder = str(lease.spec.holder_identity or "") if lease is not None and lease.spec else ""
        raise LockHeld(
            f"release {self.release_name!r}: lost the race for lease {self.namespace}/{self.name} "
            f"to {holder or 'another run'}",
            holder=holder,
        )

    def _info(
        self, now: datetime, lease: Any, *, previous: str | None = None, warning: str | None = None
    ) -> LockInfo:
        return LockInfo(
            namespace=self.namespace,
            name=self.name,
            holder=self.holder,
            acquired_at=now,
            resource_version=str(lease.metadata.resource_version),
            previous_holder=previous if previous != self.holder else None,
            warning=warning,
        )

    def holder_now(self) -> str | None:
        """Who holds the lease now (None when there is none). Raises ``ApiError``."""
        lease = self._read()
        if lease is None or lease.spec is None:
            return None
        return str(lease.spec.holder_identity or "") or None

    def release(self) -> bool:
        """Give the lock back ("finish", and every failure path). Idempotent.

        Deletes the Lease only if this holder still holds it, with a resourceVersion
        precondition so a takeover in between is never undone. Returns whether a lease was
        deleted. Raises ``ApiError``.
        """
        lease = self._read()
        if lease is None or lease.spec is None or lease.spec.holder_identity != self.holder:
            return False
        try:
            self.kube.call(
                f"delete lease {self.namespace}/{self.name}",
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
