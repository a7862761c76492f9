"""interpreters: the interpreter qualification

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 05:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Only the staff's qualification gains the value: a line never requires an interpreter, so
# its own constraint stays as it is.
_OLD = "qualification IN ('psychologist', 'volunteer')"
_NEW = "qualification IN ('psychologist', 'volunteer', 'interpreter')"


def upgrade() -> None:
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_staff_qualification"), type_="check")
        batch_op.create_check_constraint("qualification", _NEW)


def downgrade() -> None:
    op.execute("UPDATE staff SET qualification = NULL WHERE qualification = 'interpreter'")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_staff_qualification"), type_="check")
        batch_op.create_check_constraint("qualification", _OLD)
