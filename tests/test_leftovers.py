"""No leftovers: no empty job directories, and run records that tell the truth to the end."""

import signal
import uuid
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from cleanup import storage
from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from cleanup.services.files import open_storage
from jobs.models import UPLOAD_PREFIX, Job
from tests.helpers import FULL_JOB_ROWS, bulk_expired_jobs, expired_job, file_names, live_job
from tests.processes import child_env, manage, wait_until

pytestmark = pytest.mark.django_db


def test_a_purged_jobs_directory_goes_with_its_last_file(media_root):
    gone = [expired_job(), expired_job()]
    kept = live_job()
    directories = {(media_root / name).parent for job in gone for name in file_names(job)}
    assert all(d.is_dir() for d in directories)

    purge_expired_jobs()

    assert not any(d.exists() for d in directories)
    assert [p.name for p in (media_root / UPLOAD_PREFIX).iterdir()] == [str(kept.pk)]
    assert all((media_root / name).is_file() for name in file_names(kept))


def test_neither_media_root_nor_the_upload_prefix_is_ever_removed(media_root):
    job = expired_job()

    purge_expired_jobs()

    assert not Job.objects.filter(pk=job.pk).exists()
    assert (media_root / UPLOAD_PREFIX).is_dir() and list(
        (media_root / UPLOAD_PREFIX).iterdir()
    ) == []
    # Files right in the upload prefix or in MEDIA_ROOT itself: their parent stays.
    flat = default_storage.save(f"{UPLOAD_PREFIX}/flat.png", ContentFile(b"x"))
    top = default_storage.save("top.png", ContentFile(b"x"))
    outcome = storage.delete_names([flat, top], session=open_storage())
    assert outcome.deleted == [flat]
    # A name outside the upload prefix is never sent to storage at all (issue 9).
    assert list(outcome.refused) == [top] and (media_root / top).is_file()
    assert (media_root / UPLOAD_PREFIX).is_dir() and media_root.is_dir()


def test_a_directory_with_anything_else_in_it_stays(media_root):
    job = expired_job()
    folder = (media_root / file_names(job)[0]).parent
    (folder / "not-a-job-file.txt").write_bytes(b"x")

    purge_expired_jobs()

    assert [p.name for p in folder.iterdir()] == ["not-a-job-file.txt"]


def test_a_finished_run_keeps_its_heartbeat(any_storage):
    for i in range(3):
        expired_job(by=timedelta(minutes=i + 1))

    result = purge_expired_jobs(batch_size=1)

    run = PurgeRun.objects.get(pk=result.run_id)
    assert result.batches == 3
    assert run.heartbeat_at is not None
    assert run.started_at <= run.heartbeat_at <= run.finished_at


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_run_killed_in_its_file_step_shows_the_batches_it_committed(tmp_path):
    bulk_expired_jobs(6)
    # Storage so slow that the child is still deleting the first batch's files when killed.
    deleting = tmp_path / "deleting"
    env = child_env(
        DJANGO_SETTINGS_MODULE="tests.slow_settings",
        FMR_TEST_STORAGE_DELAY="60",
        FMR_TEST_DELETING_FLAG=deleting,
    )
    child = manage("purge_expired_jobs", "--batch-size", "4", env=env)
    try:
        wait_until(deleting.exists, timeout=60, message="the first batch's file step")
        # The next batch's rows go while the first batch's files are still being deleted.
        wait_until(lambda: not Job.objects.exists(), timeout=60, message="the second batch")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)

    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.RUNNING  # nothing could record the kill
    assert run.batches == 2 and run.jobs_deleted == 6
    assert run.rows_deleted == {label: 6 * n for label, n in FULL_JOB_ROWS.items()}
    assert PendingFileDeletion.objects.count() == 24  # every name of both batches still pending
    assert run.heartbeat_at is not None


def test_the_storage_layer_removes_a_job_directory_left_empty(media_root):
    name = default_storage.save(f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo.png", ContentFile(b"x"))

    storage.delete_names([name], session=open_storage())

    assert not (media_root / name).parent.exists()
    assert (media_root / UPLOAD_PREFIX).is_dir()
