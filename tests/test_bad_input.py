"""Bad input gets a clear message and a non-zero exit, loses nothing, and does not stop the purge
of everything else where that is safe."""

import sqlite3
import uuid
from io import StringIO

import psycopg
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, ManagementUtility, call_command
from django.db import connection

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs
from jobs.models import Job, JobFile
from tests.conftest import S3_CREDENTIALS
from tests.helpers import (
    FULL_JOB_ROWS,
    NO_ROWS,
    expired_job,
    file_names,
    live_job,
    rows_of,
    stored,
    stored_job_files,
)
from tests.processes import child_env, run_manage

TOO_BIG = "99999999999999999999"

BAD_ARGUMENTS = [
    # (arguments, what stderr must say)
    (["--batch-size", "0"], "argument --batch-size: expected a positive whole number"),
    (["--batch-size", "-1"], "argument --batch-size: expected a positive whole number"),
    (["--batch-size", "abc"], "argument --batch-size: expected a positive whole number"),
    (["--batch-size", "1.5"], "argument --batch-size: expected a positive whole number"),
    (["--batch-size", "1e3"], "argument --batch-size: expected a positive whole number"),
    (["--batch-size", "1_000"], "argument --batch-size: expected a positive whole number"),
    (["--batch-size", ""], "argument --batch-size: expected a positive whole number"),
    (["--batch-size", TOO_BIG], "argument --batch-size: expected a positive whole number up to"),
    (["--batch-size"], "argument --batch-size: expected one argument"),
    (["--limit", "0"], "argument --limit: expected a positive whole number"),
    (["--limit", "-3"], "argument --limit: expected a positive whole number"),
    (["--limit", "ten"], "argument --limit: expected a positive whole number"),
    (["--limit", "2.5"], "argument --limit: expected a positive whole number"),
    (["--limit", "2147483648"], "argument --limit: expected a positive whole number up to"),
    (["--limit"], "argument --limit: expected one argument"),
    (["--json=yes"], "argument --json: ignored explicit argument 'yes'"),
    (["--force"], "unrecognized arguments: --force"),
    (["--batch", "3"], "unrecognized arguments: --batch 3"),
    (["--dry"], "unrecognized arguments: --dry"),
    (["yesterday"], "unrecognized arguments: yesterday"),
]


def run_cli(*args):
    """Exactly what `python manage.py purge_expired_jobs ...` does, in this process."""
    utility = ManagementUtility(["manage.py", "purge_expired_jobs", *args])
    with pytest.raises(SystemExit) as exit_info:
        utility.execute()
    return exit_info.value.code


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("args,message", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_every_bad_flag_is_refused_clearly_and_deletes_nothing(args, message, capsys):
    job = expired_job(with_files=False)

    code = run_cli(*args)

    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "usage: manage.py purge_expired_jobs" in err and "Traceback" not in err
    assert rows_of(job.pk)["jobs.Job"] == 1
    assert not PurgeRun.objects.exists()


def purge_command(database_url):
    return run_manage("purge_expired_jobs", env=child_env(DATABASE_URL=database_url))


def assert_refused_as_not_migrated(done):
    assert done.returncode == 1
    assert "is not migrated" in done.stderr
    assert "run `python manage.py migrate` first" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_sqlite_database_is_refused_with_a_hint_to_migrate(tmp_path):
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()

    done = purge_command(f"sqlite:///{path}")

    assert_refused_as_not_migrated(done)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []  # left untouched


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.slow
def test_an_empty_postgresql_database_is_refused_with_a_hint_to_migrate():
    db = connection.settings_dict
    server = {
        "host": db["HOST"] or "127.0.0.1",
        "port": db["PORT"] or 5432,
        "user": db["USER"],
        "password": db["PASSWORD"] or None,
        "autocommit": True,
    }
    name = f"{db['NAME']}_empty_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(dbname="postgres", **server) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = f"postgres://{db['USER']}@{server['host']}:{server['port']}/{name}"
            done = purge_command(url)
            with psycopg.connect(dbname=name, **server) as empty:
                tables = empty.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    assert_refused_as_not_migrated(done)
    assert tables == []


@pytest.mark.django_db
def test_a_bucket_that_does_not_exist_is_refused_before_a_row_is_purged(s3_bucket, settings):
    # Issue 9: another bucket than the one the database's files live in (here one that does not
    # even exist) is another storage: the purge refuses before it deletes a row, where it used
    # to purge the rows and leave the names pending with NoSuchBucket.
    gone = expired_job()
    kept = live_job()
    kept_names = file_names(kept)
    right_bucket = settings.STORAGES["default"]
    missing = f"fmr-missing-{uuid.uuid4().hex[:8]}"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**right_bucket, "OPTIONS": {**right_bucket["OPTIONS"], "bucket_name": missing}},
    }

    with pytest.raises(CommandError, match=rf"{s3_bucket.name}.*{missing}.*bind_storage"):
        call_command("purge_expired_jobs", stdout=StringIO())

    assert rows_of(gone.pk) == FULL_JOB_ROWS
    assert rows_of(kept.pk) == FULL_JOB_ROWS
    assert not PendingFileDeletion.objects.exists()
    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.FAILED and run.jobs_deleted == 0

    # Once storage points at the real bucket again, the next run does the job.
    settings.STORAGES = {**settings.STORAGES, "default": right_bucket}
    result = purge_expired_jobs()
    assert result.ok and result.files_deleted == 4
    assert s3_bucket.keys() == set(kept_names)
    assert not PendingFileDeletion.objects.exists()


