"""``./migrate``: the demo app's schema migrations (Alembic, SQLite), CLI as in CONTRACTS.md.

    ./migrate version          print "<n> <revision>" (n = migrations applied; "0 base" if none)
    ./migrate up [N]           apply the next N migrations (default: all pending)
    ./migrate down N           revert the last N migrations
    ./migrate for-app VERSION  move to the schema app VERSION needs (sandbox/traffic/versions.yaml)

The database is the SQLite file ``$MIGRATE_DB`` (default ``$RUNBOOK_SANDBOX_STATE/app.db``, else
``sandbox/.state/app.db``). Exit status: 0 done (also when there was nothing to do), 1 refused or
failed (nothing or only whole migrations applied), 2 usage error, 3 missing Python packages.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# sandbox/ in a checkout, runbook_sandbox/data when installed: the same layout below it.
SANDBOX = HERE.parent
VERSIONS_FILE = SANDBOX / "traffic" / "versions.yaml"

EXIT_REFUSED, EXIT_USAGE, EXIT_MISSING = 1, 2, 3


def database_path() -> Path:
    explicit = os.environ.get("MIGRATE_DB")
    if explicit:
        return Path(explicit)
    state = os.environ.get("RUNBOOK_SANDBOX_STATE")
    return (Path(state) if state else SANDBOX / ".state") / "app.db"


def database_url() -> str:
    return f"sqlite:///{database_path()}"


class Refused(Exception):
    """The request cannot be done as asked; nothing was changed."""


def schema_for_app(version: str) -> int:
    """Number of migrations app ``version`` needs (``schema`` in versions.yaml)."""
    import yaml

    versions = (yaml.safe_load(VERSIONS_FILE.read_text()) or {}).get("versions") or {}
    wanted = version if version.startswith("v") else f"v{version}"
    spec = versions.get(wanted)
    if not spec or "schema" not in spec:
        known = ", ".join(sorted(v for v, s in versions.items() if "schema" in (s or {})))
        raise Refused(f"unknown app version {version!r} (known: {known})")
    return int(spec["schema"])


class Migrations:
    """The linear chain of revisions and where the database stands on it."""

    def __init__(self) -> None:
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        db = database_path()
        db.parent.mkdir(parents=True, exist_ok=True)
        self.config = Config()
        self.config.set_main_option("script_location", str(HERE))
        self.config.set_main_option("sqlalchemy.url", database_url())
        script = ScriptDirectory.from_config(self.config)
        self.chain = [rev.revision for rev in reversed(list(script.walk_revisions()))]
        self.docs = {rev.revision: (rev.doc or "").strip() for rev in script.walk_revisions()}

    def applied(self) -> int:
        from alembic.runtime.migration import MigrationContext
        from sqlalchemy import create_engine

        engine = create_engine(database_url())
        try:
            with engine.connect() as conn:
                current = MigrationContext.configure(conn).get_current_revision()
        finally:
            engine.dispose()
        return 0 if current is None else self.chain.index(current) + 1

    def label(self, n: int) -> str:
        return f"{n} {self.chain[n - 1] if n else 'base'}"

    def move_to(self, target: int) -> None:
        from alembic import command

        now = self.applied()
        if not 0 <= target <= len(self.chain):
            raise Refused(f"no schema {target}: there are {len(self.chain)} migrations")
        if target == now:
            print(f"schema already at {self.label(now)}; nothing to do")
            return
        if target > now:
            for n in range(now + 1, target + 1):
                command.upgrade(self.config, self.chain[n - 1])
                print(f"applied {self.chain[n - 1]}: {self.docs[self.chain[n - 1]]}")
        else:
            for n in range(now, target, -1):
                command.downgrade(self.config, self.chain[n - 2] if n > 1 else "base")
                print(f"reverted {self.chain[n - 1]}: {self.docs[self.chain[n - 1]]}")
        print(f"schema {self.label(now)} -> {self.label(target)}")


def _parser() -> argparse.ArgumentParser:
    def count(text: str) -> int:
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
        return value

    parser = argparse.ArgumentParser(
        prog="migrate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("version", help="print '<n> <revision>'")
    up = sub.add_parser("up", help="apply N more migrations (default: all)")
    up.add_argument("n", nargs="?", type=count)
    down = sub.add_parser("down", help="revert the last N migrations")
    down.add_argument("n", type=count)
    app = sub.add_parser("for-app", help="migrate to the schema app VERSION needs")
    app.add_argument("app_version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)  # exits 2 on usage errors
    try:
        migrations = Migrations()
    except ImportError as err:
        print(f"migrate: {err}; install the project (make install)", file=sys.stderr)
        return EXIT_MISSING
    try:
        now = migrations.applied()
        if args.command == "version":
            print(migrations.label(now))
        elif args.command == "up":
            pending = len(migrations.chain) - now
            if args.n is not None and args.n > pending:
                raise Refused(
                    f"cannot apply {args.n}: {pending} pending at {migrations.label(now)}"
                )
            migrations.move_to(now + (pending if args.n is None else args.n))
        elif args.command == "down":
            if args.n > now:
                raise Refused(f"cannot revert {args.n}: only {now} applied")
            migrations.move_to(now - args.n)
        else:
            migrations.move_to(schema_for_app(args.app_version))
    except Refused as err:
        print(f"migrate: {err}; nothing changed", file=sys.stderr)
        return EXIT_USAGE if args.command == "for-app" else EXIT_REFUSED
    except Exception as err:  # the database or a migration failed: say what, exit non-zero
        print(f"migrate: {args.command} failed on {database_path()}: {err}", file=sys.stderr)
        return EXIT_REFUSED
    return 0


if __name__ == "__main__":
    sys.exit(main())
