"""booked chats

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.kit.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bookings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("line_key", sa.String(length=32), nullable=False),
        sa.Column("staff_id", sa.Uuid(), nullable=False),
        sa.Column("starts_at", app.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("arrived", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_key"], ["lines.key"], name=op.f("fk_bookings_line_key_lines"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_bookings_staff_id_staff"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bookings")),
        sa.UniqueConstraint("staff_id", "starts_at", name=op.f("uq_bookings_staff_id")),
    )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bookings_code_digest"), ["code_digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_bookings_line_key"), ["line_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_bookings_staff_id"), ["staff_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_bookings_starts_at"), ["starts_at"], unique=False)
    op.create_table(
        "booking_offers",
        sa.Column("code_digest", sa.String(length=64), nullable=False),
        sa.Column("line_key", sa.String(length=32), nullable=False),
        sa.Column("staff_id", sa.Uuid(), nullable=False),
        sa.Column("times", sa.JSON(), nullable=False),
        sa.Column("expires_at", app.kit.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_key"],
            ["lines.key"],
            name=op.f("fk_booking_offers_line_key_lines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff.id"],
            name=op.f("fk_booking_offers_staff_id_staff"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_digest", name=op.f("pk_booking_offers")),
    )
    with op.batch_alter_table("booking_offers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_booking_offers_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_booking_offers_line_key"), ["line_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_booking_offers_staff_id"), ["staff_id"], unique=False)


def downgrade() -> None:
    op.drop_table("booking_offers")
    op.drop_table("bookings")
