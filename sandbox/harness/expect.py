"""What a team asserts after a game-day run, said as the team would say it.

Each helper checks the cluster or the evidence as a person would (``helm history``, the pods'
images, the Lease, ``runbook verify-evidence``) and fails with a sentence naming what it saw.

    ending = run_runbook(manual_reason="game day")
    assert_rolled_back(release, ending, to_revision=1)
    assert_recovered(ending)
    assert_evidence_verifies(run_runbook.last.folder)
    assert_lock_free(release)

With the ``signing_key`` fixture the run signs its manifest, and the signature is checked too:

    ending = run_runbook(signing_key=str(signing_key.key))
    assert_evidence_verifies(run_runbook.last.folder, allowed_signers=signing_key.allowed_signers)
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.record.ending import Cluster, Ending
from runbook_lib.record.facts import Outcome
from runbook_sandbox.team import TeamRelease, runbook_command

__all__ = [
    "assert_evidence_verifies",
    "assert_lock_free",
    "assert_nothing_changed",
    "assert_recovered",
    "assert_rolled_back",
    "images_of_revision",
]


def images_of_revision(release: TeamRelease, revision: int) -> set[str]:
    """The images revision ``revision`` of the release gives its Deployment."""
    manifest = release.helm("get", "manifest", release.name, "--revision", str(revision))
    for doc in yaml.safe_load_all(manifest):
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "Deployment"
            and doc["metadata"]["name"] == release.deployment
        ):
            containers: list[dict[str, Any]] = doc["spec"]["template"]["spec"]["containers"]
            return {c["image"] for c in containers}
    raise AssertionError(f"revision {revision} has no Deployment {release.deployment}")


def assert_rolled_back(release: TeamRelease, ending: Ending, *, to_revision: int) -> None:
    """This run rolled the release back to ``to_revision``: helm history's newest revision
    says "Rollback to N", and the pods run that revision's images."""
    applied = ending.cluster is Cluster.ROLLED_BACK or (
        ending.cluster is Cluster.READ_BACK and ending.changed_cluster is True
    )
    assert applied, f"the run did not roll back: {ending.cluster_sentence}"
    newest = max(release.history(), key=lambda r: r["revision"])
    said = str(newest["description"])
    assert said == f"Rollback to {to_revision}", f"helm history's newest revision says {said!r}"
    want = images_of_revision(release, to_revision)
    release.wait_for_one_template()
    assert release.images() == want, f"the pods run {release.images()}, not {want}"


def assert_recovered(ending: Ending) -> None:
    """The run verified the recovery (its outcome is ``recovered``)."""
    failure = f"; {ending.failure.error_type}: {ending.failure.message}" if ending.failure else ""
    assert ending.outcome is Outcome.RECOVERED, f"outcome {ending.outcome}{failure}"


def assert_evidence_verifies(
    folder: Path, *, signed: bool = False, allowed_signers: Path | None = None
) -> None:
    """``runbook verify-evidence FOLDER`` passes: every file matches the sealed manifest.
    With ``allowed_signers`` (``SigningKey.allowed_signers``) the manifest's SSH signature
    must be there and made by a key that file allows (``verify-evidence --allowed-signers``);
    ``signed`` only asks that a signature file exists."""
    argv = [*runbook_command(), "verify-evidence", str(folder)]
    if allowed_signers is not None:
        argv += ["--allowed-signers", str(allowed_signers)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"verify-evidence {folder}: {done.stdout}{done.stderr}"
    if signed or allowed_signers is not None:
        assert (folder / "MANIFEST.sha256.sig").exists(), f"{folder}: the manifest is unsigned"


def assert_lock_free(release: TeamRelease) -> None:
    """Nobody holds the release's rollback Lease."""
    holder = release.lease_holder()
    assert holder is None, f"Lease {release.lease} is held by {holder!r}"


def assert_nothing_changed(release: TeamRelease, before: tuple[Any, ...]) -> None:
    """The release is as ``release.snapshot()`` found it: revisions, images, Lease."""
    after = release.snapshot()
    assert after == before, f"the release changed: {before} -> {after}"
