"""Alembic environment of the demo app's SQLite database.

The URL is set by ``migrate_tool.py``; when Alembic is run directly it comes from MIGRATE_DB.
Migrations use batch mode because SQLite alters tables by copying them.
"""

from __future__ import annotations

from alembic import context
from migrate_tool import database_url
from sqlalchemy import create_engine

url = context.config.get_main_option("sqlalchemy.url") or database_url()
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
