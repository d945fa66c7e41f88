"""Personal data (Decree 13/2023/ND-CP): the consent notice, retention and erasure.

- **Consent.** A citizen's first reply carries a short notice (what is stored, why, for
  how long, how to delete: `privacy.j2`). Pressing a button under it (a procedure, the
  officer, the agree button) is the consent; it is recorded as a `ConsentGiven` fact with the
  notice's version and in the citizen's session. Before it nothing is stored beyond the
  citizen row needed to ask (channel, chat id, the menu's turn): no draft, no case, no
  name, no unrecognised-message fact.
- **Retention.** `purge` deletes drafts idle for `draft_days`, cases closed `case_days`
  ago, and citizens idle for `draft_days` with nothing left (storage/privacy.py). The
  service's periodic tick runs it (at most once an hour); operators run `motcua purge`.
- **Erasure.** `/xoadulieu` (flows/service.py) deletes everything about the citizen;
  `erase_notices` tells the office when a case of theirs was in the officers' group.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import crypto
from storage import privacy as rows

if TYPE_CHECKING:
    from storage.store import Store

log = logging.getLogger(__name__)

NOTICE_VERSION = "1"  # bump when privacy.j2's notice changes what it says
CONSENT_KEY = "consent"  # citizen session: the notice version agreed to
NOTICE_SHOWN_KEY = "notice"  # citizen session: the notice version shown in full (once)
DEFAULT_DRAFT_DAYS = 90
DEFAULT_CASE_DAYS = 90
PURGE_EVERY = dt.timedelta(hours=1)


@dataclass(frozen=True)
class PrivacyConfig:
    """MOTCUA_DATA_KEYS / MOTCUA_DATA_KEY_FILE (the keys) and the retention periods."""

    draft_days: int = DEFAULT_DRAFT_DAYS
    case_days: int = DEFAULT_CASE_DAYS
    data_keys: tuple[str, ...] = field(default=(), repr=False)
    data_key_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PrivacyConfig:
        """Read the settings; raise ValueError with one line saying what is wrong."""

        def days(name: str, default: int) -> int:
            raw = (env.get(name) or "").strip()
            if not raw:
                return default
            if not raw.isdigit() or not 1 <= int(raw) <= 3650:
                raise ValueError(f"{name} must be a number of days from 1 to 3650, got {raw!r}")
            return int(raw)

        keys = tuple(crypto.parse_keys(env.get("MOTCUA_DATA_KEYS") or ""))
        if keys:
            try:
                crypto.Keyring(keys)
            except crypto.DataKeyError as exc:
                raise ValueError(f"MOTCUA_DATA_KEYS: {exc}") from None
        raw_file = (env.get("MOTCUA_DATA_KEY_FILE") or "").strip()
        if keys and raw_file:
            raise ValueError("set MOTCUA_DATA_KEYS or MOTCUA_DATA_KEY_FILE, not both")
        return cls(
            draft_days=days("MOTCUA_RETENTION_DRAFT_DAYS", DEFAULT_DRAFT_DAYS),
            case_days=days("MOTCUA_RETENTION_CASE_DAYS", DEFAULT_CASE_DAYS),
            data_keys=keys,
            data_key_file=Path(raw_file).expanduser() if raw_file else None,
        )

    def keyring(self) -> crypto.Keyring:
        """The data keys: MOTCUA_DATA_KEYS, else the key file (default ./motcua.key,
        created with a new key, mode 0600, on first use)."""
        return crypto.load_keyring(self.data_keys, self.data_key_file)


def consented(session: Mapping[str, Any]) -> bool:
    return bool(session.get(CONSENT_KEY))


def purge(store: Store, now: dt.datetime, config: PrivacyConfig) -> rows.Purged:
    """One retention pass, in one transaction. Logs counts only."""
    with store.unit_of_work() as uow:
        done = rows.purge(uow, now, draft_days=config.draft_days, case_days=config.case_days)
        if done.total:
            uow.add_audit(
                "system",
                "purge",
                now,
                details={"drafts": done.drafts, "cases": done.cases, "citizens": done.citizens},
            )
        uow.commit()
    if done.total:
        log.info(
            "retention purge: %d drafts, %d cases, %d citizens",
            done.drafts,
            done.cases,
            done.citizens,
        )
    return done
