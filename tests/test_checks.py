"""`check --deploy` finds what would make the first purge fail, before it runs, and says the fix.

Storage is checked against a real S3-compatible server over HTTP (moto): a bucket that does not
exist, credentials it refuses, an endpoint that never answers; the beat schedule against the
real database. The other commands do not wait on storage for their implicit checks, and the
commands that touch storage fail with a sentence, not a traceback, when the bucket is missing.
"""

import time
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django_celery_beat.models import PeriodicTask

from jobs.models import Job
from tests.admin_helpers import ensure_purge_schedule, ensure_reconcile_schedule
from tests.conftest import S3_CREDENTIALS
from tests.processes import child_env, run_manage
from tests.s3proxy import HANG, S3Proxy
from tests.s3server import S3Server

SECRET = "a-secret-access-key-never-shown"


def s3_env(endpoint_url, bucket, **extra):
    return child_env(
        **{
            "AWS_STORAGE_BUCKET_NAME": bucket,
            "AWS_S3_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["access_key"],
            "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["secret_key"],
            "AWS_S3_REGION_NAME": S3_CREDENTIALS["region_name"],
            **extra,
        }
    )


def check_output(**kwargs) -> str:
    """`manage.py check` in this process; the output whether or not it found errors."""
    out, err = StringIO(), StringIO()
    try:
        call_command("check", deploy=True, stdout=out, stderr=err, **kwargs)
    except SystemCheckError as exc:
        return f"{out.getvalue()}{err.getvalue()}{exc}"
    return out.getvalue() + err.getvalue()


@pytest.fixture
def schedules(db):
    ensure_purge_schedule()
    ensure_reconcile_schedule()


def missing_bucket():
    return f"fmr-missing-{uuid.uuid4().hex[:8]}"


# --- storage --------------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_check_reports_a_bucket_that_does_not_exist_with_the_fix(s3_server, schedules):
    bucket = missing_bucket()

    done = run_manage("check", "--deploy", env=s3_env(s3_server.endpoint_url, bucket))

    assert done.returncode == 1
    assert "(cleanup.E001)" in done.stderr and bucket in done.stderr
    assert "does not exist" in done.stderr and "NoSuchBucket" in done.stderr
    assert "HINT: Create the bucket" in done.stderr and "AWS_STORAGE_BUCKET_NAME" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_check_reports_credentials_the_server_refuses(schedules):
    # A second S3-compatible server that checks credentials (moto with authentication on).
    server = S3Server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"}).start()
    try:
        env = s3_env(server.endpoint_url, "fmr-uploads", AWS_SECRET_ACCESS_KEY=SECRET)
        done = run_manage("check", "--deploy", env=env)
    finally:
        server.stop()

    assert done.returncode == 1
    assert "(cleanup.E002)" in done.stderr and "refused" in done.stderr
    assert "InvalidAccessKeyId" in done.stderr
    assert "AWS_ACCESS_KEY_ID" in done.stderr and "Traceback" not in done.stderr
    assert SECRET not in done.stderr


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_check_reports_an_endpoint_that_never_answers_within_the_configured_timeouts(
    s3_server, schedules
):
    with S3Proxy(s3_server.endpoint_url) as proxy:
        proxy.set_mode(HANG)
        env = s3_env(
            proxy.endpoint_url,
            "fmr-uploads",
            AWS_S3_CONNECT_TIMEOUT="1",
            AWS_S3_READ_TIMEOUT="1",
            AWS_S3_MAX_ATTEMPTS="2",
        )
        started = time.monotonic()
        done = run_manage("check", "--deploy", env=env)
        took = time.monotonic() - started

    assert done.returncode == 1
    assert "(cleanup.E003)" in done.stderr and "could not be reached" in done.stderr
    assert proxy.endpoint_url in done.stderr and "AWS_S3_ENDPOINT_URL" in done.stderr
    assert "Traceback" not in done.stderr
    # 2 attempts x (1 s connect + 1 s read), plus starting Python and Django.
    assert took < 20, took


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_check_reports_an_endpoint_nobody_listens_on(schedules):
    from tests.s3server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"

    done = run_manage("check", "--deploy", env=s3_env(endpoint, "fmr-uploads"))

    assert done.returncode == 1
    assert "(cleanup.E003)" in done.stderr and endpoint in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.django_db
def test_a_reachable_bucket_passes_and_its_versioning_state_is_reported(s3_bucket, schedules):
    call_command("storage_lifecycle", "--apply", stdout=StringIO())  # else W021 (the backstop)
    output = check_output()

    assert "cleanup.E" not in output and "cleanup.W" not in output, output
    assert "(cleanup.I001)" in output and s3_bucket.name in output
    assert "versioning has never been enabled" in output

    s3_bucket.client.put_bucket_versioning(
        Bucket=s3_bucket.name, VersioningConfiguration={"Status": "Enabled"}
    )
    output = check_output()
    assert "(cleanup.I001)" in output and "versioning is Enabled" in output
    assert "cleanup.E" not in output, output


