"""The schedule as production runs it: a real `celery -A fmr beat` reading the database, feeding a
real `celery -A fmr worker` through Redis, and an admin changing the schedule while both run."""

import time
from datetime import timedelta
from importlib import import_module

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from cleanup.models import PurgeRun
from fmr.celery import app
from jobs.models import Job
from tests.helpers import FULL_JOB_ROWS, expired_job, file_names, live_job, rows_of, stored
from tests.processes import celery, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

PERIOD = 3  # seconds


def the_migrated_schedule():
    # Transactional tests flush every table, the data migration's schedule row included: put it
    # back exactly as `migrate` makes it (hourly, Asia/Seoul).
    migration = import_module("cleanup.migrations.0002_delete_expired_jobs_schedule")
    migration.create_schedule(django_apps, None)
    return PeriodicTask.objects.get(name=migration.TASK_NAME)


def beat_runs():
    return PurgeRun.objects.filter(trigger=PurgeRun.Trigger.BEAT)


def test_beat_follows_an_admin_schedule_change_and_the_worker_purges_on_time(tmp_path):
    task = the_migrated_schedule()
    assert task.crontab.minute == "0" and task.interval is None and task.enabled
    # Still hourly, at a minute half an hour away: not due while beat runs here, whatever the
    # clock says when the test starts.
    task.crontab.minute = str((timezone.localtime().minute + 30) % 60)
    task.crontab.save()
    now = timezone.now()
    gone = [expired_job(now, by=timedelta(minutes=i + 1)) for i in range(3)]
    kept = live_job(now)
    gone_files = [name for job in gone for name in file_names(job)]
    kept_files = file_names(kept)
    app.control.purge()  # nothing left over in this broker database's default queue
    beat_log, worker_log = tmp_path / "beat.log", tmp_path / "worker.log"

    with (
        celery("worker", "--pool=solo", "--loglevel=INFO", log_path=worker_log) as worker,
        celery(
            "beat",
            "--loglevel=DEBUG",  # "beat: Waking up": a tick has read the schedule
            f"--pidfile={tmp_path / 'beat.pid'}",
            f"--schedule={tmp_path / 'beat-schedule'}",
            log_path=beat_log,
        ) as beat,
    ):
        wait_until(lambda: "beat: Starting" in beat_log.read_text(), 60, message="beat to start")
        wait_until(lambda: "ready" in worker_log.read_text(), 60, message="the worker to start")
        wait_until(lambda: "beat: Waking up" in beat_log.read_text(), 60, message="a tick")
        # The hourly schedule is not due: beat sent nothing, nothing is purged yet.
        assert "Sending due task" not in beat_log.read_text()
        assert not beat_runs().exists() and Job.objects.count() == 4

        # What Django admin does when an operator picks "every 3 seconds" and saves.
        task = PeriodicTask.objects.get(pk=task.pk)
        task.interval, _ = IntervalSchedule.objects.get_or_create(
            every=PERIOD, period=IntervalSchedule.SECONDS
        )
        task.crontab = None
        task.save()
        changed = time.monotonic()
        # A job that is live now and expires shortly: a later period must take it.
        soon = live_job(remaining=timedelta(seconds=4))

        wait_until(
            lambda: not Job.objects.filter(pk__in=[j.pk for j in gone]).exists(),
            60,
            message="beat to purge the expired jobs",
        )
        first_purge_after = time.monotonic() - changed
        wait_until(
            lambda: not Job.objects.filter(pk=soon.pk).exists(),
            60,
            message="the job that expired later to be purged",
        )
        wait_until(
            lambda: beat_runs().filter(status=PurgeRun.Status.SUCCEEDED).count() >= 3,
            60,
            message="beat to keep running the purge every period",
        )

    # Both stopped on SIGTERM with a warm shutdown, not killed.
    assert worker.returncode == 0, worker_log.read_text()[-2000:]
    assert beat.returncode == 0, beat_log.read_text()[-2000:]
    # Beat checks the schedule at least every 5 s; the task is due one period after the change.
    assert first_purge_after < 5 + PERIOD + 10
    assert rows_of(kept.pk) == FULL_JOB_ROWS
    assert stored(kept_files) == kept_files
    assert stored(gone_files) == []
    runs = beat_runs()
    assert all(run.status == PurgeRun.Status.SUCCEEDED for run in runs)
    assert sum(run.jobs_deleted for run in runs) == len(gone) + 1
    assert not PurgeRun.objects.exclude(trigger=PurgeRun.Trigger.BEAT).exists()
    assert "DatabaseScheduler: Schedule changed." in beat_log.read_text()
    assert "Sending due task delete-expired-jobs (delete_expired_jobs)" in beat_log.read_text()
