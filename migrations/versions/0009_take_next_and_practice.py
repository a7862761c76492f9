"""line assignment and practice settings

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('assignment', sa.String(length=8), server_default='offered', nullable=False)
        )
        batch_op.add_column(
            sa.Column('practice', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column('practice_openings', sa.JSON(), server_default='{}', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_column('practice_openings')
        batch_op.drop_column('practice')
        batch_op.drop_column('assignment')
