"""The destruction ledger: how each run destroyed data, and every run over a range of days.

What a privacy audit asks to see of each destruction: when, why (trigger, and who for admin
runs), the cutoff and the backlog it found, how much per model, the files, the outcome, the
reason a run failed (run records carry no names) and the method. One schema, the same field
names in CSV and JSON Lines; each line ends with `hash`, sha256 over the previous line's hash
and this line's canonical form, so an altered, removed or reordered line breaks the chain from
there on. The first line's previous hash is GENESIS: a file is checked without the database.
"""

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta

from django.core.files.storage import FileSystemStorage
from django.db import connection
from django.utils import timezone

from jobs.models import Job

from .. import storage
from ..deletion import cascade_paths
from ..models import PurgeRun


def destruction_method(*, dry_run: bool) -> str:
    """How a run started now destroys data, in words, as the run record keeps it."""
    if dry_run:
        return "none: dry run (counted only, nothing deleted)"
    rows = f"rows: ORM cascade delete, one transaction per batch ({connection.vendor})"
    return f"{rows}; files: storage delete, {_storage_method()}"


def _storage_method() -> str:
    used = storage.get_storage()
    if storage.is_s3(used):
        return f"S3 DeleteObjects on bucket {used.bucket_name}"
    if isinstance(used, FileSystemStorage):
        return f"local file delete under {used.location}"
    return f"{type(used).__name__} (not supported: files left pending)"


def ledger_models() -> list[str]:
    """The models a purge deletes rows of, in cascade order: the ledger's columns."""
    return [model._meta.label for model, _ in cascade_paths(Job)]


GENESIS = "0" * 64
# The fields before and after the per-model row counts (ledger_models(): one field per model).
HEAD = [
    "run_id",
    "group",
    "started_at",
    "finished_at",
    "trigger",
    "requested_by",
    "status",
    "dry_run",
    "cutoff",
    "expired_at_start",
    "most_overdue_seconds_at_start",
]
TAIL = ["rows_total", "files_deleted", "files_pending", "pending_files_at_end", "method", "reason"]


class LedgerBroken(ValueError):
    """A ledger file whose chain does not hold; `line` is the first bad line (1-based)."""

    def __init__(self, line: int, why: str):
        super().__init__(f"line {line}: {why}")
        self.line = line


def ledger_fields() -> list[str]:
    return [*HEAD, *ledger_models(), *TAIL, "hash"]


def ledger_range(*, since: date, until: date) -> tuple[datetime, datetime]:
    """From the start of `since` to the end of `until` (inclusive), in the project's time zone."""
    if since > until:
        raise ValueError(f"--since {since.isoformat()} is after --until {until.isoformat()}")
    zone = timezone.get_default_timezone()
    start = datetime.combine(since, time.min, tzinfo=zone)
    end = datetime.combine(until + timedelta(days=1), time.min, tzinfo=zone)
    return start, end


def purge_log(*, since: date, until: date) -> Iterator[dict]:
    """Every run started between the two days (both included, Asia/Seoul), oldest first,
    streamed, as chained ledger lines. A bad range raises ValueError here, before any read."""
    start, end = ledger_range(since=since, until=until)
    runs = PurgeRun.objects.filter(started_at__gte=start, started_at__lt=end)
    return _chained(
        _line(run, ledger_models())
        for run in runs.order_by("started_at", "pk").iterator(chunk_size=500)
    )


def _line(run: PurgeRun, models: list[str]) -> dict:
    rows = {label: (run.rows_deleted or {}).get(label, 0) for label in models}
    return {
        "run_id": run.pk,
        "group": run.group,
        "started_at": _local(run.started_at),
        "finished_at": _local(run.finished_at),
        "trigger": run.trigger,
        "requested_by": run.requested_by,
        "status": run.status,
        "dry_run": run.dry_run,
        "cutoff": _local(run.cutoff),
        "expired_at_start": run.expired_at_start,
        "most_overdue_seconds_at_start": run.oldest_expired_seconds_at_start,
        **rows,
        "rows_total": sum(rows.values()),
        "files_deleted": run.files_deleted,
        "files_pending": run.files_pending,
        "pending_files_at_end": run.pending_files_at_end,
        # Runs recorded before the method was: the purge has only ever worked this way.
        "method": run.method or "rows: ORM cascade delete; files: storage delete (not recorded)",
        "reason": run.error.splitlines()[0] if run.error else "",
    }


def _chained(lines: Iterable[dict]) -> Iterator[dict]:
    previous = GENESIS
    for line in lines:
        previous = line["hash"] = _hash(previous, line)
        yield line


def _hash(previous: str, line: dict) -> str:
    # Canonical: every value but the hash as CSV spells it, in field order, as one JSON array.
    cells = [_cell(value) for key, value in line.items() if key != "hash"]
    return hashlib.sha256((previous + json.dumps(cells, ensure_ascii=False)).encode()).hexdigest()


def _cell(value) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)


def as_csv_row(line: dict) -> list[str]:
    return [_cell(value) for value in line.values()]


def verify_ledger(text: Iterable[str]) -> tuple[int, str]:
    """Check a ledger file's chain (CSV with its header, or JSON Lines): (lines, last hash), or
    LedgerBroken naming the first line that is not what the export wrote."""
    text = list(text)
    if text and text[0].lstrip().startswith("{"):
        lines = (_json_line(n, raw) for n, raw in enumerate(text, 1) if raw.strip())
    else:
        lines = enumerate(csv.DictReader(text), 2)
    previous, count = GENESIS, 0
    for number, line in lines:
        if line is None or "hash" not in line:
            raise LedgerBroken(number, "not a ledger line (no hash)")
        if _hash(previous, line) != line["hash"]:
            raise LedgerBroken(number, "hash does not match: altered, removed or reordered")
        previous, count = line["hash"], count + 1
    return count, previous


def _json_line(number: int, raw: str) -> tuple[int, dict | None]:
    try:
        line = json.loads(raw)
    except ValueError:
        return number, None
    return number, line if isinstance(line, dict) else None


def _local(moment: datetime | None) -> str | None:
    return timezone.localtime(moment).isoformat() if moment else None
