"""Check an evidence bundle against its SHA-256 manifest and SSH signature

Check every file of an incident's evidence folder against MANIFEST.sha256 and, with
--allowed-signers, the manifest's signature (MANIFEST.sha256.sig, made with ssh-keygen -Y
sign). Exit 0 when it all matches; 2 on any problem, one line each: a file modified, missing
or added, a symlink, a manifest in a subfolder, an empty, malformed or non-UTF-8 manifest, no
manifest, an unsigned or badly signed bundle. Without --allowed-signers only the hashes are
checked, and the output says the bundle is not verified as a whole (whoever can rewrite a file
can rewrite its manifest too).

example:
  runbook verify-evidence evidence/rollback-app-20261120T140312Z --allowed-signers team.signers
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from runbook_lib.cli.main import add_command
from runbook_lib.core.exit_status import BAD_INPUT, OK
from runbook_lib.errors import CommandFailed, InputFileError
from runbook_lib.evidence.manifest import MANIFEST_NAME, verify_manifest

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(subparsers, "verify-evidence", __doc__)
    parser.add_argument("directory", metavar="DIR", type=Path, help="<output_dir>/<incident_id>")
    parser.add_argument(
        "--allowed-signers",
        dest="allowed_signers",
        metavar="FILE",
        type=Path,
        default=None,
        help=(
            "OpenSSH allowed-signers file (one '<principal> <key type> <public key>' per line); "
            "the bundle must then be signed by one of its keys (default: hashes only)"
        ),
    )
    # The parameter's own spelling, accepted quietly (one spelling shown).
    parser.add_argument(
        "--allowed_signers", dest="allowed_signers", type=Path, help=argparse.SUPPRESS
    )
    parser.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    directory: Path = args.directory
    allowed: Path | None = args.allowed_signers
    try:
        check = verify_manifest(directory, allowed_signers=allowed)
    except InputFileError as err:
        # Its first line names the file (and row); the "command:" detail repeats the path.
        print(f"runbook verify-evidence: {str(err).splitlines()[0]}", file=sys.stderr)
        print(f"{directory}: NOT verified", file=sys.stderr)
        return BAD_INPUT
    except CommandFailed as err:
        print(f"runbook verify-evidence: {err}", file=sys.stderr)
        return BAD_INPUT
    except OSError as err:
        print(f"runbook verify-evidence: {directory}: {err}", file=sys.stderr)
        return BAD_INPUT
    if not check.ok:
        for problem in check.problems():
            print(problem)
        print(
            f"{directory}: NOT verified: the evidence changed since it was sealed, or the "
            "seal is not trustworthy",
            file=sys.stderr,
        )
        return BAD_INPUT
    print(f"{directory}: {check.checked} files match {MANIFEST_NAME}")
    if check.signed_and_verified:
        print(f"{directory}: {check.signature_detail} (namespace runbook-evidence): verified")
    else:
        print(f"{directory}: {check.signature_detail}")
        print(f"{directory}: hashes only; the bundle as a whole is unverified")
    return OK
