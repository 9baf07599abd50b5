"""The backstop (issue 21): a bounded worst case, no stray copies, links that die with their job.

- S3 itself deletes the jobs' files JOB_TTL + 1 day after upload if the purge never runs: the
  lifecycle rule storage_lifecycle writes, merged with the bucket's own, and the system check that
  says when it is missing or when a rule would delete live jobs' files;
- incomplete multipart uploads (bytes no listing shows) are aborted by the reconciler unless
  their job is live;
- a file's link is valid no longer than its job.

On moto over HTTP; on SeaweedFS where it is the server that does the real
thing (keeps an upload's real start time, refuses an expired link); on s3rver
for what it has: expired links refused, and no lifecycle nor multipart
listing (NotImplemented), which must not break a reconcile.
"""

import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command
from django.core.management.base import SystemCheckError
from django.utils import timezone

from cleanup.models import ReconcileRun
from cleanup.services import reconcile_storage
from jobs.models import FileExpired, Job
from tests.conftest import bucket_on
from tests.helpers import expired_job, live_job

pytestmark = pytest.mark.django_db

FOREIGN = {
    "ID": "keep-logs-30-days",
    "Status": "Enabled",
    "Filter": {"Prefix": "logs/"},
    "Expiration": {"Days": 30},
}


@pytest.fixture
def seaweed_bucket(seaweedfs_server, settings):
    """A bucket of its own on SeaweedFS: its lifecycle rules and uploads are the test's alone."""
    found = bucket_on(seaweedfs_server, settings, fresh=True)
    return found.client, found.name


@pytest.fixture
def s3rver_bucket(s3rver_server, settings):
    found = bucket_on(s3rver_server, settings)
    return found.client, found.name


@pytest.fixture(params=["moto", "seaweedfs"])
def bucket(request):
    """(client, bucket name) on each server that keeps a lifecycle configuration."""
    if request.param == "moto":
        found = request.getfixturevalue("s3_bucket")
        return found.client, found.name
    return request.getfixturevalue("seaweed_bucket")


def lifecycle(*args) -> str:
    out = StringIO()
    call_command("storage_lifecycle", *args, stdout=out)
    return out.getvalue()


def deploy_checks() -> str:
    """`manage.py check --deploy` in this process (where the storage checks run); its output."""
    out = StringIO()
    try:
        call_command("check", deploy=True, stdout=out, stderr=out)
    except SystemCheckError as exc:
        return f"{out.getvalue()}{exc}"
    return out.getvalue()


def rules_of(client, name) -> dict[str, dict]:
    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "NoSuchLifecycleConfiguration"
        return {}
    return {rule["ID"]: rule for rule in rules}


# --- 1. the lifecycle backstop ------------------------------------------------------------------


def test_apply_adds_the_backstop_and_keeps_every_other_rule(bucket):
    client, name = bucket
    client.put_bucket_lifecycle_configuration(
        Bucket=name, LifecycleConfiguration={"Rules": [FOREIGN]}
    )
    out = lifecycle("--apply")
    assert "Wrote the backstop rules" in out
    rules = rules_of(client, name)
    assert rules["keep-logs-30-days"] == FOREIGN
    backstop = rules["fmr-jobs-backstop"]
    assert backstop["Filter"] == {"Prefix": "jobs/"}
    assert backstop["Expiration"] == {"Days": 2}  # 24 h + 1 day
    assert backstop["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert backstop["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    markers = rules["fmr-jobs-delete-markers"]
    assert markers["Filter"] == {"Prefix": "jobs/"}
    assert markers["Expiration"] == {"ExpiredObjectDeleteMarker": True}


def test_a_second_apply_changes_nothing_and_says_so(bucket):
    client, name = bucket
    lifecycle("--apply")
    before = rules_of(client, name)
    out = lifecycle("--apply")
    assert "already in place" in out and "nothing changed" in out
    assert rules_of(client, name) == before


def test_apply_replaces_only_its_own_stale_rule(s3_bucket):
    stale = {
        "ID": "fmr-jobs-backstop",
        "Status": "Enabled",
        "Filter": {"Prefix": "jobs/"},
        "Expiration": {"Days": 9},
    }
    s3_bucket.client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket.name, LifecycleConfiguration={"Rules": [FOREIGN, stale]}
    )
    lifecycle("--apply")
    rules = rules_of(s3_bucket.client, s3_bucket.name)
    assert list(rules) == ["keep-logs-30-days", "fmr-jobs-backstop", "fmr-jobs-delete-markers"]
    assert rules["keep-logs-30-days"] == FOREIGN
    assert rules["fmr-jobs-backstop"]["Expiration"] == {"Days": 2}


