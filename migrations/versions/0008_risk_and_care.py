"""risk and care: line emergency texts, on call, care pause; risk in statistics; debriefs

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 05:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.kit.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('emergency_text', sa.JSON(), nullable=False, server_default='{}')
        )
        batch_op.add_column(
            sa.Column(
                'emergency_procedure', sa.String(length=4000), nullable=False, server_default=''
            )
        )
        batch_op.add_column(
            sa.Column(
                'emergency_contact', sa.String(length=300), nullable=False, server_default=''
            )
        )
        batch_op.add_column(sa.Column('on_call', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(
            sa.Column('care_pause_seconds', sa.Integer(), nullable=False, server_default='600')
        )
    with op.batch_alter_table('chat_statistics', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('risk', sa.String(length=8), nullable=False, server_default='none')
        )
        batch_op.add_column(
            sa.Column('in_danger', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        'debriefs',
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('line_key', sa.String(length=32), nullable=False),
        sa.Column('hour', app.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('risk', sa.String(length=8), nullable=False),
        sa.Column('staff_id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ['staff_id'], ['staff.id'], name=op.f('fk_debriefs_staff_id_staff'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_debriefs')),
    )
    with op.batch_alter_table('debriefs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_debriefs_hour'), ['hour'], unique=False)
        batch_op.create_index(batch_op.f('ix_debriefs_line_key'), ['line_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_debriefs_staff_id'), ['staff_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('debriefs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_debriefs_staff_id'))
        batch_op.drop_index(batch_op.f('ix_debriefs_line_key'))
        batch_op.drop_index(batch_op.f('ix_debriefs_hour'))
    op.drop_table('debriefs')
    with op.batch_alter_table('chat_statistics', schema=None) as batch_op:
        batch_op.drop_column('in_danger')
        batch_op.drop_column('risk')
    with op.batch_alter_table('lines', schema=None) as batch_op:
        batch_op.drop_column('care_pause_seconds')
        batch_op.drop_column('on_call')
        batch_op.drop_column('emergency_contact')
        batch_op.drop_column('emergency_procedure')
        batch_op.drop_column('emergency_text')
