"""The purge on its worst day: killed mid-run, its database connection cut, run twice at once.

The purges run in real child processes (a command, a worker) against the test PostgreSQL
database, with local storage slowed down (tests.slow_settings) so they are still busy when the
test strikes.
"""

import re
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from jobs.models import Job
from tests.helpers import (
    expired_job,
    file_names,
    half_deleted_jobs,
    live_job,
    referenced_files,
    stored,
    stored_job_files,
)
from tests.processes import (
    backend_pids,
    celery,
    child_env,
    database_url_with,
    kill,
    manage,
    wait_until,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

SLOW = {"DJANGO_SETTINGS_MODULE": "tests.slow_settings", "FMR_TEST_STORAGE_DELAY": "0.05"}


def slow_purge(*args):
    """`purge_expired_jobs <args>` on slowed storage; returns it and its database sessions' name."""
    name = f"fmr-purge-{uuid.uuid4().hex[:8]}"
    env = child_env(**SLOW, DATABASE_URL=database_url_with(application_name=name))
    return manage("purge_expired_jobs", *args, env=env), name


def backlog(expired=40, live=3):
    now = timezone.now()
    gone = [expired_job(now, by=timedelta(minutes=i + 1)) for i in range(expired)]
    kept = [live_job(now) for _ in range(live)]
    return gone, kept


def names_of_jobs(jobs) -> list[str]:
    return [name for job in jobs for name in file_names(job)]


def mid_run(expired_count):
    """At least one batch committed, its files not all deleted yet, expired jobs still left."""
    left = Job.objects.expired().count()
    return 0 < left < expired_count and PendingFileDeletion.objects.exists()


def assert_whole_after_a_crash(kept_names):
    assert half_deleted_jobs() == []
    assert stored(kept_names) == kept_names
    # No orphan, ever: every file in storage belongs to a row or is recorded as pending.
    pending = set(PendingFileDeletion.objects.values_list("name", flat=True))
    assert stored_job_files() <= referenced_files() | pending


def assert_nothing_lost_and_nothing_left(kept, kept_names):
    assert half_deleted_jobs() == []
    assert set(Job.objects.values_list("pk", flat=True)) == {job.pk for job in kept}
    assert stored(kept_names) == kept_names
    # No file of a deleted job is left anywhere in storage, and nothing waits to be deleted.
    assert stored_job_files() == referenced_files() == set(kept_names)
    assert not PendingFileDeletion.objects.exists()


def test_a_purge_killed_mid_run_half_deletes_nothing_and_the_next_run_finishes(settings):
    gone, kept = backlog()
    kept_names = names_of_jobs(kept)

    purge, name = slow_purge("--batch-size", "5")
    wait_until(
        lambda: purge.poll() is not None or mid_run(len(gone)),
        90,
        interval=0.05,
        message="the purge to be mid-run",
    )
    assert purge.poll() is None, "the purge finished before it could be killed"
    kill(purge, name)

    # Right after the crash: whole jobs or no job, live files untouched, the rest pending.
    assert_whole_after_a_crash(kept_names)
    assert 0 < Job.objects.expired().count() < len(gone)
    assert PendingFileDeletion.objects.exists()
    killed = PurgeRun.objects.get()
    assert killed.status == PurgeRun.Status.RUNNING  # it never got to finish
    # Its record shows how far it got as of its last finished batch, never more than it did.
    assert killed.jobs_deleted <= len(gone) - Job.objects.expired().count()

    # Its last sign of life is long enough ago.
    long_ago = timezone.now() - settings.CLEANUP_STALE_RUN - timedelta(minutes=1)
    PurgeRun.objects.filter(pk=killed.pk).update(started_at=long_ago, heartbeat_at=long_ago)
    result = purge_expired_jobs()

    assert result.ok and result.files_pending == 0
    assert_nothing_lost_and_nothing_left(kept, kept_names)
    killed.refresh_from_db()
    assert killed.status == PurgeRun.Status.ABANDONED and killed.finished_at is not None


def test_a_purge_killed_again_and_again_never_orphans_or_half_deletes():
    _, kept = backlog(expired=0)
    kept_names = names_of_jobs(kept)
    moments = {
        # As soon as its run is recorded: starting up, or inside its first batch's transaction.
        "starting up": lambda runs, left: PurgeRun.objects.count() > runs,
        # A batch committed since this purge started, its files being deleted.
        "deleting a batch's files": lambda runs, left: (
            Job.objects.expired().count() < left and PendingFileDeletion.objects.exists()
        ),
        # Every expired row gone, the last batch's files still being deleted.
        "deleting the last files": lambda runs, left: (
            not Job.objects.expired().exists() and PendingFileDeletion.objects.exists()
        ),
    }

    for moment, reached in moments.items():
        # Four batches of its own: a purge killed late (a loaded machine polls slowly) may have
        # committed every batch it was given, and a moment needs expired jobs left to reach.
        backlog(expired=20, live=0)
        runs, left = PurgeRun.objects.count(), Job.objects.expired().count()
        purge, name = slow_purge("--batch-size", "5")
        wait_until(
            lambda: purge.poll() is not None or reached(runs, left),  # noqa: B023
            90,
            interval=0.05,
            message=moment,
        )
        assert purge.poll() is None, f"the purge finished before {moment}"
        kill(purge, name)
        assert_whole_after_a_crash(kept_names)

    result = purge_expired_jobs()

    assert result.ok
    assert_nothing_lost_and_nothing_left(kept, kept_names)


def terminate(pids):
    with connection.cursor() as cursor:
        for pid in pids:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])