@pytest.mark.parametrize("args", [("--dry-run",), ()])
def test_dry_run_and_no_flag_print_the_merged_rules_and_write_nothing(s3_bucket, args):
    out = lifecycle(*args)
    assert '"fmr-jobs-backstop"' in out and '"ExpiredObjectDeleteMarker": true' in out
    assert "Not written (dry run)" in out
    assert rules_of(s3_bucket.client, s3_bucket.name) == {}


@pytest.mark.parametrize(
    ("ttl_hours", "days"), [(1, 2), (24, 2), (25, 3), (47, 3), (48, 3), (49, 4)]
)
def test_expiration_is_the_smallest_whole_day_count_past_ttl_plus_a_day(
    s3_bucket, settings, ttl_hours, days
):
    settings.JOB_TTL = timedelta(hours=ttl_hours)
    lifecycle("--apply")
    rules = rules_of(s3_bucket.client, s3_bucket.name)
    assert rules["fmr-jobs-backstop"]["Expiration"] == {"Days": days}


def test_a_server_without_lifecycle_is_one_line_and_changes_nothing(s3rver_bucket):
    with pytest.raises(CommandError, match="not changed: .*NotImplemented"):
        lifecycle("--apply")
    assert "cleanup.W022" in deploy_checks()


def test_both_flags_are_refused(s3_bucket):
    with pytest.raises(CommandError, match="not allowed with"):
        lifecycle("--apply", "--dry-run")


def test_local_storage_has_nothing_to_set():
    out = lifecycle("--apply")
    assert out.strip() == "Files are on local storage (MEDIA_ROOT): no lifecycle to set."


def test_an_unreachable_bucket_is_one_line_and_changes_nothing(s3_bucket, settings):
    options = {**settings.STORAGES["default"]["OPTIONS"], "bucket_name": "fmr-no-such-bucket"}
    settings.STORAGES = {**settings.STORAGES, "default": {**settings.STORAGES["default"]}}
    settings.STORAGES["default"]["OPTIONS"] = options
    with pytest.raises(CommandError, match="lifecycle configuration not changed: .*NoSuchBucket"):
        lifecycle("--apply")


def test_check_warns_without_the_backstop_and_not_with_it(s3_bucket):
    assert "cleanup.W021" in deploy_checks()
    lifecycle("--apply")
    assert "cleanup.W021" not in deploy_checks()
    assert "cleanup.E021" not in deploy_checks()


@pytest.mark.parametrize("prefix", ["jobs/", "", "jobs/0", "jo"])
def test_check_errors_on_a_rule_that_would_delete_live_files(s3_bucket, settings, prefix):
    settings.JOB_TTL = timedelta(hours=36)
    short = {
        "ID": "short-rule",
        "Status": "Enabled",
        "Filter": {"Prefix": prefix},
        "Expiration": {"Days": 1},
    }
    s3_bucket.client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket.name, LifecycleConfiguration={"Rules": [FOREIGN, short]}
    )
    output = deploy_checks()
    assert "cleanup.E021" in output and "'short-rule'" in output
    assert "keep-logs-30-days" not in output  # a rule on another prefix is no one's concern


def test_a_rule_as_long_as_the_ttl_is_no_error(s3_bucket):
    one_day = {"ID": "one-day", "Status": "Enabled", "Filter": {}, "Expiration": {"Days": 1}}
    s3_bucket.client.put_bucket_lifecycle_configuration(
        Bucket=s3_bucket.name, LifecycleConfiguration={"Rules": [one_day]}
    )
    assert "cleanup.E021" not in deploy_checks()


# --- 2. incomplete multipart uploads -------------------------------------------------------------


