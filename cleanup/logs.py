"""Log lines: `logger.info("purge.batch", extra={"run": 8})` renders as `... purge.batch run=8`
(CLEANUP_LOG_FORMAT=plain) or a JSON object per line (json), for every process's root handler."""

import json
import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings

# Attributes every LogRecord has; anything else on a record came in through `extra`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_SCALARS = (str, int, float, bool, type(None))


def fields_of(record: logging.LogRecord) -> dict:
    # Scalars only: other libraries' extras (Celery passes its whole task context as `data`)
    # would repeat their message, and a field of ours is always a count, a flag or a status.
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD and not key.startswith("_") and isinstance(value, _SCALARS)
    }


def iso_time(created: float) -> str:
    # In TIME_ZONE, so every process's lines agree (ZoneInfo caches the zone).
    zone = ZoneInfo(settings.TIME_ZONE)
    return datetime.fromtimestamp(created, tz=zone).isoformat(timespec="milliseconds")


class KeyValueFormatter(logging.Formatter):
    def formatMessage(self, record):
        fields = "".join(f" {key}={value}" for key, value in fields_of(record).items())
        return (
            f"{iso_time(record.created)} {record.levelname} {record.name} {record.message}{fields}"
        )


class JsonFormatter(logging.Formatter):
    def format(self, record):
        entry = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
