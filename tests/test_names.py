"""One canonical name: rows are compared with storage in the form storage uses, and a name that
does not resolve to a key under the upload prefix is never sent to storage.

Issue 9, scenarios 3 (other spellings of a name) and 4 (names that leave the upload prefix), on
local files and on S3 over HTTP.
"""

import json
import os
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.utils import timezone
from django.utils.html import escape

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs, purge_status, reconcile_storage
from jobs.models import Job, JobFile, job_file_upload_to
from tests.helpers import NO_ROWS, expired_job, file_names, job_ttl, live_job, rows_of, stored

pytestmark = pytest.mark.django_db

# Other spellings of jobs/{a}/p.png, as issue 9 found them in rows.
ALIASES = [
    "/jobs/{a}/p.png",
    "jobs//{a}/p.png",
    "jobs/./{a}/p.png",
    "jobs/{a}/x/../p.png",
    "jobs\\{a}\\p.png",
]
# Names that leave the upload prefix, and where each would land in storage.
ESCAPES = {
    "jobs/../../etc/passwd": "etc/passwd",
    "jobs/../static/app.css": "static/app.css",
    "/other-app/uploads/u1.png": "other-app/uploads/u1.png",
}


def past():
    return timezone.now() - job_ttl() - timedelta(minutes=5)


def job_with_file(name, *, expired):
    job = Job.objects.create(created_at=past() if expired else timezone.now())
    JobFile.objects.create(job=job, kind=JobFile.Kind.ORIGINAL, file=name)
    return job


def put(name, data=b"png"):
    saved = default_storage.save(name, ContentFile(data))
    assert saved == name
    return name


def refused():
    return {
        p.name: p.refused_reason for p in PendingFileDeletion.objects.exclude(refused_reason="")
    }


@pytest.mark.parametrize("alias", ALIASES)
def test_an_expired_row_spelled_otherwise_never_deletes_the_live_file(any_storage, alias):
    a = uuid.uuid4().hex
    live = put(f"jobs/{a}/p.png")
    keep = job_with_file(live, expired=False)
    gone = job_with_file(alias.format(a=a), expired=True)
    other = expired_job()  # a clean job beside it: its files still go
    other_names = file_names(other)

    result = purge_expired_jobs()

    assert stored([live]) == [live]
    assert rows_of(gone.pk) == NO_ROWS and rows_of(other.pk) == NO_ROWS
    assert Job.objects.filter(pk=keep.pk).exists()
    assert stored(other_names) == []
    assert set(refused()) == {alias.format(a=a)}
    assert not result.ok and result.files_refused == 1 and result.files_deleted == 4
    assert PurgeRun.objects.get(pk=result.run_id).files_refused == 1


@pytest.mark.parametrize("alias", ALIASES)
def test_a_live_row_spelled_otherwise_keeps_its_file_when_the_canonical_row_expires(
    any_storage, alias
):
    a = uuid.uuid4().hex
    canonical = put(f"jobs/{a}/p.png")
    keep = job_with_file(alias.format(a=a), expired=False)
    gone = job_with_file(canonical, expired=True)

    result = purge_expired_jobs()

    assert stored([canonical]) == [canonical]
    assert rows_of(gone.pk) == NO_ROWS and Job.objects.filter(pk=keep.pk).exists()
    assert result.files_deleted == 0


def test_a_live_row_with_the_very_same_name_keeps_the_file_when_the_other_row_expires(any_storage):
    name = put(f"jobs/{uuid.uuid4().hex}/p.png")
    keep = job_with_file(name, expired=False)
    gone = job_with_file(name, expired=True)
    other = expired_job()  # a batch of several jobs: the other names still go

    result = purge_expired_jobs()

    assert stored([name]) == [name]
    assert rows_of(gone.pk) == NO_ROWS and Job.objects.filter(pk=keep.pk).exists()
    assert stored(file_names(other)) == [] and result.files_deleted == 4
    assert not PendingFileDeletion.objects.exists()  # the live row owns the name now