def test_a_purge_whose_database_connection_is_cut_fails_clearly_and_the_next_run_completes():
    gone, kept = backlog()
    kept_names = names_of_jobs(kept)
    purge, name = slow_purge("--batch-size", "5")
    wait_until(
        lambda: purge.poll() is not None or mid_run(len(gone)),
        90,
        interval=0.05,
        message="the purge to be mid-run",
    )
    pids = backend_pids(name)
    assert purge.poll() is None and pids, "the purge finished before its connection was cut"
    terminate(pids)
    out, err = purge.communicate(timeout=60)

    assert purge.returncode != 0
    assert "the purge failed on the database" in err
    # The server's own words if the purge reads them before it next writes; otherwise libpq's,
    # or psycopg's once it has seen the socket close.
    lost = "terminating connection|server closed the connection|the connection is lost"
    assert re.search(rf"OperationalError: [^\n]*({lost})", err), err
    assert "Traceback" not in err
    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.FAILED
    assert run.finished_at is not None and "OperationalError" in run.error
    assert 0 < run.jobs_deleted < len(gone)
    assert half_deleted_jobs() == []
    assert stored(kept_names) == kept_names

    result = purge_expired_jobs()

    assert result.ok
    assert run.jobs_deleted + result.jobs_deleted == len(gone)
    assert_nothing_lost_and_nothing_left(kept, kept_names)


def test_a_purge_cut_off_from_storage_and_database_records_its_failure_and_reports_the_cause(
    settings,
):
    gone, kept = backlog(expired=3, live=1)
    kept_names, gone_names = names_of_jobs(kept), names_of_jobs(gone)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.faulty_storage.PartitionedStorage"},
    }

    # The cause is the database connection, not the secondary "connection is closed".
    with pytest.raises(CommandError, match="failed on the database: OperationalError: terminating"):
        call_command("purge_expired_jobs", stdout=StringIO())

    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.FAILED and run.finished_at is not None
    assert run.error.startswith("OperationalError: terminating connection")
    assert run.jobs_deleted == len(gone)  # the batch had committed before the partition
    assert half_deleted_jobs() == []
    # The files of the purged rows wait, recorded, for the next run.
    assert set(PendingFileDeletion.objects.values_list("name", flat=True)) == set(gone_names)
    assert stored(gone_names) == gone_names

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    result = purge_expired_jobs()

    assert result.ok and result.files_deleted == 4 * len(gone)
    assert_nothing_lost_and_nothing_left(kept, kept_names)


@pytest.mark.redis
def tasks_ended(log) -> int:
    """Tasks the worker's log says returned or raised."""
    text = log.read_text()
    return text.count("] succeeded in ") + text.count("] raised unexpected")


def test_two_copies_of_the_task_at_once_count_each_job_once(tmp_path):
    gone, kept = backlog()
    kept_names = names_of_jobs(kept)
    gone_files = len(names_of_jobs(gone))
    queue = f"test-{uuid.uuid4().hex[:8]}"
    # CLEANUP_MAX_PARALLEL=1: each copy purges by itself instead of fanning out (test_scale.py).
    env = child_env(
        **{
            **SLOW,
            "FMR_TEST_STORAGE_DELAY": "0.03",
            "CLEANUP_BATCH_SIZE": "5",
            "CLEANUP_MAX_PARALLEL": "1",
        }
    )
    from cleanup.tasks import delete_expired_jobs

    # Two child processes of one worker: the same task delivered twice (two beats, a
    # redelivery) runs truly side by side.
    with celery(
        "worker",
        "--pool=prefork",
        "--concurrency=2",
        "-Q",
        queue,
        "--loglevel=INFO",
        env=env,
        log_path=tmp_path / "worker.log",
    ) as worker:
        for _ in range(2):
            delete_expired_jobs.apply_async(queue=queue)
        # Both tasks returned, not only their runs recorded: stopping the worker's process group
        # while a child still finishes its task would lose that child (WorkerLostError).
        wait_until(
            lambda: (
                PurgeRun.objects.exclude(status=PurgeRun.Status.RUNNING).count() == 2
                and tasks_ended(tmp_path / "worker.log") == 2
                or worker.poll() is not None
            ),
            120,
            message="both runs to finish",
        )

    runs = list(PurgeRun.objects.all())
    assert [run.status for run in runs] == [PurgeRun.Status.SUCCEEDED] * 2, [r.error for r in runs]
    assert sum(run.jobs_deleted for run in runs) == len(gone)
    assert sum(run.files_deleted for run in runs) == gone_files
    # Both really worked on the backlog, side by side.
    assert all(run.jobs_deleted > 0 for run in runs)
    assert runs[0].started_at < runs[1].finished_at and runs[1].started_at < runs[0].finished_at
    assert_nothing_lost_and_nothing_left(kept, kept_names)
    log = (tmp_path / "worker.log").read_text()
    assert "ERROR" not in log and "Traceback" not in log
