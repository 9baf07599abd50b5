"""Dry runs and status say the state (issue 17, item 5): a run refused before it starts records
that it never started and deleted nothing; `purge_status` says whether storage can be reached,
in its text and its JSON, and exits non-zero when it cannot.
"""

import json
import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cleanup.models import PurgeRun
from tests.conftest import S3_CREDENTIALS
from tests.helpers import FULL_JOB_ROWS, expired_job, rows_of
from tests.processes import child_env, run_manage

LOCAL = {"BACKEND": "django.core.files.storage.FileSystemStorage"}


@pytest.mark.django_db
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "purge"])
def test_a_run_refused_by_the_storage_binding_records_that_it_never_started(
    s3_bucket, settings, client, staff, dry_run
):
    job = expired_job()
    settings.STORAGES = {**settings.STORAGES, "default": LOCAL}  # a shell without the bucket

    with pytest.raises(CommandError):
        call_command("purge_expired_jobs", *(["--dry-run"] if dry_run else []), stdout=StringIO())

    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.FAILED and run.dry_run is dry_run
    assert run.error.startswith("Never started"), run.error
    assert "Nothing was deleted" in run.error and "stay purged" not in run.error
    assert rows_of(job.pk) == FULL_JOB_ROWS
    client.force_login(staff)
    page = client.get(f"/admin/cleanup/purgerun/{run.pk}/change/").content.decode()
    assert "Never started" in page
    assert "what it would have deleted" not in page and "What it deleted" not in page


def s3_env(s3_server, bucket):
    return child_env(
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_S3_REGION_NAME=S3_CREDENTIALS["region_name"],
        AWS_ACCESS_KEY_ID=S3_CREDENTIALS["access_key"],
        AWS_SECRET_ACCESS_KEY=S3_CREDENTIALS["secret_key"],
        AWS_S3_MAX_ATTEMPTS=1,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_purge_status_says_the_bucket_is_missing_and_exits_non_zero(s3_server):
    env = s3_env(s3_server, "fmr-no-such-bucket")

    text = run_manage("purge_status", env=env)
    as_json = run_manage("purge_status", "--json", env=env)

    assert text.returncode == 1 and as_json.returncode == 1
    assert re.search(r"storage: +NOT reachable", text.stdout) and "NoSuchBucket" in text.stdout
    assert text.stderr.count("\n") == 1 and "Traceback" not in text.stderr, text.stderr
    assert "storage cannot be reached" in text.stderr and "fmr-no-such-bucket" in text.stderr
    facts = json.loads(as_json.stdout)["storage"]
    assert facts["reachable"] is False and facts["problem"] == "missing"
    assert "fmr-no-such-bucket" in facts["where"]


@pytest.mark.django_db(transaction=True)
def test_purge_status_says_an_unreachable_endpoint_and_exits_non_zero():
    env = child_env(
        AWS_STORAGE_BUCKET_NAME="fmr-uploads",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="y",
        AWS_S3_MAX_ATTEMPTS=1,
    )

    done = run_manage("purge_status", "--json", env=env)

    assert done.returncode == 1 and "Traceback" not in done.stderr
    facts = json.loads(done.stdout)["storage"]
    assert facts["reachable"] is False and facts["problem"] == "unreachable"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_purge_status_says_a_reachable_bucket_and_exits_zero(s3_server, s3_bucket):
    env = s3_env(s3_server, s3_bucket.name)

    text = run_manage("purge_status", env=env)
    as_json = run_manage("purge_status", "--json", env=env)

    assert text.returncode == 0 and as_json.returncode == 0, text.stderr
    assert re.search(rf"storage: +reachable, S3 bucket '{s3_bucket.name}'", text.stdout)
    assert json.loads(as_json.stdout)["storage"]["reachable"] is True


@pytest.mark.django_db
def test_purge_status_on_local_files_reports_them_reachable():
    out = StringIO()
    call_command("purge_status", "--json", stdout=out)
    facts = json.loads(out.getvalue())["storage"]
    assert facts["reachable"] is True and facts["kind"] == "local"
