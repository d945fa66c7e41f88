"""Broadcasts: an officer's announcement to the citizens of a commune (/thongbao) and one
row per recipient with its delivery state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Runs on SQLite and PostgreSQL. Tables defined in storage/broadcast.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcast",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("commune_code", sa.Integer(), nullable=True),
        sa.Column("officer_id", sa.String(), nullable=False),
        sa.Column("officer_name", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("chat_id", sa.String(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("skipped_stopped", sa.Integer(), nullable=False),
        sa.Column("skipped_unreachable", sa.Integer(), nullable=False),
        sa.Column("progress_message_id", sa.Integer(), nullable=True),
        sa.Column("progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast")),
    )
    op.create_index("ix_broadcast_status", "broadcast", ["status"])

    op.create_table(
        "broadcast_recipient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["broadcast_id"],
            ["broadcast.id"],
            name=op.f("fk_broadcast_recipient_broadcast_id_broadcast"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_broadcast_recipient_citizen_id_citizen"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_recipient")),
        sa.UniqueConstraint(
            "broadcast_id",
            "citizen_id",
            name=op.f("uq_broadcast_recipient_broadcast_id_citizen_id"),
        ),
    )
    op.create_index(
        op.f("ix_broadcast_recipient_citizen_id"), "broadcast_recipient", ["citizen_id"]
    )
    op.create_index(
        "ix_broadcast_recipient_status", "broadcast_recipient", ["status", "broadcast_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_broadcast_recipient_status", table_name="broadcast_recipient")
    op.drop_index(op.f("ix_broadcast_recipient_citizen_id"), table_name="broadcast_recipient")
    op.drop_table("broadcast_recipient")
    op.drop_index("ix_broadcast_status", table_name="broadcast")
    op.drop_table("broadcast")
