"""Reminders: planned messages to citizens (rows the ticker claims) and each citizen's
reminder switch (stopped with /tatnhac, unreachable after a 403).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Runs on SQLite and PostgreSQL. Tables defined in storage/reminders.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reminder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_reminder_citizen_id_citizen"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["draft.id"], name=op.f("fk_reminder_draft_id_draft"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder")),
    )
    op.create_index(op.f("ix_reminder_citizen_id"), "reminder", ["citizen_id"])
    op.create_index("ix_reminder_status_due", "reminder", ["status", "due_at"])
    op.create_index("ix_reminder_draft_kind", "reminder", ["draft_id", "kind"])

    op.create_table(
        "reminder_pref",
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("unreachable", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_reminder_pref_citizen_id_citizen"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("citizen_id", name=op.f("pk_reminder_pref")),
    )


def downgrade() -> None:
    op.drop_table("reminder_pref")
    op.drop_index("ix_reminder_draft_kind", table_name="reminder")
    op.drop_index("ix_reminder_status_due", table_name="reminder")
    op.drop_index(op.f("ix_reminder_citizen_id"), table_name="reminder")
    op.drop_table("reminder")
