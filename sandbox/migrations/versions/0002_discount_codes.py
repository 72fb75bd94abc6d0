"""app v1.1.0: discount codes, and the code used by each order

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "discount_codes",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("percent_off", sa.Integer, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=True),
    )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("discount_code", sa.String(32), nullable=True))


def downgrade() -> None:
    # Reverting loses the codes orders used: acceptable for the rollback (v1.0.0 ignores them).
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("discount_code")
    op.drop_table("discount_codes")