@pytest.mark.parametrize("name,lands", list(ESCAPES.items()))
def test_a_name_that_leaves_the_upload_prefix_is_never_sent_to_storage(
    any_storage, name, lands, media_root, tmp_path
):
    if any_storage != "local":
        put(lands, b"someone else's")
        where = lambda: default_storage.exists(lands)  # noqa: E731
    else:
        target = os.path.normpath(os.path.join(media_root, name.lstrip("/")))
        if name.startswith("/"):
            target = os.path.join(tmp_path, lands)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as f:
            f.write(b"someone else's")
        where = lambda: os.path.exists(target)  # noqa: E731
    gone = job_with_file(name, expired=True)
    other = expired_job()

    result = purge_expired_jobs()

    assert where(), "a key outside the upload prefix was deleted"
    assert rows_of(gone.pk) == NO_ROWS
    assert stored(file_names(other)) == [] and result.files_deleted == 4
    reasons = refused()
    assert set(reasons) == {name} and reasons[name]
    assert result.status == PurgeRun.Status.FILES_PENDING and result.files_refused == 1
    assert name not in result.error


@pytest.mark.parametrize(
    "name",
    ["jobs/a/\np.png", "jobs/a/p\x1b.png", "jobs/a//p.png", "jobs/", "jobs", "jobs/a/p.png/"],
    ids=["newline", "escape", "empty segment", "prefix only", "no slash", "trailing slash"],
)
def test_control_characters_and_empty_segments_are_refused_with_a_reason(any_storage, name):
    gone = job_with_file(name, expired=True)
    result = purge_expired_jobs()
    assert rows_of(gone.pk) == NO_ROWS
    assert set(refused()) == {name} and result.files_refused == 1


def test_the_storage_is_not_even_asked_about_a_refused_name(s3_two):
    client = default_storage.connection.meta.client
    sent = []
    client.meta.events.register("before-call.s3.DeleteObjects", lambda **kw: sent.append(1))
    for name in [*ESCAPES, *(a.format(a="x") for a in ALIASES)]:
        job_with_file(name, expired=True)

    result = purge_expired_jobs()

    assert sent == [] and result.files_refused == len(ESCAPES) + len(ALIASES)


