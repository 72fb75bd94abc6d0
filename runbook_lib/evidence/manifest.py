"""The evidence bundle's SHA-256 manifest and its signature: written last, checked by
``runbook verify-evidence`` (Post-Rollback Actions, step 2: preserve the evidence).

Format: the ``sha256sum`` text format (``<hex>  <relative path>``, sorted by path), so the bundle
can also be checked on a machine without this project: ``sha256sum -c MANIFEST.sha256``. Hashes
alone only catch accidents: whoever can rewrite a file can rewrite the manifest too. With a
signing key (``signing_key`` or ``RUNBOOK_SIGNING_KEY``: an SSH private key, or the ``.pub`` of
a key in ``ssh-agent``) the manifest is also signed with ``ssh-keygen -Y sign`` into
``MANIFEST.sha256.sig``, and ``verify_manifest(..., allowed_signers=FILE)`` then detects such a
rewrite. Symlinks, manifests in subfolders, files missing or added, an empty manifest and a
manifest that is not UTF-8 all fail verification.

``seal`` is the one seal policy every ending uses (the steps, ``runbook run``, a later run
sealing a crashed one, the receiver): a torn timeline line cut off first (the cut recorded),
then the manifest signed when a key is set, else (signing failed) unsigned with the reason
recorded; and "sealed" only when the folder then verifies against what was written.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runbook_lib.adapters.ssh_sign import NAMESPACE, SignatureCheck, SshSigner
from runbook_lib.errors import CommandFailed, InputFileError, ParameterError
from runbook_lib.evidence.files import append_text, remove_file, write_bytes, write_text
from runbook_lib.record.ending import Seal
from runbook_lib.record.timeline import repair_torn_tail

__all__ = [
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "SIGNING_KEY_ENV",
    "ManifestCheck",
    "check_signing_key",
    "seal",
    "signing_key_from",
    "verify_manifest",
    "write_manifest",
]

MANIFEST_NAME = "MANIFEST.sha256"
SIGNATURE_NAME = "MANIFEST.sha256.sig"
SIGNING_KEY_ENV = "RUNBOOK_SIGNING_KEY"
_SEALS = (MANIFEST_NAME, SIGNATURE_NAME)
_TIMELINE = "timeline.jsonl"
_LINE = re.compile(r"(?P<digest>[0-9a-f]{64}) [ *](?P<path>.+)")


def _read_nofollow(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        return fh.read()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class _Tree:
    files: tuple[str, ...]  # regular files, the top-level seals left out
    symlinks: tuple[str, ...]
    nested: tuple[str, ...]  # manifests or signatures below the top level
    other: tuple[str, ...]  # sockets, fifos, devices


def _walk(directory: Path) -> _Tree:
    files: list[str] = []
    symlinks: list[str] = []
    nested: list[str] = []
    other: list[str] = []
    for folder, dirs, names in os.walk(directory, followlinks=False):
        base = Path(folder)
        for name in dirs + names:
            path = base / name
            rel = path.relative_to(directory).as_posix()
            if path.is_symlink():
                symlinks.append(rel)
            elif name in dirs:
                continue
            elif not path.is_file():
                other.append(rel)
            elif rel in _SEALS:
                continue
            else:
                files.append(rel)
                if name in _SEALS:
                    nested.append(rel)
    return _Tree(tuple(sorted(files)), tuple(sorted(symlinks)), tuple(sorted(nested)),
                 tuple(sorted(other)))


def signing_key_from(
    value: str | Path | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The signing key to use: ``value``, else ``RUNBOOK_SIGNING_KEY``; None for unsigned.

    An empty ``value`` ("") means unsigned even when the variable is set. ``~`` is expanded.
    """
    if value is None:
        value = (os.environ if environ is None else environ).get(SIGNING_KEY_ENV, "")
    text = str(value).strip()
    return Path(text).expanduser() if text else None


def check_signing_key(
    value: str | Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    signer: SshSigner | None = None,
) -> Path | None:
    """Resolve the signing key and prove it signs, before anything changes (preflight).

    Returns the key (None: unsigned). Raises ``ParameterError`` naming ``signing_key`` (or
    ``RUNBOOK_SIGNING_KEY``) with ssh-keygen's reason, so a bad key stops a run at its start
    instead of failing every seal after the rollback.
    """
    key = signing_key_from(value, environ)
    if key is None:
        return None
    name = "signing_key" if value else SIGNING_KEY_ENV
    try:
        (signer or SshSigner()).sign(b"runbook signing key check\n", key=key)
    except CommandFailed as err:
        reason = (err.stderr.strip().splitlines() or [str(err).splitlines()[0]])[-1]
        raise ParameterError([f"{name}: cannot sign with {key}: {reason}"]) from err
    return key


