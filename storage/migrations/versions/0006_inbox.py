"""The inbox: every update received, durable before it is confirmed to Telegram, with the
replies to send once its effects are committed (bot/inbox.py, storage/inbox.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29

Runs on SQLite and PostgreSQL. Table defined in storage/inbox.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_key", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("outbound", sa.JSON(), nullable=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_inbox")),
    )
    op.create_index("ix_inbox_status_update", "inbox", ["status", "update_id"])
    op.create_index("ix_inbox_chat_update", "inbox", ["chat_key", "update_id"])
    op.create_index("ix_inbox_finished", "inbox", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_inbox_finished", table_name="inbox")
    op.drop_index("ix_inbox_chat_update", table_name="inbox")
    op.drop_index("ix_inbox_status_update", table_name="inbox")
    op.drop_table("inbox")
