"""Files go with their rows, durably: never before commit, never lost on failure."""

import errno

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import transaction

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from jobs.models import Job
from tests.helpers import NO_ROWS, expired_job, file_names, live_job, rows_of, stored


class BrokenStorage(FileSystemStorage):
    """Local storage whose deletes fail, as a lost mount would: an error of the file system
    itself (EIO), not of one name."""

    def delete(self, name):
        raise OSError(errno.EIO, "storage is unavailable")


def break_storage(settings):
    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": f"{__name__}.BrokenStorage"}}


def heal_storage(settings):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_delete_deletes_no_file(any_storage):
    job = expired_job()
    names = file_names(job)

    with pytest.raises(RuntimeError), transaction.atomic():
        Job.objects.get(pk=job.pk).delete()
        raise RuntimeError("something failed after the delete")

    assert stored(names) == names
    assert not PendingFileDeletion.objects.exists()
    assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_deleting_a_job_outside_the_purge_removes_its_files_after_commit(any_storage):
    job = expired_job()
    names = file_names(job)

    Job.objects.get(pk=job.pk).delete()  # as the admin or a shell would

    assert stored(names) == []
    assert not PendingFileDeletion.objects.exists()


@pytest.mark.django_db
def test_a_storage_failure_leaves_files_pending_and_a_later_run_removes_them(settings):
    job = expired_job()
    names = file_names(job)
    keep = live_job()
    break_storage(settings)

    failed = purge_expired_jobs()

    assert rows_of(job.pk) == NO_ROWS  # the rows do not wait for storage
    assert failed.status == PurgeRun.Status.FILES_PENDING
    assert failed.files_pending == 4
    assert "storage is unavailable" in failed.error
    assert set(PendingFileDeletion.objects.values_list("name", flat=True)) == set(names)
    heal_storage(settings)
    assert stored(names) == names

    later = purge_expired_jobs()

    assert later.status == PurgeRun.Status.SUCCEEDED
    assert later.files_deleted == 4
    assert stored(names) == []
    assert not PendingFileDeletion.objects.exists()
    assert stored(file_names(keep)) == file_names(keep)


@pytest.mark.django_db
def test_a_pending_name_that_a_live_row_still_uses_is_never_deleted():
    keep = live_job()
    names = file_names(keep)
    PendingFileDeletion.objects.record(names)  # e.g. a bad manual insert

    purge_expired_jobs()

    assert stored(names) == names
    assert not PendingFileDeletion.objects.exists()


@pytest.mark.django_db
def test_the_purge_takes_file_names_from_its_cascade_not_from_the_signal(settings):
    """With the post_delete receivers gone (a deploy that disconnects them, a refactor that
    loses them), the purge still records and deletes every file of the jobs it purges."""
    from django.db.models.signals import post_delete

    from jobs.models import JobFile

    job, keep = expired_job(), live_job()
    names, kept = file_names(job), file_names(keep)
    uid = "cleanup.record_deleted_files.jobs.JobFile"
    assert post_delete.disconnect(sender=JobFile, dispatch_uid=uid)
    try:
        result = purge_expired_jobs()
    finally:
        from cleanup.receivers import record_deleted_files

        post_delete.connect(record_deleted_files, sender=JobFile, weak=False, dispatch_uid=uid)

    assert result.files_deleted == 4 and rows_of(job.pk) == NO_ROWS
    assert stored(names) == [] and stored(kept) == kept
    assert not PendingFileDeletion.objects.exists()


@pytest.mark.django_db
def test_only_the_declared_file_models_have_their_files_deleted(settings):
    from django.core.exceptions import ImproperlyConfigured

    from cleanup.file_models import file_models, validate_file_models
    from jobs.models import JobFile

    assert file_models() == [JobFile]
    settings.CLEANUP_FILE_MODELS = ["jobs.Payment"]  # no FileField
    with pytest.raises(ImproperlyConfigured, match="no FileField"):
        validate_file_models()
    settings.CLEANUP_FILE_MODELS = ["nosuch.Model"]
    with pytest.raises(ImproperlyConfigured, match="not an installed model"):
        validate_file_models()