@pytest.mark.django_db
def test_local_storage_passes_without_reaching_any_server(schedules):
    output = check_output()

    assert "cleanup." not in output, output


# --- the beat schedule ----------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["delete-expired-jobs", "reconcile-storage"])
def test_check_reports_a_missing_schedule_row_with_the_fix(name, schedules):
    PeriodicTask.objects.filter(name=name).delete()

    output = check_output()

    assert "(cleanup.E004)" in output and f"'{name}'" in output
    assert "does not exist" in output and "HINT:" in output


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["delete-expired-jobs", "reconcile-storage"])
def test_check_reports_a_disabled_schedule_row_with_the_fix(name, schedules):
    PeriodicTask.objects.filter(name=name).update(enabled=False)

    output = check_output()

    assert "(cleanup.E005)" in output and f"'{name}'" in output
    assert "is disabled" in output and "Enabled" in output


@pytest.mark.django_db
def test_check_reports_a_schedule_row_that_runs_another_task(schedules):
    PeriodicTask.objects.filter(name="delete-expired-jobs").update(task="celery.backend_cleanup")

    output = check_output()

    assert "(cleanup.E006)" in output and "'delete_expired_jobs'" in output


@pytest.mark.django_db(transaction=True)
def test_a_database_that_was_never_migrated_is_one_clear_error(tmp_path):
    database = tmp_path / "empty.sqlite3"

    done = run_manage("check", "--deploy", env=child_env(DATABASE_URL=f"sqlite:///{database}"))

    assert done.returncode == 1
    assert "(cleanup.E007)" in done.stderr and "python manage.py migrate" in done.stderr
    assert "Traceback" not in done.stderr


# --- other commands do not wait on storage ----------------------------------------------------


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
# Not purge_status: it asks storage on purpose (whether it can be reached; test_status_storage.py).
@pytest.mark.parametrize("command", [["check"], ["migrate"], ["showmigrations", "cleanup"]])
def test_other_commands_do_not_reach_storage_in_their_implicit_checks(
    command, s3_server, schedules
):
    with S3Proxy(s3_server.endpoint_url) as proxy:
        proxy.set_mode(HANG)
        # Were the implicit checks to reach S3 they would wait 2 x (5 + 5) s here.
        env = s3_env(proxy.endpoint_url, "fmr-uploads", AWS_S3_READ_TIMEOUT="5")
        started = time.monotonic()
        done = run_manage(*command, env=env)
        took = time.monotonic() - started
        connections = proxy.connections

    assert done.returncode == 0, done.stderr
    assert connections == 0
    # Reaching S3 would have cost at least 2 x (5 + 5) s; a loaded machine's migrate can take 15.
    assert took < 20, took


# --- commands against a missing bucket ------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_seed_demo_jobs_against_a_missing_bucket_is_a_clear_error_that_leaves_no_job(s3_server):
    bucket = missing_bucket()

    env = s3_env(s3_server.endpoint_url, bucket)
    done = run_manage("seed_demo_jobs", "--expired", "1", env=env)

    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("CommandError: ")
    assert bucket in done.stderr and "NoSuchBucket" in done.stderr
    assert "manage.py check" in done.stderr
    assert not Job.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_seed_demo_jobs_against_an_unreachable_endpoint_is_a_clear_error(s3_server):
    from tests.s3server import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"

    done = run_manage("seed_demo_jobs", env=s3_env(endpoint, "fmr-uploads"))

    assert done.returncode == 1
    assert "Traceback" not in done.stderr and done.stderr.startswith("CommandError: ")
    assert "EndpointConnectionError" in done.stderr
    assert not Job.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "command",
    [
        ["purge_expired_jobs"],
        ["purge_expired_jobs", "--dry-run"],
        ["reconcile_storage"],
        ["purge_status"],
        ["list_jobs"],
    ],
)
def test_the_commands_against_a_missing_bucket_never_end_in_a_traceback(command, s3_server):
    from tests.helpers import expired_job

    expired_job(with_files=False)

    done = run_manage(*command, env=s3_env(s3_server.endpoint_url, missing_bucket()))

    assert "Traceback" not in done.stderr, done.stderr
    if done.returncode != 0:
        (error,) = [line for line in done.stderr.splitlines() if line.startswith("CommandError: ")]
        assert "NoSuchBucket" in error
