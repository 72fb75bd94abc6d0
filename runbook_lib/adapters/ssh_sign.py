"""OpenSSH file signatures (``ssh-keygen -Y sign`` / ``-Y verify``) for evidence manifests.

The same signatures git uses for signed commits: a team signs with the SSH keys it already has
(a private key file, or a key held by ``ssh-agent`` named by its ``.pub`` file) and checks them
against an ``allowed_signers`` file it keeps in version control. The namespace ties a signature
to this use, so a signature made for a git commit or another tool never verifies a bundle.
Data goes through stdin/stdout, never through files in the bundle.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from runbook_lib.errors import CommandFailed

__all__ = ["NAMESPACE", "SignatureCheck", "SshSigner"]

NAMESPACE = "runbook-evidence"


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of ``SshSigner.verify``: ``ok`` with the signer's principal, or why not."""

    ok: bool
    principal: str
    message: str


class SshSigner:
    """Runs ``ssh-keygen -Y`` (argv, no shell) with a time limit."""

    def __init__(self, *, binary: str = "ssh-keygen", timeout_s: float = 30.0) -> None:
        self.binary = binary
        self.timeout_s = timeout_s

    def _run(self, argv: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                argv,
                input=data,
                capture_output=True,
                timeout=self.timeout_s,
                check=False,
                env={**os.environ, "SSH_ASKPASS_REQUIRE": "never"},
            )
        except FileNotFoundError as err:
            raise CommandFailed(
                f"{self.binary} not found: install OpenSSH (8.2 or later) to sign or verify",
                command=shlex.join(argv),
            ) from err
        except subprocess.TimeoutExpired as err:
            raise CommandFailed(
                f"{self.binary} timed out after {self.timeout_s:.0f} s (a passphrase prompt? "
                "use ssh-agent for a key with a passphrase)",
                command=shlex.join(argv),
                retryable=True,
            ) from err

    def sign(self, data: bytes, *, key: Path, namespace: str = NAMESPACE) -> bytes:
        """An armored SSH signature of ``data`` made with ``key``.

        ``key`` is a private key file, or the ``.pub`` of a key loaded in ``ssh-agent``
        (``SSH_AUTH_SOCK``). Raises ``CommandFailed`` naming the key when signing fails (no
        such file, a passphrase without an agent, the agent lacks the key).
        """
        if not key.is_file():
            raise CommandFailed(f"signing key {key}: no such file", command=self.binary)
        argv = [self.binary, "-q", "-Y", "sign", "-f", str(key), "-n", namespace]
        result = self._run(argv, data)
        signature = result.stdout
        if result.returncode != 0 or b"BEGIN SSH SIGNATURE" not in signature:
            raise CommandFailed(
                f"could not sign with {key} (exit {result.returncode})",
                command=shlex.join(argv),
                stderr=result.stderr.decode("utf-8", "replace"),
                returncode=result.returncode,
            )
        return signature

    def verify(
        self,
        data: bytes,
        signature: bytes,
        *,
        allowed_signers: Path,
        namespace: str = NAMESPACE,
    ) -> SignatureCheck:
        """Check ``signature`` over ``data`` against an ``allowed_signers`` file.

        The signer's principal is looked up in the file first (``-Y find-principals``), then
        the signature verified for that principal and namespace. A bad or foreign signature is
        ``ok=False`` with ssh-keygen's reason; a missing program raises ``CommandFailed``.
        """
        with tempfile.TemporaryDirectory(prefix="runbook-verify-") as scratch:
            sig_path = Path(scratch) / "manifest.sig"
            sig_path.write_bytes(signature)
            find = [
                self.binary,
                "-Y",
                "find-principals",
                "-s",
                str(sig_path),
                "-f",
                str(allowed_signers),
            ]
            found = self._run(find, b"")
            principals = found.stdout.decode("utf-8", "replace").split()
            if found.returncode != 0 or not principals:
                reason = found.stderr.decode("utf-8", "replace").strip()
                return SignatureCheck(
                    False,
                    "",
                    f"the signing key is not in {allowed_signers}"
                    + (f" ({reason})" if reason else ""),
                )
            for principal in principals:
                argv = [
                    self.binary,
                    "-Y",
                    "verify",
                    "-f",
                    str(allowed_signers),
                    "-I",
                    principal,
                    "-n",
                    namespace,
                    "-s",
                    str(sig_path),
                ]
                result = self._run(argv, data)
                if result.returncode == 0:
                    return SignatureCheck(True, principal, f"good signature by {principal}")
            reason = result.stderr.decode("utf-8", "replace").strip()
            return SignatureCheck(
                False, "", f"the signature does not match the manifest ({reason})"
            )
