"""History is final: a run's terminal status never changes, counters only grow, and each run
records what it left (issue 18, items 7 and 8).

Real PostgreSQL and S3 over HTTP; a run's file step is held by a proxy that stops answering
(tests/s3proxy.py), the way a slow or stuck storage holds it."""

import threading
from datetime import timedelta

import pytest
from django.db import connection

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from jobs.demo import FILES_PER_JOB
from tests.helpers import expired_job, file_names
from tests.processes import wait_until
from tests.s3proxy import FORWARD, HANG
from tests.test_metrics import samples, scrape

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class RunInThread:
    """purge_expired_jobs() in a thread of its own (its own database connection)."""

    def __init__(self):
        self.run, self.error = None, None
        self.thread = threading.Thread(target=self._purge, daemon=True)
        self.thread.start()

    def _purge(self):
        try:
            self.run = purge_expired_jobs()
        except Exception as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
        finally:
            connection.close()

    def join(self):
        self.thread.join(60)
        assert not self.thread.is_alive(), "the purge never finished"
        # The record as written (the same on any version of the service's return value).
        return PurgeRun.objects.get(pk=(self.run or self.error.purge_result).run_id)


def in_its_file_step(proxy):
    """Its batch is committed (the run's heartbeat shows it) and storage holds its request."""
    wait_until(
        lambda: PurgeRun.objects.filter(batches=1).exists() and proxy.connections > 0,
        30,
        message="the run to reach its file step",
    )
    return PurgeRun.objects.get()


def totals(client) -> dict:
    return {key: v for key, v in samples(scrape(client)).items() if key[0].endswith("_total")}


def assert_grew(before: dict, after: dict):
    for key, value in before.items():
        assert after.get(key, 0) >= value, (key, value, after.get(key))


def test_a_run_abandoned_then_finishing_late_keeps_its_status_and_counters_only_grow(
    admin_client, settings, s3_bucket, s3_proxy
):
    names = file_names(expired_job())
    s3_proxy.set_mode(HANG)
    first = RunInThread()
    run = in_its_file_step(s3_proxy)
    seen = [totals(admin_client)]

    # Its file step outlasts CLEANUP_STALE_RUN_MINUTES: a second purge takes it for dead, and
    # deletes the names it left pending (storage answers that purge: another endpoint).
    settings.CLEANUP_STALE_RUN = timedelta(0)
    direct = settings.STORAGES["default"]["OPTIONS"] | {"endpoint_url": s3_proxy_upstream(s3_proxy)}
    settings.STORAGES = {"default": {**settings.STORAGES["default"], "OPTIONS": direct}}
    second = purge_expired_jobs()
    run.refresh_from_db()
    assert run.status == PurgeRun.Status.ABANDONED
    assert second.files_deleted == FILES_PER_JOB and second.ok
    seen.append(totals(admin_client))
    assert_grew(seen[0], seen[1])
    assert seen[1][("fmr_cleanup_runs_total", frozenset({("status", "abandoned")}))] == 1

    # Then the first run finishes: it records its late work, and rewrites nothing.
    s3_proxy.set_mode(FORWARD)
    late = first.join()
    assert late.pk == run.pk
    assert late.status == PurgeRun.Status.ABANDONED
    assert late.finished_at == run.finished_at
    assert late.error.startswith(run.error) and "finished late" in late.error
    assert late.jobs_deleted == 1
    # The names it recorded were deleted by the second run: not pending, not counted twice.
    assert late.files_pending == 0 and late.files_deleted == 0
    assert not PendingFileDeletion.objects.exists() and s3_bucket.keys().isdisjoint(names)
    seen.append(totals(admin_client))
    assert_grew(seen[1], seen[2])
    assert seen[2][("fmr_cleanup_runs_total", frozenset({("status", "abandoned")}))] == 1


def s3_proxy_upstream(proxy) -> str:
    host, port = proxy.upstream
    return f"http://{host}:{port}"


def test_a_run_whose_connection_is_killed_in_its_file_step_records_the_names_it_left(
    s3_bucket, s3_proxy
):
    expired_job()
    s3_proxy.set_mode(HANG)
    purge = RunInThread()
    in_its_file_step(s3_proxy)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
    s3_proxy.set_mode(FORWARD)

    run = purge.join()
    assert purge.error is not None  # the purge says it failed
    assert run.status == PurgeRun.Status.FAILED
    left = PendingFileDeletion.objects.waiting().count()
    assert left == FILES_PER_JOB
    assert run.files_pending == left


def test_a_refused_run_says_no_way_of_deleting_was_used(settings):
    expired_job(with_files=False)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    with pytest.raises(Exception, match="not supported") as refused:
        purge_expired_jobs()
    run = PurgeRun.objects.get(pk=refused.value.purge_result.run_id)
    assert run.status == PurgeRun.Status.FAILED and run.jobs_deleted == 0
    assert run.method.startswith("none")
    assert "InMemoryStorage" not in run.method
