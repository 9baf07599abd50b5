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


class KeyValueFormatter(logging.Formatter):
    def formatTime(self, record, datefmt=None):
        # In TIME_ZONE, so every process's lines agree (ZoneInfo caches the zone).
        zone = ZoneInfo(settings.TIME_ZONE)
        return datetime.fromtimestamp(record.created, tz=zone).isoformat(timespec="milliseconds")

    def formatMessage(self, record):
        fields = "".join(f" {key}={value}" for key, value in fields_of(record).items())
        time = self.formatTime(record)
        return f"{time} {record.levelname} {record.name} {record.message}{fields}"


class JsonFormatter(KeyValueFormatter):
    def format(self, record):
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
            **fields_of(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)
