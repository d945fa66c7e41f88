"""Personal data encrypted at rest: rows written before encryption are encrypted.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30

No column changes its type: an encrypted JSON column keeps its Fernet token as a JSON
string, an encrypted text column as text (storage/crypto.py). This data migration rewrites
the values written in plain text before, with the current data key (the Store's, else
MOTCUA_DATA_KEYS / MOTCUA_DATA_KEY_FILE / ./motcua.key). The list of columns is fixed here,
as they were at this revision. Plain values that remain are still read, and encrypted on
their next write or by `motcua keys rotate`.

Downgrade writes nothing back in plain text: it is a no-op (older code cannot read the
encrypted values).
"""

from collections.abc import Sequence

from alembic import op

from storage import crypto
from storage.privacy import reencrypt

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "citizen": ["display_name", "username", "session"],
    "draft": ["subject", "payload"],
    "fact": ["data"],
    "handoff": ["callback_phone", "claimed_by_name"],
    "audit": ["actor_name", "details"],
}
JSON_COLUMNS = {
    "citizen": {"session"},
    "draft": {"payload"},
    "fact": {"data"},
    "audit": {"details"},
}


def upgrade() -> None:
    bind = op.get_bind()
    try:
        keyring = crypto.keyring_of(bind.dialect)
    except crypto.DataKeyError:  # alembic run by hand, outside a Store
        keyring = crypto.keyring_from_environ()
        crypto.install(bind.engine, keyring)
    reencrypt(bind, keyring, COLUMNS, json_columns=JSON_COLUMNS)


def downgrade() -> None:
    pass
