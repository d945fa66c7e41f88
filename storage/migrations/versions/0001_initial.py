"""Initial schema: citizen, draft, fact, handoff.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Runs on SQLite and PostgreSQL. Column types are plain SQLAlchemy types: timestamps are
`DateTime(timezone=True)` (storage.models.UTCDateTime stores UTC in them), JSON columns are
`JSON` on both databases.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "citizen",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("display_name", sa.String(), nullable=False),
        sa.Column("username", sa.String(), nullable=False),
        sa.Column("session", sa.JSON(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_citizen")),
        sa.UniqueConstraint("channel", "external_id", name=op.f("uq_citizen_channel_external_id")),
    )

    op.create_table(
        "draft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("short_id", sa.String(length=6), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("procedure_id", sa.String(), nullable=False),
        sa.Column("procedure_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("dossier_code", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_draft_citizen_id_citizen"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_draft")),
        sa.UniqueConstraint("short_id", name=op.f("uq_draft_short_id")),
    )
    op.create_index(op.f("ix_draft_citizen_id"), "draft", ["citizen_id"])
    op.create_index(
        "ix_draft_citizen_status_updated", "draft", ["citizen_id", "status", "updated_at"]
    )
    op.create_index("ix_draft_status_updated", "draft", ["status", "updated_at"])

    op.create_table(
        "fact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_fact_citizen_id_citizen"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["draft.id"], name=op.f("fk_fact_draft_id_draft"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fact")),
    )
    op.create_index(op.f("ix_fact_at"), "fact", ["at"])
    op.create_index(op.f("ix_fact_citizen_id"), "fact", ["citizen_id"])
    op.create_index(op.f("ix_fact_draft_id"), "fact", ["draft_id"])
    op.create_index(op.f("ix_fact_kind"), "fact", ["kind"])

    op.create_table(
        "handoff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("citizen_id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["citizen_id"],
            ["citizen.id"],
            name=op.f("fk_handoff_citizen_id_citizen"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["draft_id"], ["draft.id"], name=op.f("fk_handoff_draft_id_draft"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff")),
    )
    op.create_index(op.f("ix_handoff_citizen_id"), "handoff", ["citizen_id"])
    op.create_index("ix_handoff_status_created", "handoff", ["status", "created_at"])


def downgrade() -> None:
    op.drop_table("handoff")
    op.drop_table("fact")
    op.drop_table("draft")
    op.drop_table("citizen")
