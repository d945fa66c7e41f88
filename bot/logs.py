"""Structured logs: one JSON object per line (MOTCUA_LOG_FORMAT=json).

Each line carries `time` (UTC, ISO 8601), `level`, `logger`, `message`, and the extra
fields a call passes (`log.info("...", extra={"update_id": 42})`). An exception adds its
type and where it was raised (file:line), never its message: exception messages may quote
the input that caused them, and the input may be personal data.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_PLAIN = (str, int, float, bool, type(None))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = dt.datetime.fromtimestamp(record.created, dt.UTC)
        entry: dict[str, object] = {
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value if isinstance(value, _PLAIN) else repr(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            frames = traceback.extract_tb(record.exc_info[2])
            entry["exc_where"] = [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in frames][
                -6:
            ]
        return json.dumps(entry, ensure_ascii=False)
