"""The officer side: a handoff becomes a case (commune, claim, group message, call-back,
announcements, version), and an audit table of officer actions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Runs on SQLite (batch mode; adding columns needs no table rebuild) and PostgreSQL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("handoff") as batch:
        batch.add_column(sa.Column("commune_code", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("step", sa.String(), nullable=True))
        batch.add_column(sa.Column("claimed_by_name", sa.String(), nullable=True))
        batch.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("group_chat_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("group_message_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("topic_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("callback_phone", sa.String(), nullable=True))
        batch.add_column(sa.Column("callback_slot", sa.String(), nullable=True))
        batch.add_column(sa.Column("callback_done_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("announce_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.create_index("ix_handoff_group_topic", "handoff", ["group_chat_id", "topic_id"])

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("actor_name", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("handoff_id", sa.Integer(), nullable=True),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["handoff_id"],
            ["handoff.id"],
            name=op.f("fk_audit_handoff_id_handoff"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["draft.id"], name=op.f("fk_audit_draft_id_draft"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_at"), "audit", ["at"])
    op.create_index(op.f("ix_audit_action"), "audit", ["action"])
    op.create_index(op.f("ix_audit_handoff_id"), "audit", ["handoff_id"])


def downgrade() -> None:
    op.drop_table("audit")
    op.drop_index("ix_handoff_group_topic", table_name="handoff")
    with op.batch_alter_table("handoff") as batch:
        for column in (
            "version",
            "announce_count",
            "announced_at",
            "callback_done_at",
            "callback_slot",
            "callback_phone",
            "topic_id",
            "group_message_id",
            "group_chat_id",
            "claimed_at",
            "claimed_by_name",
            "step",
            "commune_code",
        ):
            batch.drop_column(column)
