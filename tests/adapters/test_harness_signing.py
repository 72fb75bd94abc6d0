"""The harness's "the evidence verifies, signature included": ``signing_key`` and
``assert_evidence_verifies(folder, allowed_signers=...)`` on bundles sealed here with
``ssh-keygen -Y sign`` (no sandbox needed). The helper must fail on what a team would not
accept: no signature, another key's signature, a file changed after the seal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runbook_lib.evidence.manifest import write_manifest
from runbook_sandbox.expect import assert_evidence_verifies
from runbook_sandbox.team import SigningKey, new_signing_key

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen (OpenSSH) not installed"
)


def _bundle(folder: Path, key: SigningKey | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "record.json").write_text('{"outcome": "recovered"}\n')
    (folder / "timeline.jsonl").write_text("{}\n")
    write_manifest(folder, signing_key=key.key if key is not None else None)
    return folder


def test_a_bundle_signed_with_the_key_verifies_signature_included(tmp_path: Path) -> None:
    key = new_signing_key(tmp_path / "team")
    folder = _bundle(tmp_path / "INC-1", key)
    assert (folder / "MANIFEST.sha256.sig").exists()
    assert_evidence_verifies(folder, allowed_signers=key.allowed_signers)


def test_an_unsigned_or_foreign_or_changed_bundle_does_not_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNBOOK_SIGNING_KEY", raising=False)
    team, stranger = new_signing_key(tmp_path / "team"), new_signing_key(tmp_path / "stranger")
    unsigned = _bundle(tmp_path / "INC-unsigned", None)
    assert_evidence_verifies(unsigned)  # the hashes alone hold ...
    with pytest.raises(AssertionError, match=r"unsigned|signature"):
        assert_evidence_verifies(unsigned, allowed_signers=team.allowed_signers)
    foreign = _bundle(tmp_path / "INC-foreign", stranger)
    with pytest.raises(AssertionError):
        assert_evidence_verifies(foreign, allowed_signers=team.allowed_signers)
    changed = _bundle(tmp_path / "INC-changed", team)
    (changed / "record.json").write_text('{"outcome": "not_recovered"}\n')
    with pytest.raises(AssertionError):
        assert_evidence_verifies(changed, allowed_signers=team.allowed_signers)
