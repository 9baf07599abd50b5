"""The orphan reconciler: objects nothing names are found, and only those are deleted."""

import json
import os
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from cleanup.models import PendingFileDeletion
from cleanup.services import reconcile_storage
from cleanup.tasks import reconcile_storage_task
from fmr.celery import app
from jobs.demo import create_full_job
from jobs.models import UPLOAD_PREFIX, Job, JobFile
from tests.helpers import bind_test_storage, file_names, live_job, stored
from tests.processes import run_manage
from tests.s3proxy import ERROR, FORWARD
from tests.test_schedule import rerun_schedule_migration

pytestmark = pytest.mark.django_db

GRACE = timedelta(minutes=60)


def plant(kind="original", *, prefix=UPLOAD_PREFIX, size=100) -> str:
    """A file in storage that no row names, as a rolled-back upload or a stray write leaves."""
    name = f"{prefix}/{uuid.uuid4()}/{kind}-{uuid.uuid4().hex}.png"
    saved = default_storage.save(name, ContentFile(b"x" * size))
    assert saved == name
    return name


@pytest.fixture
def planted(any_storage):
    """Everything the reconciler meets, all older than the grace period but one young orphan."""
    keep = live_job()
    held = file_names(keep)
    pending = plant("ai_generated")
    PendingFileDeletion.objects.record([pending])  # its delete failed; the purge will retry it
    old_orphan = plant(size=1234)
    outside = plant(prefix="exports")
    old_enough = timezone.now()
    # Storage timestamps have one-second resolution on S3: keep the two groups seconds apart.
    time.sleep(2.1)
    young_orphan = plant()
    return {
        "held": held,
        "pending": pending,
        "old_orphan": old_orphan,
        "outside": outside,
        "young_orphan": young_orphan,
        # A clock at which the grace period ends between the old objects and the young one.
        "now": old_enough + timedelta(seconds=1) + GRACE,
    }


def everything(planted):
    return [
        *planted["held"],
        planted["pending"],
        planted["old_orphan"],
        planted["outside"],
        planted["young_orphan"],
    ]


def test_report_only_finds_the_old_orphan_and_deletes_nothing(planted):
    result = reconcile_storage(now=planted["now"], grace=GRACE)

    assert result.ok
    assert (result.scanned, result.young, result.held, result.orphans) == (7, 1, 5, 1)
    assert result.orphan_bytes == 1234
    assert result.examples == [planted["old_orphan"]]
    assert result.deleted == 0 and result.requests == 0
    assert stored(everything(planted)) == everything(planted)


def test_delete_removes_only_the_old_orphan(planted):
    result = reconcile_storage(delete=True, now=planted["now"], grace=GRACE)

    assert result.ok
    assert result.orphans == result.deleted == 1 and result.deleted_bytes == 1234
    assert stored([planted["old_orphan"]]) == []
    kept = [name for name in everything(planted) if name != planted["old_orphan"]]
    assert stored(kept) == kept
    assert PendingFileDeletion.objects.filter(name=planted["pending"]).exists()


def test_the_file_of_a_rolled_back_upload_is_an_orphan(any_storage):
    # Next to a live job (on a database that holds nothing, nothing is deleted without --force).
    keep = live_job()
    with pytest.raises(RuntimeError), transaction.atomic():
        job = create_full_job()
        names = file_names(job)
        raise RuntimeError("the request failed after the upload")
    assert list(Job.objects.all()) == [keep] and stored(names) == names

    result = reconcile_storage(delete=True, now=timezone.now() + GRACE + timedelta(seconds=5))

    assert result.orphans == result.deleted == 4
    assert stored(names) == []
    assert stored(file_names(keep)) == file_names(keep)


@pytest.mark.slow
def test_orphans_are_found_across_many_pages_and_chunks(any_storage):
    # More than one listing page and one database chunk (1,000 each), half of them referenced.
    names = [f"{UPLOAD_PREFIX}/{uuid.uuid4()}/original-{i:04d}.png" for i in range(1002)]
    if any_storage != "local":
        from tests.s3server import put_objects

        client = default_storage.connection.meta.client
        put_objects(client, default_storage.bucket_name, names)
    else:
        for name in names:
            default_storage.save(name, ContentFile(b"x"))
    job = Job.objects.create()
    JobFile.objects.bulk_create(
        JobFile(job=job, kind=JobFile.Kind.ORIGINAL, file=name) for name in names[::2]
    )
    bind_test_storage()  # bulk_create saves no file through the ORM, so nothing bound it

    result = reconcile_storage(delete=True, now=timezone.now() + GRACE + timedelta(seconds=5))

    assert (result.scanned, result.held, result.orphans, result.deleted) == (1002, 501, 501, 501)
    assert stored(names[::2]) == names[::2]
    assert stored(names[1::2]) == []


def test_an_empty_or_missing_prefix_is_fine(any_storage):
    result = reconcile_storage(delete=True)
    assert result.ok and result.scanned == result.orphans == 0


