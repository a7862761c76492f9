"""line privacy note, canned responses, peer relax time

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-24 06:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('privacy_note', sa.JSON(), nullable=False, server_default='{}')
        )
        batch_op.add_column(
            sa.Column('canned_responses', sa.JSON(), nullable=False, server_default='[]')
        )
        batch_op.add_column(
            sa.Column('peer_relax_seconds', sa.Integer(), server_default='120', nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_column('peer_relax_seconds')
        batch_op.drop_column('canned_responses')
        batch_op.drop_column('privacy_note')