def write_manifest(
    directory: Path,
    *,
    signing_key: str | Path | None = None,
    signer: SshSigner | None = None,
) -> Path:
    """Hash every file under ``directory`` into ``MANIFEST.sha256`` and sign it if a key is set.

    ``signing_key``: an SSH private key path or an agent key's ``.pub``; None takes
    ``RUNBOOK_SIGNING_KEY``; "" forces an unsigned manifest. Rewrites the manifest from scratch
    (atomically, 0640), so call it after the last file is written; a signature of an older
    manifest is removed first, so a failed signing never leaves a stale one. Symlinks are not
    followed or listed (``verify_manifest`` reports them). Raises ``OSError`` if the folder
    cannot be read or written, ``CommandFailed`` if signing fails (the manifest is written).
    """
    tree = _walk(directory)
    lines = [f"{_sha256(directory / rel)}  {rel}\n" for rel in tree.files if "\n" not in rel]
    text = "".join(lines)
    remove_file(directory, SIGNATURE_NAME)
    manifest = write_text(directory, MANIFEST_NAME, text)
    key = signing_key_from(signing_key)
    if key is not None:
        signature = (signer or SshSigner()).sign(text.encode("utf-8"), key=key)
        write_bytes(directory, SIGNATURE_NAME, signature)
    return manifest


@dataclass(frozen=True)
class ManifestCheck:
    """The outcome of checking a bundle against its manifest (and signature, if asked).

    ``signature``: ``"unsigned"``, ``"not checked"`` (signed, no allowed-signers file given),
    ``"good"`` or ``"bad"``; ``signature_detail`` says by whom or why not. ``ok`` when every
    hash matches, nothing is missing, added, symlinked or nested, and the signature (when
    checked) is good.
    """

    checked: int
    modified: tuple[str, ...]
    missing: tuple[str, ...]
    added: tuple[str, ...]
    symlinks: tuple[str, ...] = ()
    nested: tuple[str, ...] = ()
    signature: str = "unsigned"
    signature_detail: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems()

    @property
    def signed_and_verified(self) -> bool:
        return self.signature == "good"

    def problems(self) -> list[str]:
        """One line per problem, e.g. ``modified: record.json``."""
        out = (
            [f"modified: {p}" for p in self.modified]
            + [f"missing: {p}" for p in self.missing]
            + [f"added (not in manifest): {p}" for p in self.added if p not in self.nested]
            + [f"symlink (not allowed in a bundle): {p}" for p in self.symlinks]
            + [f"manifest in a subfolder (not allowed): {p}" for p in self.nested]
        )
        if self.signature in ("bad", "missing"):
            out.append(f"signature: {self.signature_detail}")
        return out


def _bad(manifest: Path, message: str, row: int | None = None) -> InputFileError:
    return InputFileError(message, path=str(manifest), row=row)


def _parse(manifest: Path) -> dict[str, str]:
    try:
        raw = _read_nofollow(manifest)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _bad(manifest, "the manifest is a symlink (not allowed)") from err
        raise _bad(manifest, f"cannot read the manifest: {err.strerror or err}") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _bad(manifest, f"the manifest is not UTF-8 (byte {err.start})") from err
    expected: dict[str, str] = {}
    for row, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise _bad(manifest, "expected '<sha256>  <path>'", row)
        rel = match.group("path")
        parts = PurePosixPath(rel).parts
        if (
            rel.startswith("/")
            or "\\" in rel
            or ".." in parts
            or PurePosixPath(rel).as_posix() != rel
        ):
            raise _bad(manifest, f"path outside the bundle or not normalised: {rel!r}", row)
        if rel in expected:
            raise _bad(manifest, f"{rel!r} is listed twice", row)
        expected[rel] = match.group("digest")
    if not expected:
        raise _bad(manifest, "the manifest lists no files (an empty bundle proves nothing)")
    return expected


def _check_signature(
    directory: Path, manifest_bytes: bytes, allowed_signers: Path | None, signer: SshSigner
) -> tuple[str, str]:
    sig_path = directory / SIGNATURE_NAME
    try:
        signature = _read_nofollow(sig_path)
    except FileNotFoundError:
        if allowed_signers is None:
            return "unsigned", "unsigned: hashes only, a rewrite of a file and the manifest "\
                "together would pass"
        return "missing", f"no {SIGNATURE_NAME}: the bundle is unsigned"
    except OSError as err:
        return "bad", f"cannot read {SIGNATURE_NAME}: {err.strerror or err}"
    if allowed_signers is None:
        return "not checked", (
            f"signed ({SIGNATURE_NAME}) but not verified: give --allowed-signers FILE"
        )
    check: SignatureCheck = signer.verify(
        manifest_bytes, signature, allowed_signers=allowed_signers, namespace=NAMESPACE
    )
    return ("good" if check.ok else "bad"), check.message


