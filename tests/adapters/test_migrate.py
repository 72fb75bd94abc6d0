"""``sandbox/migrations/migrate``: the CLI the migrator pod runs, on a real SQLite file.

Each test runs the script as kwok's ClusterExec does: ``./migrate ...`` with cwd
``sandbox/migrations`` and a bare environment (no virtualenv on PATH).
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

MIGRATIONS = Path(__file__).resolve().parents[2] / "sandbox" / "migrations"


def migrate(
    *args: str, db: Path | None, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", **(extra_env or {})}
    if db is not None:
        env["MIGRATE_DB"] = str(db)
    return subprocess.run(
        ["./migrate", *args], cwd=MIGRATIONS, env=env, capture_output=True, text=True, timeout=60
    )


def ok(*args: str, db: Path) -> str:
    done = migrate(*args, db=db)
    assert done.returncode == 0, done.stderr
    return done.stdout


def tables(db: Path) -> dict[str, set[str]]:
    with sqlite3.connect(db) as conn:
        names = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return {
            name: {row[1] for row in conn.execute(f"pragma table_info({name})")}
            for name in names
            if name != "alembic_version"
        }


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "app.db"


def test_up_applies_both_schemas_and_version_reports_them(db: Path) -> None:
    assert ok("version", db=db).strip() == "0 base"
    out = ok("up", db=db)
    assert "applied 0001" in out
    assert "applied 0002" in out
    assert ok("version", db=db).strip() == "2 0002"
    schema = tables(db)
    assert set(schema) == {"customers", "orders", "discount_codes"}
    assert "discount_code" in schema["orders"]


def test_down_one_reverts_only_the_new_version_and_keeps_orders(db: Path) -> None:
    ok("up", db=db)
    with sqlite3.connect(db) as conn:
        conn.execute("insert into customers (id, email) values (1, 'a@example.org')")
        conn.execute(
            "insert into orders (customer_id, total_cents, discount_code) values (1, 1250, 'X')"
        )
    out = ok("down", "1", db=db)
    assert "reverted 0002" in out
    assert ok("version", db=db).strip() == "1 0001"
    schema = tables(db)
    assert "discount_codes" not in schema
    assert "discount_code" not in schema["orders"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("select customer_id, total_cents from orders").fetchall() == [(1, 1250)]


def test_up_n_applies_exactly_n(db: Path) -> None:
    ok("up", "1", db=db)
    assert ok("version", db=db).strip() == "1 0001"
    ok("up", "1", db=db)
    assert ok("version", db=db).strip() == "2 0002"


def test_for_app_moves_to_the_schema_each_version_needs(db: Path) -> None:
    ok("for-app", "v1.0.0", db=db)
    assert ok("version", db=db).strip() == "1 0001"
    ok("for-app", "v1.1.0", db=db)
    assert ok("version", db=db).strip() == "2 0002"
    assert "nothing to do" in ok("for-app", "v1.1.0", db=db)
    ok("for-app", "1.0.0", db=db)  # the "v" is optional
    assert ok("version", db=db).strip() == "1 0001"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("down", "2"), 1, "cannot revert 2: only 1 applied; nothing changed"),
        (("up", "5"), 1, "cannot apply 5: 1 pending"),
        (("for-app", "v9.9.9"), 2, "unknown app version 'v9.9.9' (known: v1.0.0, v1.1.0)"),
        (("up", "0"), 2, "must be a positive integer"),
        (("down",), 2, "the following arguments are required: n"),
        (("sideways",), 2, "invalid choice"),
        ((), 2, "required"),
    ],
    ids=["down-too-many", "up-too-many", "unknown-app", "up-zero", "down-no-n", "bad-verb", "none"],
)
def test_refusals_change_nothing_and_say_why(
    db: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    ok("up", "1", db=db)
    done = migrate(*args, db=db)
    assert done.returncode == code
    assert message in done.stderr
    assert ok("version", db=db).strip() == "1 0001"


def test_default_database_is_in_the_sandbox_state_dir(tmp_path: Path) -> None:
    done = migrate("up", db=None, extra_env={"RUNBOOK_SANDBOX_STATE": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "discount_codes" in tables(tmp_path / "app.db")


def test_a_broken_database_is_reported_not_crashed(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    db.write_bytes(b"this is not a database" * 100)
    done = migrate("up", db=db)
    assert done.returncode == 1
    assert f"migrate: up failed on {db}" in done.stderr
    assert "Traceback" not in done.stderr
