"""risk level in the wrap-up row (it may be set during the wrap-up, after the chat ended)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wrapups", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("risk", sa.String(length=8), nullable=False, server_default="none")
        )


def downgrade() -> None:
    with op.batch_alter_table("wrapups", schema=None) as batch_op:
        batch_op.drop_column("risk")
