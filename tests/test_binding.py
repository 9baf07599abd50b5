"""No storage is bound to the database without being shown to hold its files (issue 18, items 5
and 6): not by `bind_storage --rebind`, not by migration 0008, not by the first file a shell with
the wrong settings saves. A shell without the bucket then refuses, and every object stays.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from cleanup.models import StorageBinding
from cleanup.services import PurgeNotPossible, purge_expired_jobs
from jobs.models import Job, JobFile
from tests.helpers import FULL_JOB_ROWS, expired_job, live_job, rows_of

LOCAL = {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def use_storage(settings, config):
    settings.STORAGES = {**settings.STORAGES, "default": config}


@pytest.fixture
def twenty_objects_on_s3(s3_bucket):
    """3 expired and 2 live jobs, their 20 files in the bucket, which the database is bound to."""
    expired = [expired_job() for _ in range(3)]
    live = [live_job() for _ in range(2)]
    assert len(s3_bucket.keys()) == 20
    assert StorageBinding.objects.get().kind == "s3"
    return expired, live


def assert_nothing_went(s3_bucket, jobs):
    assert len(s3_bucket.keys()) == 20
    assert all(rows_of(job.pk) == FULL_JOB_ROWS for job in jobs)


@pytest.mark.django_db
def test_a_rebind_to_an_empty_local_media_root_refuses_in_one_line_and_the_purge_refuses_too(
    s3_bucket, twenty_objects_on_s3, settings, media_root
):
    expired, live = twenty_objects_on_s3
    use_storage(settings, LOCAL)  # a shell without AWS_STORAGE_BUCKET_NAME

    with pytest.raises(CommandError) as refused:
        call_command("bind_storage", "--rebind", "--by", "ops", stdout=StringIO())

    message = str(refused.value)
    assert "\n" not in message and "does not hold the files" in message, message
    assert "20 of" not in message and "10 of the 10 checked are missing" in message, message
    binding = StorageBinding.objects.get()
    assert binding.kind == "s3" and binding.bucket == s3_bucket.name
    with pytest.raises(PurgeNotPossible, match="bind_storage"):
        purge_expired_jobs()
    assert_nothing_went(s3_bucket, expired + live)


@pytest.mark.django_db
def test_a_rebind_to_a_partial_copy_refuses(s3_bucket, twenty_objects_on_s3, settings):
    expired, live = twenty_objects_on_s3
    newest = JobFile.objects.order_by("-pk")[0].file.name
    data = default_storage.open(newest).read()
    use_storage(settings, LOCAL)
    default_storage.save(newest, ContentFile(data))  # one file of twenty copied

    with pytest.raises(CommandError, match="9 of the 10 checked are missing"):
        call_command("bind_storage", "--rebind", stdout=StringIO())

    assert StorageBinding.objects.get().kind == "s3"


@pytest.mark.django_db
def test_a_rebind_to_a_full_copy_binds_and_the_purge_deletes_from_it(
    s3_bucket, twenty_objects_on_s3, settings, media_root
):
    expired, live = twenty_objects_on_s3
    contents = {f.file.name: f.file.read() for f in JobFile.objects.all()}
    use_storage(settings, LOCAL)
    for name, data in contents.items():
        default_storage.save(name, ContentFile(data))

    call_command("bind_storage", "--rebind", "--by", "ops", stdout=StringIO())

    assert StorageBinding.objects.get().kind == "local"
    result = purge_expired_jobs()
    assert result.ok and result.files_deleted == 12
    assert not any(
        default_storage.exists(n) for job in expired for n in contents if str(job.pk) in n
    )


def bulk_files_on_s3(s3_bucket, *, expired, live) -> list[Job]:
    """Jobs whose rows name objects in the bucket, written without a file save (as an older
    deployment, or one migrated before the binding existed, has them)."""
    now = timezone.now()
    jobs = [Job.objects.create(created_at=now - timedelta(days=2)) for _ in range(expired)]
    jobs += [Job.objects.create(created_at=now) for _ in range(live)]
    rows = []
    for job in jobs:
        for index in range(4):
            name = f"jobs/{job.pk}/photo-{index}.png"
            s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=name, Body=b"png")
            rows.append(JobFile(job=job, kind="original", file=name))
    JobFile.objects.bulk_create(rows)
    return jobs


@pytest.mark.django_db(transaction=True)
def test_migrating_from_a_shell_without_the_bucket_binds_nothing_and_the_right_shell_binds_later(
    s3_bucket, settings, media_root
):
    s3 = settings.STORAGES["default"]
    call_command("migrate", "cleanup", "0007", verbosity=0)
    try:
        jobs = bulk_files_on_s3(s3_bucket, expired=3, live=2)
        use_storage(settings, LOCAL)  # the shell that runs `migrate` has no bucket settings

        call_command("migrate", verbosity=0)

        assert not StorageBinding.objects.exists()
        with pytest.raises(PurgeNotPossible, match="does not hold the files"):
            purge_expired_jobs()
        assert len(s3_bucket.keys()) == 20 and Job.objects.count() == 5
        assert not StorageBinding.objects.exists()

        use_storage(settings, s3)  # the worker, with the bucket: verified, bound, purged
        result = purge_expired_jobs()
        assert result.ok and result.jobs_deleted == 3 and result.files_deleted == 12
        assert len(s3_bucket.keys()) == 8
        binding = StorageBinding.objects.get()
        assert binding.bucket == s3_bucket.name and binding.bound_by.startswith("verified")
        assert {job.pk for job in jobs[3:]} == set(Job.objects.values_list("pk", flat=True))
    finally:
        call_command("migrate", verbosity=0)


@pytest.mark.django_db
def test_a_file_saved_from_a_shell_without_the_bucket_does_not_bind_its_storage(
    s3_bucket, settings, media_root
):
    jobs = bulk_files_on_s3(s3_bucket, expired=3, live=2)
    use_storage(settings, LOCAL)

    with pytest.raises(PurgeNotPossible, match="does not hold the files"):
        live_job()

    assert not StorageBinding.objects.exists()
    with pytest.raises(PurgeNotPossible):
        purge_expired_jobs()
    assert len(s3_bucket.keys()) == 20 and all(Job.objects.filter(pk=j.pk).exists() for j in jobs)


@pytest.mark.django_db
def test_the_storage_unreachable_during_verification_binds_nothing(s3_bucket, settings, media_root):
    bulk_files_on_s3(s3_bucket, expired=1, live=0)
    options = {**settings.STORAGES["default"]["OPTIONS"], "endpoint_url": "http://127.0.0.1:9"}
    use_storage(settings, {**settings.STORAGES["default"], "OPTIONS": options})

    with pytest.raises(PurgeNotPossible, match="could not be checked"):
        purge_expired_jobs()

    assert not StorageBinding.objects.exists() and len(s3_bucket.keys()) == 4
