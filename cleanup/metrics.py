"""/cleanup/metrics from the database per scrape: every worker agrees, a restart loses nothing."""

from datetime import datetime
from types import SimpleNamespace

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .services import purge_schedule

# name: help, in the order render_metrics gives the values.
GAUGES = {
    "fmr_cleanup_up": "1 when the database answered this scrape, 0 when it did not.",
    "fmr_cleanup_expired_jobs": "Expired jobs still present (expires_at before now).",
    "fmr_cleanup_oldest_expired_seconds": "Seconds the most overdue job is past expiry; 0: none.",
    "fmr_cleanup_pending_files": "Storage deletions recorded and not yet confirmed.",
    "fmr_cleanup_stuck_files": "Deletions refused CLEANUP_STUCK_AFTER_ATTEMPTS times or more.",
    "fmr_cleanup_last_success_timestamp_seconds": "Unix time the last successful purge ended.",
    # No purge can be missing before it (0 when the schedule row is missing).
    "fmr_cleanup_first_run_due_timestamp_seconds": "Unix time the first purge was due.",
}
# name, help, run_totals() key; one series per run status.
COUNTERS = [
    ("fmr_cleanup_runs", "Finished purge runs (plain runs and fan-out subtasks).", "runs"),
    ("fmr_cleanup_jobs_deleted", "Expired jobs deleted by finished runs.", "jobs"),
    ("fmr_cleanup_rows_deleted", "Rows deleted by finished runs, all models.", "rows"),
    ("fmr_cleanup_files_deleted", "Files deleted from storage by finished runs.", "files"),
    ("fmr_cleanup_storage_retries", "S3 requests sent again (throttled, 5xx, dropped).", "retries"),
]


def render_down(reason: str) -> bytes:
    """The database did not answer: the reason, and the up gauge at 0 (others would be guesses)."""
    up = GaugeMetricFamily("fmr_cleanup_up", GAUGES["fmr_cleanup_up"], value=0)
    # generate_latest() takes anything with collect(): no registry needed for one snapshot.
    return f"# {reason}\n".encode() + generate_latest(SimpleNamespace(collect=lambda: [up]))


def render_metrics(*, status, totals) -> bytes:
    finished = status.last_success and status.last_success["finished_at"]
    due = purge_schedule(now=status.checked_at).first_run_due_at
    values = [1, status.expired_jobs, status.most_overdue_seconds, status.pending_files]
    values += [status.stuck_files, finished and datetime.fromisoformat(finished).timestamp()]
    values += [due and due.timestamp()]
    families = [
        GaugeMetricFamily(name, text, value=value or 0.0)
        for (name, text), value in zip(GAUGES.items(), values, strict=True)
    ]
    for name, help_text, attribute in COUNTERS:
        family = CounterMetricFamily(name, help_text, labels=["status"])
        for total in totals:
            family.add_metric([total["status"]], total[attribute])
        families.append(family)
    return generate_latest(SimpleNamespace(collect=lambda: families))