def test_a_negative_grace_is_refused():
    with pytest.raises(ValueError, match="non-negative"):
        reconcile_storage(grace=timedelta(minutes=-1))


@pytest.mark.parametrize("outage_at", ["listing", "delete"])
def test_an_outage_fails_the_run_loudly_and_deletes_nothing_it_should_not(
    s3_bucket, s3_proxy, outage_at
):
    orphans = [plant() for _ in range(3)]
    keep = live_job()
    later = timezone.now() + GRACE + timedelta(seconds=5)
    if outage_at == "listing":
        s3_proxy.set_mode(ERROR)
    else:
        client = default_storage.connection.meta.client
        client.meta.events.register(
            "before-call.s3.DeleteObjects", lambda **kw: s3_proxy.set_mode(ERROR)
        )

    result = reconcile_storage(delete=True, now=later)

    assert not result.ok and "ServiceUnavailable" in result.error
    assert result.deleted == 0
    s3_proxy.set_mode(FORWARD)
    assert stored(orphans) == orphans and stored(file_names(keep)) == file_names(keep)
    with pytest.raises(CommandError, match="ServiceUnavailable"):
        s3_proxy.set_mode(ERROR)
        reconcile("--delete")


# --- the command ----------------------------------------------------------------------------


def reconcile(*args):
    out = StringIO()
    call_command("reconcile_storage", *args, stdout=out)
    return out.getvalue()


def test_the_command_reports_counts_and_bytes_never_names(any_storage):
    keep = live_job()  # a database that holds nothing makes the reconciler refuse to delete
    old = time.time() - 2 * 3600
    if any_storage == "local":
        for name in file_names(keep):
            os.utime(default_storage.path(name), (old, old))
    orphan = plant(size=500)
    if any_storage == "local":
        os.utime(default_storage.path(orphan), (old, old))
        text = reconcile()
        assert "orphans: 1 (500 bytes)" in text and "report only" in text
        assert orphan not in text
        assert orphan in reconcile("--verbosity", "2")
    data = json.loads(reconcile("--json", "--grace", "0"))
    assert data["orphans"] == 1 and data["orphan_bytes"] == 500 and data["deleted"] == 0
    assert orphan not in json.dumps(data)
    assert stored([orphan]) == [orphan]

    data = json.loads(reconcile("--json", "--grace", "0", "--delete"))
    assert data["deleted"] == 1 and data["deleted_bytes"] == 500
    assert stored([orphan]) == []


@pytest.mark.parametrize("grace", ["-5", "abc", "nan", ""])
def test_a_bad_grace_is_refused_and_deletes_nothing(grace):
    orphan = plant()
    with pytest.raises(CommandError, match="number of minutes"):
        reconcile("--delete", "--grace", grace)
    assert stored([orphan]) == [orphan]


def test_a_bad_grace_exits_non_zero_with_a_clear_message():
    done = run_manage("reconcile_storage", "--grace", "-1", timeout=60)
    assert done.returncode != 0
    assert "number of minutes (0 or more)" in done.stderr
    assert "Traceback" not in done.stderr


# --- the task and its schedule -------------------------------------------------------------


def test_the_task_is_registered_and_deletes_old_orphans_with_the_scheduled_arguments():
    app.loader.import_default_modules()
    assert app.tasks["reconcile_storage"].__module__ == "cleanup.tasks"
    schedule = PeriodicTask.objects.get(name="reconcile-storage")
    keep = live_job()  # uploaded hours ago; a database that holds nothing refuses to delete
    young, old = plant(), plant()
    stamp = time.time() - 2 * 3600
    for name in [old, *file_names(keep)]:
        os.utime(default_storage.path(name), (stamp, stamp))

    summary = reconcile_storage_task.apply(kwargs=json.loads(schedule.kwargs)).get()

    assert summary["deleted"] == 1 and summary["young"] == 1
    assert stored([young, old]) == [young]


def test_migrate_creates_the_daily_schedule_in_seoul_time_deleting_by_default():
    task = PeriodicTask.objects.get(name="reconcile-storage")
    assert task.task == "reconcile_storage"
    assert task.enabled
    assert json.loads(task.kwargs) == {"delete": True, "grace_minutes": 60}
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "30",
        "4",
        "*",
        "*",
        "*",
    )
    assert str(cron.timezone) == "Asia/Seoul"


@pytest.mark.django_db(transaction=True)
def test_rerunning_the_migration_keeps_an_admins_edit_of_the_reconcile_schedule():
    rerun_schedule_migration()
    task = PeriodicTask.objects.get(name="reconcile-storage")
    task.kwargs = json.dumps({"delete": False})
    task.save()

    rerun_schedule_migration()

    assert PeriodicTask.objects.filter(name="reconcile-storage").count() == 1
    task = PeriodicTask.objects.get(name="reconcile-storage")
    assert json.loads(task.kwargs) == {"delete": False}
