"""Fail closed: a purge, a sweep or a reconcile on storage the database cannot vouch for refuses
before it deletes a row or an object, and object storage never runs on the embedded database.

Issue 9, scenarios 1 (wrong storage), 2 (no database, real bucket) and 3 (the reconciler cannot
empty storage).
"""

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from cleanup.models import PendingFileDeletion, PurgeRun, StorageBinding
from cleanup.services import (
    PurgeNotPossible,
    delete_pending_files,
    purge_expired_chunk,
    purge_expired_jobs,
    reconcile_storage,
)
from jobs.models import UPLOAD_PREFIX, Job, JobFile
from tests.helpers import (
    FULL_JOB_ROWS,
    NO_ROWS,
    expired_job,
    file_names,
    live_job,
    rows_of,
    stored,
)
from tests.processes import ROOT, celery, child_env, run_manage, wait_until

LOCAL = {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def use_storage(settings, config):
    settings.STORAGES = {**settings.STORAGES, "default": config}


def s3_config(settings):
    return settings.STORAGES["default"]


def assert_names_both_storages(message, *, s3_bucket_name, media_root):
    assert s3_bucket_name in message, message
    assert str(media_root) in message or os.path.realpath(media_root) in message, message
    assert "bind_storage" in message, message  # how to proceed


# --- 1. the database remembers which storage holds its files ---------------------------------


@pytest.mark.django_db
def test_a_purge_on_local_storage_refuses_jobs_whose_files_live_on_s3(
    s3_bucket, settings, media_root
):
    jobs = [expired_job() for _ in range(3)]
    names = [name for job in jobs for name in file_names(job)]
    assert s3_bucket.keys() == set(names)
    use_storage(settings, LOCAL)  # a worker started without AWS_STORAGE_BUCKET_NAME

    out = StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("purge_expired_jobs", stdout=out)

    assert_names_both_storages(
        str(refused.value), s3_bucket_name=s3_bucket.name, media_root=media_root
    )
    assert not any(name in str(refused.value) for name in names)
    assert all(rows_of(job.pk) == FULL_JOB_ROWS for job in jobs)
    assert s3_bucket.keys() == set(names)
    assert not PendingFileDeletion.objects.exists()
    assert not PurgeRun.objects.filter(status=PurgeRun.Status.SUCCEEDED).exists()


@pytest.mark.django_db
def test_a_purge_on_s3_refuses_jobs_whose_files_live_on_local_storage(
    s3_bucket, settings, media_root
):
    bucket_config = s3_config(settings)
    use_storage(settings, LOCAL)
    job = expired_job()
    names = file_names(job)
    use_storage(settings, bucket_config)

    with pytest.raises(PurgeNotPossible) as refused:
        purge_expired_jobs()

    assert_names_both_storages(
        str(refused.value), s3_bucket_name=s3_bucket.name, media_root=media_root
    )
    assert rows_of(job.pk) == FULL_JOB_ROWS
    use_storage(settings, LOCAL)
    assert stored(names) == names


@pytest.mark.django_db
def test_another_bucket_or_key_prefix_is_another_storage(s3_two, settings):
    job = expired_job()
    names = file_names(job)
    right = s3_config(settings)
    for options in [{"bucket_name": f"fmr-other-{uuid.uuid4().hex[:8]}"}, {"location": "x"}]:
        use_storage(settings, {**right, "OPTIONS": {**right["OPTIONS"], **options}})
        with pytest.raises(PurgeNotPossible, match="bind_storage"):
            purge_expired_jobs()
    assert rows_of(job.pk) == FULL_JOB_ROWS
    assert s3_two.keys() == set(names)


@pytest.mark.django_db
def test_another_media_root_is_another_storage(settings, tmp_path):
    job = expired_job()
    names = file_names(job)
    settings.MEDIA_ROOT = tmp_path / "elsewhere"

    with pytest.raises(PurgeNotPossible, match="bind_storage"):
        purge_expired_jobs()

    assert rows_of(job.pk) == FULL_JOB_ROWS
    settings.MEDIA_ROOT = tmp_path / "media"
    assert stored(names) == names


@pytest.mark.django_db
def test_the_same_bucket_through_another_endpoint_is_the_same_storage(s3_bucket, s3_proxy):
    # The proxy is another endpoint URL for the very same bucket: nothing to refuse.
    job = expired_job()
    result = purge_expired_jobs()
    assert result.ok and result.files_deleted == 4
    assert rows_of(job.pk) == NO_ROWS and s3_bucket.keys() == set()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_command_exits_non_zero_naming_both_storages(s3_bucket, media_root):
    job = expired_job()
    names = file_names(job)
    env = child_env()  # no AWS_STORAGE_BUCKET_NAME: local files under the test's MEDIA_ROOT
    env.pop("AWS_STORAGE_BUCKET_NAME", None)

    done = run_manage("purge_expired_jobs", env=env)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert_names_both_storages(done.stderr, s3_bucket_name=s3_bucket.name, media_root=media_root)
    assert rows_of(job.pk) == FULL_JOB_ROWS
    assert s3_bucket.keys() == set(names)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_on_the_wrong_storage_refuses_and_records_a_failed_run(s3_bucket, tmp_path):
    from cleanup.tasks import delete_expired_jobs

    jobs = [expired_job() for _ in range(3)]
    names = [name for job in jobs for name in file_names(job)]
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = child_env()
    env.pop("AWS_STORAGE_BUCKET_NAME", None)

    with celery("worker", "--pool=solo", "-Q", queue, env=env, log_path=tmp_path / "worker.log"):
        delete_expired_jobs.apply_async(queue=queue)
        wait_until(
            lambda: PurgeRun.objects.exclude(status=PurgeRun.Status.RUNNING).exists(),
            60,
            message="the run record",
        )

    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.FAILED
    assert s3_bucket.name in run.error and "bind_storage" in run.error
    assert run.jobs_deleted == 0 and run.files_deleted == 0
    assert all(rows_of(job.pk) == FULL_JOB_ROWS for job in jobs)
    assert s3_bucket.keys() == set(names)
    assert "raised" in (tmp_path / "worker.log").read_text()  # the task failed, visibly


@pytest.mark.django_db
def test_a_fan_out_chunk_on_the_wrong_storage_refuses(s3_two, settings):
    job = expired_job()
    use_storage(settings, LOCAL)
    with pytest.raises(PurgeNotPossible, match="bind_storage"):
        purge_expired_chunk(cutoff=timezone.now(), batch_size=1)
    assert rows_of(job.pk) == FULL_JOB_ROWS


@pytest.mark.django_db
def test_the_pending_sweep_on_the_wrong_storage_refuses_and_keeps_every_name(s3_two, settings):
    job = expired_job()
    names = file_names(job)
    use_storage(settings, LOCAL)
    JobFile.objects.filter(job=job).delete()  # rows gone, names pending
    assert set(PendingFileDeletion.objects.values_list("name", flat=True)) == set(names)
    default_storage.save(names[0], ContentFile(b"a local namesake"))

    with pytest.raises(PurgeNotPossible, match="bind_storage"):
        delete_pending_files()

    assert set(PendingFileDeletion.objects.values_list("name", flat=True)) == set(names)
    assert stored([names[0]]) == [names[0]]  # the local namesake was not touched either
    assert s3_two.keys() == set(names)


@pytest.mark.django_db(transaction=True)
def test_a_delete_outside_the_purge_on_the_wrong_storage_keeps_its_names_pending(s3_two, settings):
    job = expired_job()
    names = file_names(job)
    use_storage(settings, LOCAL)

    Job.objects.get(pk=job.pk).delete()  # the admin or a shell, on a misconfigured process

    assert set(PendingFileDeletion.objects.values_list("name", flat=True)) == set(names)
    assert s3_two.keys() == set(names)


@pytest.mark.django_db
def test_retry_now_on_the_wrong_storage_refuses_and_says_why(
    s3_bucket, settings, client, staff, media_root
):
    job = expired_job()
    names = file_names(job)
    JobFile.objects.filter(job=job).delete()  # pending until storage confirms
    PendingFileDeletion.objects.all().delete()
    PendingFileDeletion.objects.record(names)
    use_storage(settings, LOCAL)
    client.force_login(staff)

    response = client.post(
        "/admin/cleanup/pendingfiledeletion/",
        {
            "action": "retry_now",
            "_selected_action": list(PendingFileDeletion.objects.values_list("pk", flat=True)),
        },
        follow=True,
    )

    said = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert_names_both_storages(said, s3_bucket_name=s3_bucket.name, media_root=media_root)
    assert PendingFileDeletion.objects.count() == 4
    assert s3_bucket.keys() == set(names)


@pytest.mark.django_db
def test_the_reconciler_on_the_wrong_storage_refuses(s3_two, settings, media_root):
    keep = live_job()
    right = s3_config(settings)
    use_storage(settings, LOCAL)
    orphan = default_storage.save(f"{UPLOAD_PREFIX}/x/original-1.png", ContentFile(b"png"))

    with pytest.raises(CommandError) as refused:
        call_command("reconcile_storage", "--delete", "--grace", "0", stdout=StringIO())

    assert_names_both_storages(
        str(refused.value), s3_bucket_name=s3_two.name, media_root=media_root
    )
    assert stored([orphan]) == [orphan]
    use_storage(settings, right)
    assert s3_two.keys() == set(file_names(keep))


@pytest.mark.django_db
def test_the_first_file_written_binds_the_storage(any_storage, settings, media_root):

    assert not StorageBinding.objects.exists()
    expired_job(with_files=False)
    assert not StorageBinding.objects.exists()  # no file, nothing to remember

    live_job()

    binding = StorageBinding.objects.get()
    if any_storage != "local":
        assert binding.kind == "s3"
        assert binding.bucket == settings.STORAGES["default"]["OPTIONS"]["bucket_name"]
    else:
        assert binding.kind == "local" and binding.bucket == ""
        assert binding.location == os.path.realpath(media_root)


@pytest.mark.django_db
def test_with_nothing_bound_and_nothing_stored_a_purge_proceeds(any_storage):
    gone = expired_job(with_files=False)
    result = purge_expired_jobs()
    assert result.ok and rows_of(gone.pk) == NO_ROWS


@pytest.mark.django_db
def test_with_nothing_bound_but_file_rows_present_a_purge_refuses_with_the_way_to_bind(
    any_storage,
):
    job = Job.objects.create(created_at=timezone.now() - timedelta(days=2))
    JobFile.objects.bulk_create([JobFile(job=job, kind="original", file="jobs/x/original-1.png")])

    with pytest.raises(PurgeNotPossible, match=r"bind_storage --rebind"):
        purge_expired_jobs()

    assert Job.objects.filter(pk=job.pk).exists()


@pytest.mark.django_db
def test_with_nothing_bound_pending_names_this_storage_does_not_hold_are_refused(any_storage):
    name = "jobs/x/original-1.png"
    PendingFileDeletion.objects.record([name])

    with pytest.raises(PurgeNotPossible, match=r"bind_storage --rebind"):
        delete_pending_files()

    assert PendingFileDeletion.objects.filter(name=name).exists()
    assert not StorageBinding.objects.exists()


@pytest.mark.django_db
def test_with_nothing_bound_a_storage_that_holds_the_named_files_is_verified_and_bound(
    any_storage, settings
):
    # Rows and objects written without a file save (a bulk import, loaddata, an old deployment):
    # the configured storage is shown to hold them, so it is the one, and it is remembered.
    name = default_storage.save("jobs/x/original-1.png", ContentFile(b"png"))
    PendingFileDeletion.objects.record([name])

    assert delete_pending_files().deleted == 1

    assert stored([name]) == []
    binding = StorageBinding.objects.get()
    assert binding.kind == ("local" if any_storage == "local" else "s3")
    assert binding.bound_by.startswith("verified")


@pytest.mark.django_db
def test_bind_storage_shows_both_and_rebinds_on_purpose_recording_who_and_when(
    s3_bucket, settings, media_root
):

    job = expired_job()
    names = file_names(job)
    # The operator really moved the files: copy them to local storage, then point at it.
    contents = {n: default_storage.open(n).read() for n in names}
    use_storage(settings, LOCAL)
    for name, data in contents.items():
        default_storage.save(name, ContentFile(data))

    out = StringIO()
    with pytest.raises(CommandError, match="bind_storage --rebind"):
        call_command("bind_storage", stdout=out)
    assert s3_bucket.name in out.getvalue() and str(os.path.realpath(media_root)) in out.getvalue()

    before = timezone.now()
    call_command("bind_storage", "--rebind", "--by", "ops-kim", stdout=(out := StringIO()))

    binding = StorageBinding.objects.get()
    assert binding.kind == "local" and binding.bound_by == "ops-kim"
    assert binding.bound_at >= before
    assert s3_bucket.name in binding.previous
    result = purge_expired_jobs()
    assert result.ok and result.files_deleted == 4 and stored(names) == []
    call_command("bind_storage", stdout=StringIO())  # matches now: exit 0


@pytest.mark.django_db
def test_an_unsupported_storage_is_refused_before_a_row_is_deleted(settings):
    job = expired_job()
    use_storage(settings, {"BACKEND": "django.core.files.storage.InMemoryStorage"})

    with pytest.raises(PurgeNotPossible, match="not supported"):
        purge_expired_jobs()

    assert rows_of(job.pk) == FULL_JOB_ROWS


# --- 2. object storage needs a real database --------------------------------------------------


def refused_start(args, env, timeout=60):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def s3_env_without_database():
    env = {**os.environ, "AWS_STORAGE_BUCKET_NAME": "fmr-uploads"}
    env.pop("DATABASE_URL", None)
    return env


ENTRY_POINTS = [
    ["manage.py", "purge_expired_jobs"],
    ["manage.py", "reconcile_storage", "--delete"],
    ["manage.py", "migrate"],
    ["manage.py", "purge_status"],
    ["-m", "celery", "-A", "fmr", "worker", "--pool=solo"],
    ["-m", "celery", "-A", "fmr", "beat"],
]


def assert_clean_refusal(done, *words):
    assert done.returncode not in (0, None), done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("args", ENTRY_POINTS, ids=lambda a: " ".join(a[-2:]))
def test_object_storage_without_database_url_refuses_to_start(args, tmp_path):
    done = refused_start(args, s3_env_without_database())
    assert_clean_refusal(done, "DATABASE_URL", "AWS_STORAGE_BUCKET_NAME")


@pytest.mark.slow
@pytest.mark.parametrize(
    "args", [*ENTRY_POINTS[:1], *ENTRY_POINTS[-2:]], ids=lambda a: " ".join(a[-2:])
)
def test_any_bad_setting_is_one_clean_line_in_commands_worker_and_beat(args):
    env = {**os.environ, "CLEANUP_BATCH_SIZE": "lots"}
    done = refused_start(args, env)
    assert_clean_refusal(done, "CLEANUP_BATCH_SIZE")


@pytest.mark.slow
def test_gunicorn_refuses_a_bad_setting_in_one_clean_line(tmp_path):
    from tests.s3server import free_port

    env = s3_env_without_database()
    done = refused_start(
        ["-m", "gunicorn", "fmr.wsgi", "-b", f"127.0.0.1:{free_port()}", "--workers", "1"],
        env,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert "DATABASE_URL" in done.stderr


def test_the_embedded_default_still_runs_without_database_url():
    env = {**os.environ}
    for name in ("DATABASE_URL", "AWS_STORAGE_BUCKET_NAME"):
        env.pop(name, None)
    done = refused_start(["manage.py", "check", "--tag", "models"], env)
    assert done.returncode == 0, done.stderr


# --- 3. the reconciler cannot empty storage ---------------------------------------------------


def plant(n=1, *, size=10):
    names = []
    for _ in range(n):
        name = f"{UPLOAD_PREFIX}/{uuid.uuid4()}/original-{uuid.uuid4().hex}.png"
        names.append(default_storage.save(name, ContentFile(b"x" * size)))
    return names


def later():
    return timezone.now() + timedelta(hours=2)


@pytest.mark.django_db
@pytest.mark.slow
def test_an_empty_database_cannot_empty_storage(any_storage):
    planted = plant(50)

    out = StringIO()
    with pytest.raises(CommandError, match="--force") as refused:
        call_command("reconcile_storage", "--delete", "--grace", "0", stdout=out)

    assert "no job" in str(refused.value) and "Nothing was deleted" in str(refused.value)
    assert not any(name in str(refused.value) + out.getvalue() for name in planted)
    assert stored(planted) == planted


@pytest.mark.django_db
def test_an_empty_database_cannot_empty_storage_through_the_task_either(any_storage):
    from cleanup.tasks import reconcile_storage_task

    planted = plant(5)
    outcome = reconcile_storage_task.apply(kwargs={"delete": True, "grace_minutes": 0})
    assert outcome.failed(), outcome.result
    assert stored(planted) == planted


@pytest.mark.django_db
def test_more_than_the_allowed_share_of_orphans_is_refused_and_force_overrides(
    any_storage, settings
):
    keep = live_job()  # 4 files held
    orphans = plant(5)
    time.sleep(0.01)

    result = reconcile_storage(delete=True, now=later())

    assert result.status == "refused" and not result.ok
    assert "CLEANUP_RECONCILE_MAX_ORPHAN_SHARE" in result.error and "--force" in result.error
    assert result.orphans == 5 and result.deleted == 0
    assert stored(orphans) == orphans

    settings.CLEANUP_RECONCILE_MAX_ORPHAN_SHARE = 0.6  # 5 of 9 is 0.56
    assert reconcile_storage(delete=True, now=later()).deleted == 5
    assert stored(orphans) == [] and stored(file_names(keep)) == file_names(keep)


@pytest.mark.django_db
def test_force_overrides_after_a_person_has_looked(any_storage):
    planted = plant(3)
    with pytest.raises(CommandError):
        call_command("reconcile_storage", "--delete", "--grace", "0", stdout=StringIO())
    out = StringIO()
    call_command("reconcile_storage", "--delete", "--grace", "0", "--force", "--json", stdout=out)
    assert json.loads(out.getvalue())["deleted"] == 3
    assert stored(planted) == []


@pytest.mark.django_db
def test_real_orphans_next_to_live_files_are_still_deleted(any_storage):
    keeps = [live_job() for _ in range(2)]
    (orphan,) = plant(1)
    result = reconcile_storage(delete=True, now=later())
    assert result.ok and result.deleted == 1 and stored([orphan]) == []
    kept = [n for job in keeps for n in file_names(job)]
    assert stored(kept) == kept


@pytest.mark.django_db
def test_each_reconcile_is_recorded_with_counts_not_names(any_storage, client, staff):
    from cleanup.models import ReconcileRun

    live_job()
    planted = plant(1)
    reconcile_storage(delete=True, now=later())
    plant(10)
    refused = reconcile_storage(delete=True, now=later())

    first, second = ReconcileRun.objects.order_by("pk")
    assert (first.status, first.scanned, first.held, first.orphans, first.deleted) == (
        "succeeded",
        5,
        4,
        1,
        1,
    )
    assert first.delete and not first.forced and first.finished_at is not None
    assert second.status == "refused" and second.deleted == 0 and second.orphans == 10
    assert second.error == refused.error
    assert not any(planted[0] in (run.error or "") for run in (first, second))

    client.force_login(staff)
    page = client.get("/admin/cleanup/reconcilerun/")
    assert page.status_code == 200
    assert client.get("/admin/cleanup/reconcilerun/add/").status_code == 403
    assert client.post(f"/admin/cleanup/reconcilerun/{first.pk}/delete/").status_code == 403
