"""Call-back and appointment reminders: a reminder row may belong to a case (`handoff_id`,
removed with it) and be meant for the officer rather than the citizen (`audience`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Runs on SQLite (batch mode) and PostgreSQL. Columns defined in storage/reminders.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reminder") as batch:
        batch.add_column(sa.Column("handoff_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("audience", sa.String(), nullable=False, server_default="citizen")
        )
        batch.create_foreign_key(
            op.f("fk_reminder_handoff_id_handoff"),
            "handoff",
            ["handoff_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_reminder_handoff_id"), ["handoff_id"])


def downgrade() -> None:
    with op.batch_alter_table("reminder") as batch:
        batch.drop_index(op.f("ix_reminder_handoff_id"))
        batch.drop_constraint(op.f("fk_reminder_handoff_id_handoff"), type_="foreignkey")
        batch.drop_column("audience")
        batch.drop_column("handoff_id")
