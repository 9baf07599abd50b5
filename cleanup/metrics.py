"""GET /cleanup/metrics: computed from the database on every request, so every web worker agrees
and a restart loses nothing; counters come from the run records (they never go down)."""

from datetime import datetime
from types import SimpleNamespace

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .services import purge_schedule

# The classic text format (version 0.0.4), which every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# name: help, in the order render_metrics gives the values.
GAUGES = {
    "fmr_cleanup_up": "1 when the database answered this scrape, 0 when it did not.",
    "fmr_cleanup_expired_jobs": "Expired jobs still present (expires_at before now).",
    "fmr_cleanup_oldest_expired_seconds": (
        "Seconds the most overdue expired job has been past its expiry; 0 when none."
    ),
    "fmr_cleanup_pending_files": "Storage deletions recorded and not yet confirmed.",
    "fmr_cleanup_stuck_files": (
        "Pending deletions storage refused CLEANUP_STUCK_AFTER_ATTEMPTS times or more."
    ),
    "fmr_cleanup_last_success_timestamp_seconds": (
        "Unix time the last successful purge finished (a whole fan-out counts once); "
        "0 when none is recorded."
    ),
    "fmr_cleanup_first_run_due_timestamp_seconds": (
        "Unix time the first scheduled purge was due after the first migrate (0 when the "
        "schedule row is missing): no purge can be missing before it."
    ),
}

# name, help, RunTotals attribute; one series per run status.
COUNTERS = [
    ("fmr_cleanup_runs", "Finished purge runs (plain runs and fan-out subtasks).", "runs"),
    ("fmr_cleanup_jobs_deleted", "Expired jobs deleted by finished runs.", "jobs"),
    ("fmr_cleanup_rows_deleted", "Rows deleted by finished runs, all models.", "rows"),
    ("fmr_cleanup_files_deleted", "Files deleted from storage by finished runs.", "files"),
    (
        "fmr_cleanup_storage_retries",
        "Storage requests the S3 client sent again (throttling, 5xx, dropped connections).",
        "retries",
    ),
]


def _exposition(families) -> bytes:
    # generate_latest() takes anything with collect(): no registry needed for one snapshot.
    return generate_latest(SimpleNamespace(collect=lambda: iter(families)))


def render_down(reason: str) -> bytes:
    """The database did not answer: the reason, and the up gauge at 0 (others would be guesses)."""
    up = GaugeMetricFamily("fmr_cleanup_up", GAUGES["fmr_cleanup_up"], value=0)
    return f"# {reason}\n".encode() + _exposition([up])


def render_metrics(*, status, totals) -> bytes:
    last = status.last_success
    finished = last and last["finished_at"]
    due = purge_schedule(now=status.checked_at).first_run_due_at
    values = [
        1,
        status.expired_jobs,
        status.most_overdue_seconds or 0.0,
        status.pending_files,
        status.stuck_files,
        datetime.fromisoformat(finished).timestamp() if finished else 0.0,
        due.timestamp() if due else 0.0,
    ]
    families = [
        GaugeMetricFamily(name, text, value=value)
        for (name, text), value in zip(GAUGES.items(), values, strict=True)
    ]
    for name, help_text, attribute in COUNTERS:
        family = CounterMetricFamily(name, help_text, labels=["status"])
        for total in totals:
            family.add_metric([total.status], getattr(total, attribute))
        families.append(family)
    return _exposition(families)
