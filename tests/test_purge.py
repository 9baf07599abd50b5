from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from jobs.models import Job
from tests.helpers import FULL_JOB_ROWS, NO_ROWS, expired_job, file_names, live_job, rows_of, stored

pytestmark = pytest.mark.django_db


def test_an_expired_job_loses_every_row_and_every_file(any_storage):
    job = expired_job()
    names = file_names(job)
    assert rows_of(job.pk) == FULL_JOB_ROWS
    assert len(stored(names)) == 4

    result = purge_expired_jobs()

    assert rows_of(job.pk) == NO_ROWS
    assert stored(names) == []
    assert not PendingFileDeletion.objects.exists()
    assert result.jobs_deleted == 1
    assert result.rows_deleted == FULL_JOB_ROWS
    assert result.files_deleted == 4
    assert result.files_pending == 0


def test_a_live_job_keeps_every_row_and_every_file(any_storage):
    # One clock for the setup and the purge: storing eight files on a slow server can take
    # longer than the second this job has left, and then it has truly expired (CI, s3rver).
    now = timezone.now()
    gone = expired_job(now)
    kept = live_job(now, remaining=timedelta(seconds=1))
    names = file_names(kept)

    purge_expired_jobs(now=now)

    assert rows_of(gone.pk) == NO_ROWS
    assert rows_of(kept.pk) == FULL_JOB_ROWS
    assert stored(names) == names


def test_a_job_expiring_exactly_now_is_kept():
    # Expired a minute ago by the clock: a purge's `now` is never ahead of the database's.
    job = expired_job(by=timedelta(minutes=1))
    before = rows_of(job.pk)

    purge_expired_jobs(now=job.expires_at)
    assert rows_of(job.pk) == before

    purge_expired_jobs(now=job.expires_at + timedelta(microseconds=1))
    assert rows_of(job.pk) == NO_ROWS


def test_dry_run_deletes_nothing_and_predicts_the_real_run():
    jobs = [expired_job(by=timedelta(minutes=i + 1)) for i in range(3)]
    live_job()
    names = [n for job in jobs for n in file_names(job)]

    predicted = purge_expired_jobs(dry_run=True)

    assert all(rows_of(job.pk) == FULL_JOB_ROWS for job in jobs)
    assert stored(names) == names
    actual = purge_expired_jobs()
    # A dry run's prediction is under its own name; it deleted nothing and says so.
    assert predicted.would_delete_jobs == actual.jobs_deleted == 3
    assert predicted.would_delete_rows == actual.rows_deleted
    assert predicted.would_delete_files == actual.files_deleted == 12
    assert predicted.jobs_deleted == predicted.files_deleted == 0
    assert PurgeRun.objects.filter(dry_run=True).count() == 1


def test_limit_stops_at_the_limit_oldest_first():
    oldest = expired_job(by=timedelta(hours=3))
    older = expired_job(by=timedelta(hours=2))
    newest = expired_job(by=timedelta(hours=1))

    result = purge_expired_jobs(limit=2, batch_size=1)

    assert result.jobs_deleted == 2
    assert result.batches == 2
    assert not Job.objects.filter(pk__in=[oldest.pk, older.pk]).exists()
    assert rows_of(newest.pk) == FULL_JOB_ROWS


def test_a_backlog_larger_than_a_batch_is_deleted_in_several_batches():
    for i in range(7):
        expired_job(by=timedelta(minutes=i + 1), with_files=False)
    result = purge_expired_jobs(batch_size=3)
    assert result.batches == 3
    assert result.jobs_deleted == 7
    assert not Job.objects.exists()


def test_each_run_leaves_a_record_without_personal_data():
    job = expired_job()
    phone = job.sms_logs.first().phone_number
    result = purge_expired_jobs()

    run = PurgeRun.objects.get(pk=result.run_id)
    assert run.status == PurgeRun.Status.SUCCEEDED
    assert run.jobs_deleted == 1 and run.files_deleted == 4
    assert run.rows_deleted == FULL_JOB_ROWS
    assert run.finished_at >= run.started_at
    recorded = " ".join(str(v) for v in PurgeRun.objects.values().get(pk=run.pk).values())
    assert phone not in recorded and str(job.pk) not in recorded


@pytest.mark.parametrize("bad", [0, -1, "10", 2.5, True])
def test_the_service_refuses_nonsense_sizes(bad):
    job = expired_job(with_files=False)
    with pytest.raises(ValueError):
        purge_expired_jobs(batch_size=bad)
    with pytest.raises(ValueError):
        purge_expired_jobs(limit=bad)
    assert Job.objects.filter(pk=job.pk).exists()


def test_the_purge_refuses_to_run_inside_a_callers_transaction(transactional_db):
    expired_job(with_files=False)
    with pytest.raises(RuntimeError), transaction.atomic():
        purge_expired_jobs()
    assert Job.objects.count() == 1


def test_a_run_whose_process_died_is_recorded_as_abandoned_but_a_live_one_is_left_alone(settings):
    settings.CLEANUP_STALE_RUN = timedelta(minutes=30)
    now = timezone.now()
    dead = PurgeRun.objects.create(
        cutoff=now,
        batch_size=10,
        started_at=now - timedelta(hours=2),
        heartbeat_at=now - timedelta(minutes=31),
    )
    never_beat = PurgeRun.objects.create(
        cutoff=now, batch_size=10, started_at=now - timedelta(minutes=31)
    )
    slow_but_alive = PurgeRun.objects.create(
        cutoff=now,
        batch_size=10,
        started_at=now - timedelta(hours=2),
        heartbeat_at=now - timedelta(minutes=5),
    )
    just_started = PurgeRun.objects.create(cutoff=now, batch_size=10, started_at=now)

    purge_expired_jobs()

    statuses = dict(PurgeRun.objects.values_list("pk", "status"))
    assert statuses[dead.pk] == statuses[never_beat.pk] == PurgeRun.Status.ABANDONED
    assert statuses[slow_but_alive.pk] == statuses[just_started.pk] == PurgeRun.Status.RUNNING


def test_each_batch_leaves_a_sign_of_life_with_the_counts_so_far():
    for i in range(3):
        expired_job(by=timedelta(minutes=i + 1), with_files=False)
    beats = []

    def watch(jobs_so_far):
        run = PurgeRun.objects.get(status=PurgeRun.Status.RUNNING)
        beats.append((run.jobs_deleted, run.heartbeat_at is not None))

    purge_expired_jobs(batch_size=1, on_batch=watch)

    assert beats == [(1, True), (2, True), (3, True)]