@pytest.mark.django_db
def test_a_file_already_gone_from_storage_counts_as_deleted(any_storage):
    half_gone = expired_job()
    other = expired_job()
    kept = live_job()
    names = file_names(half_gone)
    default_storage.delete(names[0])
    default_storage.delete(names[2])

    out = StringIO()
    call_command("purge_expired_jobs", stdout=out)

    assert f"run #{PurgeRun.objects.get().pk}: succeeded" in out.getvalue()
    assert rows_of(half_gone.pk) == rows_of(other.pk) == NO_ROWS
    assert stored_job_files() == set(file_names(kept))
    assert not PendingFileDeletion.objects.exists()
    assert PurgeRun.objects.get().files_deleted == 8


@pytest.mark.django_db
def test_a_job_file_with_an_empty_name_goes_with_its_row_and_deletes_nothing(any_storage):
    odd = expired_job()
    JobFile.objects.create(job=odd, kind=JobFile.Kind.AI_GENERATED, file="")
    other = expired_job()
    kept = live_job()
    kept_names = file_names(kept)

    predicted = purge_expired_jobs(dry_run=True)
    result = purge_expired_jobs()

    assert result.ok and result.error == ""
    assert rows_of(odd.pk) == rows_of(other.pk) == NO_ROWS
    assert result.rows_deleted["jobs.JobFile"] == 9
    assert predicted.would_delete_files == result.files_deleted == 8
    assert stored(kept_names) == kept_names
    assert stored_job_files() == set(kept_names)
    assert not PendingFileDeletion.objects.exists()
    assert Job.objects.get() == kept


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_missing_bucket_configured_in_the_environment_exits_non_zero_and_loses_nothing(
    s3_bucket, s3_server
):
    # Issue 9: the bucket the database's files live in is bound; another one is refused before
    # any row is purged (it used to purge the rows and leave the files pending, NoSuchBucket).
    gone = expired_job()
    kept = live_job()
    gone_names = file_names(gone)
    missing = f"fmr-missing-{uuid.uuid4().hex[:8]}"
    env = child_env(
        AWS_STORAGE_BUCKET_NAME=missing,
        AWS_S3_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID=S3_CREDENTIALS["access_key"],
        AWS_SECRET_ACCESS_KEY=S3_CREDENTIALS["secret_key"],
    )

    done = run_manage("purge_expired_jobs", env=env)

    assert done.returncode == 1
    assert "CommandError:" in done.stderr and missing in done.stderr
    assert s3_bucket.name in done.stderr and "bind_storage" in done.stderr
    assert "Traceback" not in done.stderr
    assert rows_of(gone.pk) == FULL_JOB_ROWS and rows_of(kept.pk) == FULL_JOB_ROWS
    assert not PendingFileDeletion.objects.exists()
    assert s3_bucket.keys() >= set(gone_names)
