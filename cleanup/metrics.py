"""The purge's facts in the Prometheus text format, for GET /cleanup/metrics.

Computed afresh from the database on every request: every web worker (gunicorn
runs several processes) answers the same truth, and nothing lives in one process's memory that
a restart would lose. Counters come from the run records (services/history.py says why they
never go down).
"""

from datetime import datetime

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from .services import purge_schedule

# The classic text format (version 0.0.4), which every Prometheus reads.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


class _Snapshot:
    """A collector that hands out metric families computed before the request's scrape."""

    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


UP = ("fmr_cleanup_up", "1 when the database answered this scrape, 0 when it did not.", 1)


def render_down(reason: str) -> bytes:
    """What a scrape gets when the database does not answer: the reason as a comment, and the
    up gauge at 0 for alerts (the other gauges would be guesses, so they are left out)."""
    up = GaugeMetricFamily(UP[0], UP[1], value=0)
    return f"# {reason}\n".encode() + generate_latest(_Snapshot([up]))


def _first_run_due(now) -> GaugeMetricFamily:
    due = purge_schedule(now=now).first_run_due_at
    return GaugeMetricFamily(
        "fmr_cleanup_first_run_due_timestamp_seconds",
        "Unix time the first scheduled purge was due after the first migrate (0 when the "
        "schedule row is missing): no purge can be missing before it.",
        value=due.timestamp() if due else 0.0,
    )


def render_metrics(*, status, totals) -> bytes:
    """`status`: a PurgeStatus; `totals`: RunTotals per status (finished runs)."""
    families = [GaugeMetricFamily(name, text, value=value) for name, text, value in _gauges(status)]
    for name, help_text, attribute in COUNTERS:
        family = CounterMetricFamily(name, help_text, labels=["status"])
        for total in totals:
            family.add_metric([total.status], getattr(total, attribute))
        families.append(family)
    families.append(_first_run_due(status.checked_at))
    # generate_latest() takes anything with collect(): no registry needed for one snapshot.
    return generate_latest(_Snapshot(families))


def _gauges(status) -> list[tuple]:
    last = status.last_success
    last_finished = 0.0
    if last and last["finished_at"]:
        last_finished = datetime.fromisoformat(last["finished_at"]).timestamp()
    return [
        UP,
        (
            "fmr_cleanup_expired_jobs",
            "Expired jobs still present (expires_at before now).",
            status.expired_jobs,
        ),
        (
            "fmr_cleanup_oldest_expired_seconds",
            "Seconds the most overdue expired job has been past its expiry; 0 when none.",
            status.most_overdue_seconds or 0.0,
        ),
        (
            "fmr_cleanup_pending_files",
            "Storage deletions recorded and not yet confirmed.",
            status.pending_files,
        ),
        (
            "fmr_cleanup_stuck_files",
            "Pending deletions storage refused CLEANUP_STUCK_AFTER_ATTEMPTS times or more.",
            status.stuck_files,
        ),
        (
            "fmr_cleanup_last_success_timestamp_seconds",
            "Unix time the last successful purge finished (a whole fan-out counts once); "
            "0 when none is recorded.",
            last_finished,
        ),
    ]


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
