"""Signed manifests: real ``ssh-keygen`` keys made in tmp folders, and every tamper case."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_in_process import runbook

from runbook_lib.cli.main import main
from runbook_lib.evidence.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    SIGNING_KEY_ENV,
    verify_manifest,
    write_manifest,
)

pytestmark = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="ssh-keygen (OpenSSH) not installed"
)


def _keygen(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True
    )
    return key


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "keys"
    folder.mkdir()
    team, stranger = _keygen(folder, "oncall"), _keygen(folder, "stranger")
    allowed = folder / "allowed_signers"
    public = team.with_suffix(".pub").read_text().split()
    allowed.write_text(
        f'oncall@example.org namespaces="runbook-evidence" {public[0]} {public[1]}\n'
    )
    return {"team": team, "stranger": stranger, "allowed": allowed}


@pytest.fixture
def bundle(tmp_path: Path, keys: dict[str, Path]) -> Path:
    folder = tmp_path / "evidence" / "INC-1"
    (folder / "plots").mkdir(parents=True)
    (folder / "record.json").write_text('{"outcome": "recovered"}\n')
    (folder / "plots" / "before.png").write_bytes(b"\x89PNG fake")
    (folder / "timeline.jsonl").write_text("{}\n")
    write_manifest(folder, signing_key=keys["team"])
    return folder


def _verify(
    folder: Path, allowed: Path | None, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    argv = ["verify-evidence", str(folder)]
    if allowed is not None:
        argv += ["--allowed-signers", str(allowed)]
    status = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return status, captured.out + captured.err


def _rewrite_consistently(folder: Path, rel: str, text: str) -> None:
    """What someone with write access does: change a file and recompute its hash."""
    (folder / rel).write_text(text)
    lines = []
    for line in (folder / MANIFEST_NAME).read_text().splitlines():
        digest, _, path = line.partition("  ")
        if path == rel:
            digest = hashlib.sha256(text.encode()).hexdigest()
        lines.append(f"{digest}  {path}\n")
    (folder / MANIFEST_NAME).write_text("".join(lines))


def test_signed_bundle_verifies(
    bundle: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert (bundle / SIGNATURE_NAME).read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    status, out = _verify(bundle, keys["allowed"], capsys)
    assert status == 0, out
    assert "3 files match" in out
    assert "good signature by oncall@example.org" in out
    assert "unverified" not in out


def test_without_allowed_signers_only_hashes_are_checked_and_it_says_so(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = _verify(bundle, None, capsys)
    assert status == 0
    assert "not verified: give --allowed-signers" in out
    assert "unverified" in out


def _rewrite_a_file_and_its_hash(bundle: Path, keys: dict[str, Path]) -> None:
    _rewrite_consistently(bundle, "record.json", '{"outcome": "nothing happened"}\n')


def _reseal_with_a_key_not_in_allowed_signers(bundle: Path, keys: dict[str, Path]) -> None:
    (bundle / "record.json").write_text('{"outcome": "forged"}\n')
    write_manifest(bundle, signing_key=keys["stranger"])


def _sign_for_another_namespace(bundle: Path, keys: dict[str, Path]) -> None:
    # A signature the team's key made for git (namespace "git") must not seal a bundle.
    manifest = (bundle / MANIFEST_NAME).read_bytes()
    made = subprocess.run(
        ["ssh-keygen", "-q", "-Y", "sign", "-f", str(keys["team"]), "-n", "git"],
        input=manifest, capture_output=True, check=True,
    )  # fmt: skip
    (bundle / SIGNATURE_NAME).write_bytes(made.stdout)


def _remove_the_signature(bundle: Path, keys: dict[str, Path]) -> None:
    (bundle / SIGNATURE_NAME).unlink()


@pytest.mark.parametrize(
    ("tamper", "said"),
    [
        pytest.param(
            _rewrite_a_file_and_its_hash,
            "signature: the signature does not match the manifest",
            id="file-and-manifest-rewritten",
        ),
        pytest.param(_reseal_with_a_key_not_in_allowed_signers, "not in", id="stranger-key"),
        pytest.param(_sign_for_another_namespace, "namespace does not match", id="other-namespace"),
        pytest.param(_remove_the_signature, "unsigned", id="unsigned"),
    ],
)
def test_a_bundle_the_team_did_not_seal_fails_though_its_hashes_match(
    bundle: Path,
    keys: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    tamper: Callable[[Path, dict[str, Path]], None],
    said: str,
) -> None:
    tamper(bundle, keys)
    assert verify_manifest(bundle).ok  # hashes alone cannot tell
    status, out = _verify(bundle, keys["allowed"], capsys)
    assert status == 2, out
    assert said in out
    assert "NOT verified" in out


@pytest.mark.parametrize(
    "tamper",
    ["nested-manifest", "symlink-file", "symlink-folder", "missing", "extra", "modified"],
)
def test_tampered_bundles_fail(
    bundle: Path, keys: dict[str, Path], tmp_path: Path, tamper: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_text("x")
    expected = {
        "nested-manifest": "manifest in a subfolder (not allowed): plots/MANIFEST.sha256",
        "symlink-file": "symlink (not allowed in a bundle): record.json",
        "symlink-folder": "symlink (not allowed in a bundle): plots",
        "missing": "missing: timeline.jsonl",
        "extra": "added (not in manifest): notes.txt",
        "modified": "modified: record.json",
    }[tamper]
    if tamper == "nested-manifest":
        (bundle / "plots" / MANIFEST_NAME).write_text("")
    elif tamper == "symlink-file":
        target = outside / "record.json"
        target.write_bytes((bundle / "record.json").read_bytes())
        (bundle / "record.json").unlink()
        (bundle / "record.json").symlink_to(target)
    elif tamper == "symlink-folder":
        shutil.move(bundle / "plots", outside / "plots")
        (bundle / "plots").symlink_to(outside / "plots", target_is_directory=True)
    elif tamper == "missing":
        (bundle / "timeline.jsonl").unlink()
    elif tamper == "extra":
        (bundle / "notes.txt").write_text("added later")
    else:
        (bundle / "record.json").write_text("{}\n")
    for allowed in (keys["allowed"], None):
        status, out = _verify(bundle, allowed, capsys)
        assert status == 2, out
        assert expected in out


def test_symlinked_bundle_folder_fails(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "link"
    link.symlink_to(bundle, target_is_directory=True)
    status, out = _verify(link, None, capsys)
    assert status == 2
    assert "symlink" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "lists no files"),
        (b"\xff\xfe" + b"0" * 64 + b"  record.json\n", "not UTF-8"),
        (b"0" * 64 + b"  ../../etc/passwd\n", "outside the bundle"),
        (b"0" * 64 + b"  /etc/passwd\n", "outside the bundle"),
        (b"nonsense\n", "expected '<sha256>  <path>'"),
    ],
    ids=["empty", "not-utf8", "dotdot", "absolute", "malformed"],
)
def test_unusable_manifests_fail_cleanly(
    bundle: Path, content: bytes, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (bundle / MANIFEST_NAME).write_bytes(content)
    status, out = _verify(bundle, None, capsys)
    assert status == 2
    assert message in out


def test_empty_folder_and_missing_folder_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    write_manifest(empty, signing_key="")
    assert _verify(empty, None, capsys)[0] == 2
    status, out = _verify(tmp_path / "nope", None, capsys)
    assert status == 2
    assert "no such evidence folder" in out


def test_signing_key_from_the_environment_and_resealing_drops_a_stale_signature(
    tmp_path: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    folder = tmp_path / "INC-2"
    folder.mkdir()
    (folder / "record.md").write_text("# record\n")
    monkeypatch.setenv(SIGNING_KEY_ENV, str(keys["team"]))
    write_manifest(folder)
    assert _verify(folder, keys["allowed"], capsys)[0] == 0
    write_manifest(folder, signing_key="")  # explicitly unsigned: no stale signature remains
    assert not (folder / SIGNATURE_NAME).exists()
    monkeypatch.delenv(SIGNING_KEY_ENV)
    (folder / "more.txt").write_text("x")
    write_manifest(folder)
    assert not (folder / SIGNATURE_NAME).exists()


def test_signing_with_a_key_held_by_ssh_agent(
    tmp_path: Path, keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    if shutil.which("ssh-agent") is None or shutil.which("ssh-add") is None:
        pytest.skip("ssh-agent not installed")
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            subprocess.run(["sleep", "0.05"], check=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        subprocess.run(["ssh-add", "-q", str(keys["team"])], check=True, env=os.environ.copy())
        # Only the public half on disk next to the bundle's maker: the agent holds the key.
        public = tmp_path / "agent-only.pub"
        shutil.copy(keys["team"].with_suffix(".pub"), public)
        folder = tmp_path / "INC-3"
        folder.mkdir()
        (folder / "record.md").write_text("# record\n")
        write_manifest(folder, signing_key=public)
        assert _verify(folder, keys["allowed"], capsys)[0] == 0
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=10)


def test_a_bad_signing_key_names_the_key(tmp_path: Path) -> None:
    from runbook_lib.errors import CommandFailed

    folder = tmp_path / "INC-4"
    folder.mkdir()
    (folder / "record.md").write_text("x")
    with pytest.raises(CommandFailed, match="no-such-key"):
        write_manifest(folder, signing_key=tmp_path / "no-such-key")
    assert (folder / MANIFEST_NAME).exists()  # the manifest is still written, unsigned
    assert not (folder / SIGNATURE_NAME).exists()


def test_check_signing_key_names_the_parameter_before_anything_runs(
    tmp_path: Path, keys: dict[str, Path]
) -> None:
    from runbook_lib.errors import ParameterError
    from runbook_lib.evidence.manifest import check_signing_key

    assert check_signing_key("", {SIGNING_KEY_ENV: str(keys["team"])}) is None
    assert check_signing_key(None, {}) is None
    assert check_signing_key(keys["team"], {}) == keys["team"]
    assert check_signing_key(None, {SIGNING_KEY_ENV: str(keys["team"])}) == keys["team"]
    not_a_key = tmp_path / "not-a-key"
    not_a_key.write_text("hello\n")
    with pytest.raises(ParameterError, match="signing_key: cannot sign with"):
        check_signing_key(not_a_key, {})
    with pytest.raises(ParameterError, match=f"{SIGNING_KEY_ENV}: cannot sign"):
        check_signing_key(None, {SIGNING_KEY_ENV: str(tmp_path / "missing")})


def test_runbook_run_refuses_a_key_that_cannot_sign_before_anything_runs(tmp_path: Path) -> None:
    # ssh-keygen is asked, then the command ends with exit 2 before papermill starts a kernel.
    replay = Path(__file__).resolve().parents[2] / "notebooks" / "data" / "healthy_deploy.csv"
    result = runbook(
        "run", "rollback", "--quiet", "--output-dir", str(tmp_path / "ev"),
        "-r", "replay_csv", str(replay),
        "-r", "expected_cluster", "kwok-runbook",
        "-r", "deployed_at", "2026-11-20T14:00:00+00:00",
        "-r", "signing_key", str(tmp_path / "no-such-key"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "signing_key: cannot sign with" in result.stderr
    assert not (tmp_path / "ev").exists()