def test_a_symlinked_directory_does_not_carry_a_delete_out_of_media_root(media_root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.png").write_bytes(b"not ours")
    (outside / "victim2.png").write_bytes(b"not ours either")
    (media_root / "jobs" / "b").mkdir(parents=True)
    os.symlink(outside, media_root / "jobs" / "link")
    os.symlink(outside / "victim2.png", media_root / "jobs" / "b" / "f.png")
    gone = [
        job_with_file("jobs/link/victim.png", expired=True),
        job_with_file("jobs/b/f.png", expired=True),
    ]
    other = expired_job()

    result = purge_expired_jobs()

    assert (outside / "victim.png").read_bytes() == b"not ours"
    # A symlinked file inside jobs/ loses the link only, never what it points at.
    assert (outside / "victim2.png").read_bytes() == b"not ours either"
    assert not os.path.lexists(media_root / "jobs" / "b" / "f.png")
    assert all(rows_of(job.pk) == NO_ROWS for job in gone)
    assert stored(file_names(other)) == []
    reasons = refused()
    assert set(reasons) == {"jobs/link/victim.png"}
    assert all("MEDIA_ROOT" in reason for reason in reasons.values())
    assert result.files_refused == 1


def test_refused_names_are_kept_and_do_not_block_the_sweep_of_others(any_storage):
    job_with_file("jobs/../static/app.css", expired=True)
    purge_expired_jobs()
    pending = put("jobs/later/original-1.png")
    keep = live_job()
    PendingFileDeletion.objects.record([pending])

    result = purge_expired_jobs()

    assert stored([pending]) == [] and stored(file_names(keep)) == file_names(keep)
    assert set(refused()) == {"jobs/../static/app.css"}
    assert not PendingFileDeletion.objects.filter(name=pending).exists()
    # Still shown, still not a clean success while it is there.
    assert result.files_deleted == 1


def test_purge_status_and_the_admin_show_refused_names_with_their_reasons(
    any_storage, client, staff
):
    for name in ESCAPES:
        job_with_file(name, expired=True)
    purge_expired_jobs()

    facts = purge_status()
    assert facts.refused_files == 3 and sum(facts.refused_reasons.values()) == 3
    out = StringIO()
    call_command("purge_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["refused_files"] == 3 and data["refused_reasons"]
    assert not any(name in out.getvalue() for name in ESCAPES)
    call_command("purge_status", stdout=(out := StringIO()))
    assert "refused" in out.getvalue()
    with pytest.raises(CommandError, match="refused"):
        call_command("purge_status", "--max-overdue", "60", stdout=StringIO())

    client.force_login(staff)
    page = client.get("/admin/cleanup/pendingfiledeletion/").content.decode()
    reason = next(iter(refused().values()))
    assert escape(reason) in page
    assert client.get("/admin/cleanup/pendingfiledeletion/?refused=yes").status_code == 200


def test_the_reconciler_counts_an_object_named_in_any_spelling_as_held(any_storage):
    held = []
    for alias in ALIASES:
        a = uuid.uuid4().hex
        held.append(put(f"jobs/{a}/p.png"))
        job_with_file(alias.format(a=a), expired=False)
    a = uuid.uuid4().hex
    held.append(put(f"jobs/{a}/q.png"))
    PendingFileDeletion.objects.record([f"jobs//{a}/q.png"])
    orphan = put(f"jobs/{uuid.uuid4().hex}/orphan.png")

    result = reconcile_storage(delete=True, now=timezone.now() + timedelta(hours=2))

    assert stored(held) == held
    assert stored([orphan]) == []
    assert (result.held, result.orphans, result.deleted) == (len(held), 1, 1)


# --- new rows cannot be saved with such names --------------------------------------------------

BAD_NAMES = [
    *(a.format(a="x") for a in ALIASES),
    *ESCAPES,
    "jobs/a/\np.png",
    "jobs/a/p\x7f.png",
    "jobs/a/../../b.png",
    "other/a.png",
    "jobs/",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_model_validation_refuses_an_unsafe_name(name):
    job = Job.objects.create()
    row = JobFile(job=job, kind=JobFile.Kind.ORIGINAL, file=name)
    with pytest.raises(ValidationError) as refused_name:
        row.full_clean()
    assert "file" in refused_name.value.message_dict


def test_model_validation_accepts_the_names_uploads_get(any_storage):
    job = live_job()
    for row in JobFile.objects.filter(job=job):
        row.full_clean()


@pytest.mark.parametrize(
    "filename", ["../../etc/passwd", "a.p\x00ng", "x.\\..", "..", "photo.PNG", "noext", "a/b/.."]
)
def test_the_upload_path_never_builds_an_unsafe_name(filename):
    from jobs.models import validate_upload_name

    job = Job.objects.create()
    row = JobFile(job=job, kind=JobFile.Kind.ORIGINAL)
    name = job_file_upload_to(row, filename)
    validate_upload_name(name)
    assert name.startswith(f"jobs/{job.pk}/original-")


def test_the_upload_path_refuses_a_kind_that_is_not_one(any_storage):
    job = Job.objects.create()
    row = JobFile(job=job, kind="../../x")
    with pytest.raises((ValueError, ValidationError)):
        row.file.save("p.png", ContentFile(b"png"), save=True)
    assert not JobFile.objects.exists()


# --- the reference check stays cheap ---------------------------------------------------------


@pytest.mark.postgres
def test_postgresql_finds_other_spellings_through_a_partial_index_not_a_scan():
    from django.db import connection

    from cleanup.storage.names import NON_CANONICAL_PATTERN

    for manager, column in [(JobFile.objects, "file"), (PendingFileDeletion.objects, "name")]:
        query = manager.filter(**{f"{column}__regex": NON_CANONICAL_PATTERN}).values(column)
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert "cleanup_odd_" in plan, plan
