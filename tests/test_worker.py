"""The task as production runs it: through Redis to a real `celery -A fmr worker`."""

import uuid

import pytest

from cleanup.models import PurgeRun
from cleanup.tasks import delete_expired_jobs
from jobs.models import Job
from tests.helpers import FULL_JOB_ROWS, NO_ROWS, expired_job, file_names, live_job, rows_of, stored
from tests.processes import celery, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def test_a_real_worker_purges_expired_jobs_and_keeps_live_ones(tmp_path):
    gone = expired_job()
    kept = live_job()
    gone_files, kept_files = file_names(gone), file_names(kept)
    queue = f"test-{uuid.uuid4().hex[:8]}"

    with celery(
        "worker", "--pool=solo", "-Q", queue, "--loglevel=INFO", log_path=tmp_path / "worker.log"
    ):
        delete_expired_jobs.apply_async(queue=queue)
        wait_until(lambda: not Job.objects.filter(pk=gone.pk).exists(), 60, message="the purge")
        wait_until(
            lambda: PurgeRun.objects.filter(status=PurgeRun.Status.SUCCEEDED).exists(),
            30,
            message="the run record",
        )

    assert rows_of(gone.pk) == NO_ROWS
    assert stored(gone_files) == []
    assert rows_of(kept.pk) == FULL_JOB_ROWS
    assert stored(kept_files) == kept_files
    run = PurgeRun.objects.get()
    assert run.jobs_deleted == 1 and run.files_deleted == 4
    log = (tmp_path / "worker.log").read_text()
    assert "delete_expired_jobs" in log and "succeeded" in log
