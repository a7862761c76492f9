"""line assignment and practice settings; risk and in-danger columns of chat statistics

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
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
    with op.batch_alter_table('chat_statistics', schema=None) as batch_op:
        batch_op.add_column(sa.Column('risk', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('in_danger', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('chat_statistics', schema=None) as batch_op:
        batch_op.drop_column('in_danger')
        batch_op.drop_column('risk')
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_column('practice_openings')
        batch_op.drop_column('practice')
        batch_op.drop_column('assignment')