def verify_manifest(
    directory: Path,
    *,
    allowed_signers: Path | None = None,
    signer: SshSigner | None = None,
) -> ManifestCheck:
    """Compare every file under ``directory`` with ``MANIFEST.sha256`` (and its signature).

    With ``allowed_signers`` (an OpenSSH allowed-signers file) the signature must be present
    and good. Raises ``InputFileError`` when the folder or manifest cannot be used at all: no
    such folder, a symlinked folder, no manifest, not UTF-8, a malformed line or path, an
    empty manifest. Raises ``CommandFailed`` when ssh-keygen is missing.
    """
    if directory.is_symlink():
        raise _bad(directory, "the evidence folder is a symlink (not allowed)")
    if not directory.is_dir():
        raise _bad(directory, "no such evidence folder")
    if allowed_signers is not None and not allowed_signers.is_file():
        raise _bad(allowed_signers, "no such allowed-signers file")
    manifest = directory / MANIFEST_NAME
    expected = _parse(manifest)
    tree = _walk(directory)
    present = set(tree.files)
    modified = tuple(
        rel
        for rel, digest in sorted(expected.items())
        if rel in present and _sha256(directory / rel) != digest
    )
    missing = tuple(sorted(set(expected) - present - set(tree.symlinks)))
    added = tuple(sorted((present | set(tree.other)) - set(expected)))
    signature, detail = _check_signature(
        directory, _read_nofollow(manifest), allowed_signers, signer or SshSigner()
    )
    return ManifestCheck(
        checked=len(expected),
        modified=modified,
        missing=missing,
        added=added,
        symlinks=tree.symlinks,
        nested=tree.nested,
        signature=signature,
        signature_detail=detail,
    )


def _first_line(err: BaseException) -> str:
    stderr = getattr(err, "stderr", "") or ""
    lines = [line for line in str(stderr).strip().splitlines() if line.strip()]
    return lines[-1] if lines else (str(err).splitlines() or [type(err).__name__])[0]


def _repair(directory: Path) -> str:
    """Cut a torn last timeline line off (recorded on the timeline); what was done, or ""."""
    if not (directory / _TIMELINE).is_file():
        return ""
    try:
        repair = repair_torn_tail(
            directory / _TIMELINE,
            append=lambda _path, text: append_text(directory, _TIMELINE, text),
        )
    except OSError as err:
        return f"the timeline's torn last line could not be cut off: {err.strerror or err}"
    if repair is None:
        return ""
    note = f"the timeline's torn line {repair.line} ({repair.removed_bytes} bytes) was cut off"
    return note + ("" if repair.recorded else " (the cut could not be noted on the timeline)")


def seal(
    directory: Path,
    *,
    signing_key: str | Path | None = None,
    on_unsigned: Callable[[str], object] | None = None,
    signer: SshSigner | None = None,
) -> Seal:
    """Seal the bundle in ``directory``: the one policy, and the truth about it.

    1. A torn last line of ``timeline.jsonl`` is cut off and the cut noted on the timeline.
    2. ``MANIFEST.sha256`` is written, signed with ``signing_key`` (``write_manifest``'s
       rules). When signing fails, ``on_unsigned(reason)`` is called first (e.g. a timeline
       warning, which the manifest then covers) and the manifest is written unsigned.
    3. The folder is verified against the manifest. ``Seal.sealed`` only when it was written
       and verifies; otherwise ``why`` and ``problems`` say what is missing or changed.

    Never raises.
    """
    repaired = _repair(directory)
    key = signing_key_from(signing_key)
    signed, why, written = False, "", True
    try:
        write_manifest(directory, signing_key=signing_key, signer=signer)
        signed = key is not None
    except CommandFailed as err:
        why = f"signing with {key} failed: {_first_line(err)}"
        if on_unsigned is not None:
            on_unsigned(why)
        try:
            write_manifest(directory, signing_key="")
        except OSError as again:
            why += f"; could not write {MANIFEST_NAME}: {again.strerror or again}"
            written = False
    except OSError as err:
        why, written = f"could not write {MANIFEST_NAME}: {err.strerror or err}", False
    try:
        check = verify_manifest(directory, signer=signer)
    except (InputFileError, CommandFailed, OSError) as err:
        return Seal(False, False, why or str(err), (str(err),) if why else (), repaired)
    problems = tuple(check.problems())
    if not written or problems:
        if written and not why:
            why = "the folder changed while it was sealed"
        return Seal(False, False, why, problems, repaired)
    return Seal(True, signed, why, (), repaired)
