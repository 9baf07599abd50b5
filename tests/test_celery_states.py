"""Celery tells the truth: a run that ends failed or files_pending ends its task in FAILURE.

Real `celery -A fmr worker` processes with a Redis result backend, as Flower and result-based
monitors read it. The run is recorded first; the task's error carries the run's summary; the
failed task is acknowledged, never redelivered.
"""

import uuid

import pytest
from celery import current_app
from celery.backends.redis import RedisBackend
from celery.result import AsyncResult
from django.conf import settings
from django.db import connection

from cleanup.models import PurgeRun
from cleanup.services.runs import purge_facts
from cleanup.tasks import delete_expired_jobs
from jobs.models import Job, SmsLog
from tests.conftest import S3_CREDENTIALS
from tests.helpers import bulk_expired_jobs, expired_job, live_job
from tests.processes import celery, child_env, wait_until
from tests.s3server import put_objects

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

DONE = ("SUCCESS", "FAILURE")


@pytest.fixture
def results():
    """The result backend the child workers write to (this run's own Redis database)."""
    backend = RedisBackend(app=current_app, url=settings.CELERY_BROKER_URL)

    def state(task_id):
        return AsyncResult(task_id, backend=backend, app=current_app)

    return state


def worker(queue, tmp_path, name="worker", **env):
    return celery(
        "worker",
        "--pool=solo",
        "-Q",
        queue,
        "--loglevel=INFO",
        f"--hostname={name}-{queue}@%h",
        env=child_env(CELERY_RESULT_BACKEND=settings.CELERY_BROKER_URL, **env),
        log_path=tmp_path / f"{name}.log",
    )


def refusing_bucket(bucket, s3_server):
    """The test's own bucket (the one the database is bound to), refusing every delete under
    jobs/ by a bucket policy: S3 answers each key in DeleteObjects' Errors (AccessDenied), so
    the files stay pending, as with a real permission mistake."""
    bucket.deny_deletes("jobs/*")
    return {
        "AWS_STORAGE_BUCKET_NAME": bucket.name,
        "AWS_S3_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_S3_REGION_NAME": S3_CREDENTIALS["region_name"],
        "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["access_key"],
        "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["secret_key"],
        "AWS_S3_MAX_ATTEMPTS": "1",
    }


@pytest.fixture
def refused_deletes():
    """The database refuses to delete SMS logs (a trigger), so the purge's batch fails."""
    table = SmsLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE OR REPLACE FUNCTION fmr_test_refuse() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'deletes refused by a test trigger'; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            f"CREATE TRIGGER fmr_test_refuse BEFORE DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION fmr_test_refuse()"
        )

    def lift():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS fmr_test_refuse ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS fmr_test_refuse()")

    yield lift
    lift()


def test_a_run_that_leaves_files_pending_ends_its_task_in_failure_with_the_summary(
    tmp_path, results, s3_bucket, s3_server
):
    expired_job(with_files=False)
    from jobs.models import JobFile

    JobFile.objects.create(job=Job.objects.get(), kind="original", file="jobs/x/original-1.png")
    put_objects(s3_bucket.client, s3_bucket.name, ["jobs/x/original-1.png"])
    queue = f"test-{uuid.uuid4().hex[:8]}"

    with worker(queue, tmp_path, **refusing_bucket(s3_bucket, s3_server)):
        sent = delete_expired_jobs.apply_async(queue=queue)
        wait_until(lambda: results(sent.id).state in DONE, 90, message="the task to end")

    outcome = results(sent.id)
    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.FILES_PENDING and run.files_pending == 1
    assert outcome.state == "FAILURE"
    error = str(outcome.result)
    assert f"run #{run.pk}" in error and "files_pending" in error
    assert "1 file(s) pending" in error and "AccessDenied" in error
    assert run.task_id == sent.id


def test_a_failed_run_ends_its_task_in_failure_once_and_the_next_one_in_success(
    tmp_path, results, refused_deletes
):
    expired_job(with_files=False)
    queue = f"test-{uuid.uuid4().hex[:8]}"

    with worker(queue, tmp_path):
        sent = delete_expired_jobs.apply_async(queue=queue)
        wait_until(lambda: results(sent.id).state in DONE, 90, message="the task to end")

    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.FAILED and "refused by a test trigger" in run.error
    outcome = results(sent.id)
    assert outcome.state == "FAILURE"
    assert f"run #{run.pk} ended failed" in str(outcome.result)
    assert "refused by a test trigger" in str(outcome.result)

    # acks_late: had the failed task not been acknowledged, the broker would hand it to the next
    # worker on the queue (a warm shutdown puts unacknowledged messages back). A purge sent
    # after it comes out of the queue after it: on this one-at-a-time worker, a redelivered task
    # would have made a run of its own before this one's.
    refused_deletes()  # lifted: this purge succeeds
    with worker(queue, tmp_path, name="second"):
        again = delete_expired_jobs.apply_async(queue=queue)
        wait_until(lambda: results(again.id).state in DONE, 90, message="the second task")
    assert list(PurgeRun.objects.order_by("pk").values_list("task_id", flat=True)) == [
        sent.id,
        again.id,
    ]
    assert results(again.id).state == "SUCCESS"
    assert results(again.id).result["status"] == "succeeded"
    assert not Job.objects.exists()


def test_fan_out_subtasks_that_leave_files_pending_fail_and_handing_over_succeeds(
    tmp_path, results, s3_bucket, s3_server
):
    from jobs.models import JobFile

    jobs = bulk_expired_jobs(12)
    JobFile.objects.filter(job__in=jobs[6:]).delete()  # only the oldest half has files
    put_objects(s3_bucket.client, s3_bucket.name, JobFile.objects.values_list("file", flat=True))
    kept = live_job(with_files=False)
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {
        **refusing_bucket(s3_bucket, s3_server),
        "CLEANUP_BATCH_SIZE": 2,
        "CLEANUP_MAX_PARALLEL": 2,
        "CLEANUP_SUBTASK_SECONDS": 1,
    }

    with worker(queue, tmp_path, **env):
        sent = delete_expired_jobs.apply_async(queue=queue)
        wait_until(lambda: Job.objects.count() == 1, 120, message="the fanned-out purge")
        wait_until(
            lambda: (
                PurgeRun.objects.filter(group=sent.id).exists()
                and all(
                    results(run.task_id).state in DONE
                    for run in PurgeRun.objects.filter(group=sent.id)
                )
                and purge_facts(sent.id)["status"] not in ("running", "handed_over")
            ),
            90,
            message="every fan-out task to end",
        )

    assert Job.objects.get() == kept
    assert results(sent.id).state == "SUCCESS"  # it only fanned out
    runs = PurgeRun.objects.filter(group=sent.id)
    states = {run.pk: (run.status, results(run.task_id).state) for run in runs}
    for status, state in states.values():
        expected = "FAILURE" if status in ("failed", "files_pending") else "SUCCESS"
        assert state == expected, states
    assert any(status == "files_pending" for status, _ in states.values()), states
    for run in runs.filter(status="files_pending"):
        assert f"run #{run.pk}" in str(results(run.task_id).result)
    purge = purge_facts(sent.id)
    assert purge["status"] == PurgeRun.Status.FILES_PENDING
    assert purge["files_pending"] == sum(run.files_pending for run in runs) > 0