def start_upload(client, bucket, job_id) -> str:
    key = f"jobs/{job_id}/original-{uuid.uuid4().hex}.png"
    return client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]


def uploads(client, bucket) -> set[str]:
    return {u["UploadId"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}


def test_uploads_of_dead_jobs_are_aborted_and_a_live_jobs_upload_is_kept(s3_bucket):
    client, name = s3_bucket.client, s3_bucket.name
    # moto dates every upload in 2010: all of them are past the grace period.
    kept = start_upload(client, name, live_job().pk)
    gone = {
        start_upload(client, name, expired_job(with_files=False).pk),
        start_upload(client, name, uuid.uuid4()),  # no row at all
        start_upload(client, name, "not-a-job"),
    }
    looked = reconcile_storage()
    assert (looked.uploads_orphaned, looked.uploads_aborted, looked.uploads_kept) == (3, 0, 1)
    assert uploads(client, name) == gone | {kept}
    result = reconcile_storage(delete=True)
    assert result.ok, result.error
    assert uploads(client, name) == {kept}
    run = ReconcileRun.objects.get(pk=result.run_id)
    assert (run.uploads_orphaned, run.uploads_aborted, run.uploads_kept) == (3, 3, 1)


@pytest.mark.slow
def test_listing_uploads_pages_past_a_thousand(s3_bucket):
    client, name = s3_bucket.client, s3_bucket.name
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: start_upload(client, name, "gone"), range(1001)))
    result = reconcile_storage(delete=True)
    assert result.uploads_aborted == 1001, result.error
    assert uploads(client, name) == set()


def test_a_server_without_multipart_listing_still_reconciles(s3rver_bucket):
    client, name = s3rver_bucket
    start_upload(client, name, uuid.uuid4())  # s3rver starts uploads, but cannot list them
    result = reconcile_storage()
    assert result.ok, result.error
    assert (result.uploads_orphaned, result.uploads_kept) == (0, 0)


def test_a_young_upload_is_kept_whatever_its_job(seaweed_bucket):
    client, name = seaweed_bucket
    young = start_upload(client, name, uuid.uuid4())
    result = reconcile_storage(delete=True)
    assert (result.uploads_aborted, result.uploads_kept) == (0, 1)
    assert uploads(client, name) == {young}
    time.sleep(1.1)  # SeaweedFS dates uploads to the second
    result = reconcile_storage(delete=True, grace=timedelta(0))
    assert result.uploads_aborted == 1
    assert uploads(client, name) == set()


# --- 3. links die with the job -------------------------------------------------------------------


def link_lifetime(url) -> int:
    return int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0])


def test_a_link_lasts_no_longer_than_its_job(s3_bucket):
    job = live_job(remaining=timedelta(minutes=10))
    url = job.files.first().file.url
    assert 590 <= link_lifetime(url) <= 600
    job = live_job(remaining=timedelta(hours=5))
    assert link_lifetime(job.files.first().file.url) == 3600  # AWS_QUERYSTRING_EXPIRE


def test_an_expired_jobs_link_is_refused_with_a_clear_error(any_storage):
    job_file = expired_job().files.first()
    with pytest.raises(FileExpired, match="expired at .*: no link is handed out"):
        job_file.file.url  # noqa: B018


@pytest.fixture(params=["seaweed", "s3rver"])
def refusing_bucket(request):
    """A bucket on each server that refuses an expired link (moto does not check expiry)."""
    return request.getfixturevalue(f"{request.param}_bucket")


def test_a_link_fetched_after_its_job_expired_is_refused(refusing_bucket):
    job = live_job()
    # Seconds left from now, however long the uploads took: enough for the first fetch to come
    # before expiry on a loaded machine (CI runs four test workers on two CPUs).
    seconds_left = 6
    Job.objects.filter(pk=job.pk).update(
        expires_at=timezone.now() + timedelta(seconds=seconds_left)
    )
    job.refresh_from_db()
    url = job.files.first().file.url
    assert link_lifetime(url) <= seconds_left
    assert urllib.request.urlopen(url).status == 200
    time.sleep(max(0, (job.expires_at - timezone.now()).total_seconds()) + 1.5)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url)
    assert refused.value.code == 403
