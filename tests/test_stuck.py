"""One bad name never holds back another; a name storage keeps refusing becomes *stuck*: shown,
alerted and resolvable by a person, never silently dropped, never failing every run."""

import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone

from cleanup import storage
from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs, purge_status
from cleanup.services.files import open_storage
from jobs.models import UPLOAD_PREFIX, Job, JobFile
from tests.helpers import NO_ROWS, expired_job, file_names, job_ttl, rows_of, stored

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

CHANGELIST = "/admin/cleanup/pendingfiledeletion/"


def undeletable(media_root, kind) -> str:
    """A storage name that local storage cannot delete, for a reason of that one name."""
    folder = f"{UPLOAD_PREFIX}/{uuid.uuid4()}"
    if kind == "too long":
        (media_root / folder).mkdir(parents=True)  # else the missing folder answers first
        return f"{folder}/{'x' * 300}.png"  # one component longer than NAME_MAX
    name = f"{folder}/photo.png"
    directory = media_root / name  # a directory where the file should be, and not empty
    directory.mkdir(parents=True)
    (directory / "inside").write_bytes(b"x")
    return name


def job_with_file(name, *, expired_by) -> Job:
    job = Job.objects.create(created_at=timezone.now() - job_ttl() - expired_by)
    JobFile.objects.create(job=job, kind=JobFile.Kind.ORIGINAL, file=name)
    return job


def saved(name) -> str:
    stored_as = default_storage.save(name, ContentFile(b"png"))
    assert stored_as == name
    return name


def make_due():
    PendingFileDeletion.objects.update(next_attempt_at=timezone.now())


@pytest.mark.parametrize("kind", ["directory", "too long"])
def test_a_batch_whose_only_file_fails_does_not_stop_later_batches_or_the_sweep(media_root, kind):
    bad = undeletable(media_root, kind)
    first = job_with_file(bad, expired_by=timedelta(minutes=30))  # purged in the first batch
    later = [expired_job(by=timedelta(minutes=i + 1)) for i in range(2)]
    later_names = [name for job in later for name in file_names(job)]
    left_before = saved(f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo-0.png")
    PendingFileDeletion.objects.record([left_before])  # left by an earlier run: the sweep's

    result = purge_expired_jobs(batch_size=1)

    assert rows_of(first.pk) == NO_ROWS and all(rows_of(job.pk) == NO_ROWS for job in later)
    assert stored(later_names) == [] and stored([left_before]) == []
    assert list(PendingFileDeletion.objects.values_list("name", flat=True)) == [bad]
    assert result.files_deleted == 9 and result.files_pending == 1
    reason = {"directory": "Directory not empty", "too long": "File name too long"}[kind]
    assert reason in result.error
    # The reason names no file: no job id, no key.
    assert str(first.pk) not in result.error
    assert str(first.pk) not in PendingFileDeletion.objects.get().last_error


@pytest.mark.slow
def test_the_sweep_goes_on_past_a_chunk_where_every_name_fails(media_root):
    bad = [undeletable(media_root, "directory") for _ in range(storage.S3_MAX_KEYS_PER_REQUEST)]
    PendingFileDeletion.objects.record(bad)
    PendingFileDeletion.objects.update(next_attempt_at=timezone.now() - timedelta(hours=1))
    good = [saved(f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo-{i}.png") for i in range(3)]
    PendingFileDeletion.objects.record(good)  # due later than every bad one: the second chunk

    result = purge_expired_jobs()

    assert stored(good) == []
    assert result.files_deleted == 3
    assert set(PendingFileDeletion.objects.values_list("name", flat=True)) == set(bad)


@pytest.mark.parametrize("versioning", [None, "Enabled"])
def test_one_key_s3_rejects_does_not_fail_the_good_keys_in_its_request(
    s3_bucket, s3_proxy, versioning
):
    if versioning:
        s3_bucket.client.put_bucket_versioning(
            Bucket=s3_bucket.name, VersioningConfiguration={"Status": versioning}
        )
    folder = f"{UPLOAD_PREFIX}/{uuid.uuid4()}"
    good = [f"{folder}/photo-{i}.png" for i in range(4)]
    bad = f"{folder}/photo-\x01.png"  # a control character: S3 refuses the request body
    poison = f"{folder}/photo-poison.png"  # a name the rule allows but this server rejects
    for key in [*good, poison]:
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key=key, Body=b"png")

    # The purge's path never sends such a name: it is refused before a request is built.
    outcome = storage.delete_names([good[0], bad], session=open_storage())
    assert outcome.deleted == [good[0]] and list(outcome.refused) == [bad]

    # And a key the server rejects that reaches a request anyway (S3's rules are not all known
    # here): the request rejected as a whole (400) is split, so the good keys beside it still go.
    s3_proxy.throttle_deletes(400, "MalformedXML", only_with=poison.encode())
    outcome = open_storage().delete_names([good[1], poison, good[2], good[3]])

    assert not outcome.unavailable
    assert sorted(outcome.deleted) == sorted(good[1:])
    assert list(outcome.failed) == [poison]
    assert s3_bucket.keys() == {poison}


# --- stuck names --------------------------------------------------------------------------------


@pytest.fixture
def stuck_after_3(settings):
    settings.CLEANUP_STUCK_AFTER_ATTEMPTS = 3


def run_purge_command() -> str:
    out = StringIO()
    call_command("purge_expired_jobs", stdout=out)
    return out.getvalue()


def status_text(*args) -> str:
    out = StringIO()
    call_command("purge_status", *args, stdout=out)
    return out.getvalue()


def test_the_default_is_ten_attempts(settings, media_root):
    assert settings.CLEANUP_STUCK_AFTER_ATTEMPTS == 10
    bad = undeletable(media_root, "directory")
    PendingFileDeletion.objects.record([bad])
    PendingFileDeletion.objects.update(attempts=8)

    assert purge_expired_jobs().status == PurgeRun.Status.FILES_PENDING  # 9th failure
    make_due()
    assert purge_expired_jobs().status == PurgeRun.Status.SUCCEEDED  # 10th: stuck
    assert purge_status().stuck_files == 1


def test_a_name_that_keeps_failing_becomes_stuck_and_no_longer_fails_every_run(
    media_root, stuck_after_3
):
    bad = undeletable(media_root, "directory")
    PendingFileDeletion.objects.record([bad])
    for _ in range(2):
        with pytest.raises(CommandError, match="left pending"):
            run_purge_command()
        make_due()
    run_purge_command()  # the third failure: stuck
    make_due()
    expired = expired_job()

    output = run_purge_command()  # exits 0: a stuck name is an alert, not a failed run

    run = PurgeRun.objects.order_by("-pk").first()
    assert run.status == PurgeRun.Status.SUCCEEDED and run.jobs_deleted == 1
    assert rows_of(expired.pk) == NO_ROWS
    assert "stuck" in output
    # Never dropped: still recorded, still retried.
    row = PendingFileDeletion.objects.get()
    assert row.name == bad and row.attempts == 4 and row.resolved_at is None

    facts = json.loads(status_text("--json"))
    assert facts["stuck_files"] == 1
    assert facts["oldest_stuck_seconds"] >= 0
    assert any("Directory not empty" in reason for reason in facts["stuck_reasons"])
    assert facts["last_success"]["run_id"] == run.pk
    text = status_text()
    stuck_line = next(line for line in text.splitlines() if "stuck" in line)
    assert "1" in stuck_line
    assert "Directory not empty" in text
    with pytest.raises(CommandError, match="stuck"):
        status_text("--max-overdue", "600")

    # Once a person fixes storage, the next retry deletes it and the alert clears.
    (media_root / bad / "inside").unlink()
    make_due()
    assert purge_expired_jobs().files_deleted == 1
    assert not PendingFileDeletion.objects.exists()
    assert purge_status().stuck_files == 0


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


def stuck_row(name, reason="AccessDenied: Access Denied because object protected by object lock."):
    PendingFileDeletion.objects.record([name])
    PendingFileDeletion.objects.filter(name=name).update(
        attempts=10, last_error=reason, created_at=timezone.now() - timedelta(days=2)
    )
    return PendingFileDeletion.objects.get(name=name)


def test_the_admin_shows_stuck_names_with_their_reason(staff_client):
    stuck_row(f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo.png")
    page = staff_client.get(CHANGELIST).content.decode()
    assert "stuck" in page.lower() and "protected by object lock" in page


def test_the_admin_marks_a_stuck_name_resolved_and_it_stops_counting(staff_client, staff):
    name = saved(f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo.png")
    row = stuck_row(name)
    assert purge_status().stuck_files == 1

    response = staff_client.post(
        CHANGELIST, {"action": "mark_resolved", "_selected_action": [row.pk]}, follow=True
    )

    said = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "resolved" in said.lower()
    row.refresh_from_db()
    assert row.resolved_at is not None and row.resolved_by == staff.username
    facts = purge_status()
    assert facts.stuck_files == 0 and facts.pending_files == 0
    assert status_text("--max-overdue", "0")  # no alert: a person has dealt with it
    # It stays as a record, and the purge leaves it alone.
    make_due()
    result = purge_expired_jobs()
    assert result.ok and result.files_deleted == 0
    assert PendingFileDeletion.objects.filter(pk=row.pk).exists()
    assert default_storage.exists(name)

    # Recorded again (the same name deleted again): pending again, from scratch, and deleted;
    # the person's resolution stays on record.
    PendingFileDeletion.objects.record([name])
    again = PendingFileDeletion.objects.unresolved().get(name=name)
    assert again.attempts == 0 and again.pk != row.pk
    assert purge_status().pending_files == 1
    purge_expired_jobs()
    assert not default_storage.exists(name)
    assert list(PendingFileDeletion.objects.all()) == [row]
    row.refresh_from_db()
    assert row.resolved_at is not None and row.resolved_by


def test_only_stuck_names_can_be_marked_resolved(staff_client):
    PendingFileDeletion.objects.record([f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo.png"])
    row = PendingFileDeletion.objects.get()
    staff_client.post(CHANGELIST, {"action": "mark_resolved", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.resolved_at is None


def test_marking_resolved_needs_the_retry_pending_permission(client, django_user_model):
    row = stuck_row(f"{UPLOAD_PREFIX}/{uuid.uuid4()}/photo.png")
    viewer = django_user_model.objects.create_user("viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_pendingfiledeletion"))
    client.force_login(viewer)
    client.post(CHANGELIST, {"action": "mark_resolved", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.resolved_at is None
