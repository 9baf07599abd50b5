"""`manage.py create_bucket`: the runbook's bucket step without the AWS CLI (issue 17, item 2).

Against the S3-compatible server over HTTP, through the same settings every process reads.
"""

import uuid

import boto3
import pytest

from tests.conftest import S3_CREDENTIALS
from tests.processes import child_env, run_manage

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def bucket_env(s3_server, bucket, **extra):
    return child_env(
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_S3_REGION_NAME="ap-northeast-2",
        AWS_ACCESS_KEY_ID=S3_CREDENTIALS["access_key"],
        AWS_SECRET_ACCESS_KEY=S3_CREDENTIALS["secret_key"],
        **extra,
    )


def assert_one_line_error(done, *words):
    assert done.returncode == 1, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_create_bucket_makes_a_private_bucket_in_the_region_and_a_second_run_changes_nothing(
    s3_server,
):
    bucket = f"fmr-created-{uuid.uuid4().hex[:8]}"
    env = bucket_env(s3_server, bucket)
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
        region_name="ap-northeast-2",
    )

    first = run_manage("create_bucket", env=env)

    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"Created bucket '{bucket}'"), first.stdout
    location = s3.get_bucket_location(Bucket=bucket)["LocationConstraint"]
    assert location == "ap-northeast-2"
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    assert not [g for g in grants if g["Grantee"].get("URI") == ALL_USERS], grants
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4, block
    s3.put_object(Bucket=bucket, Key="jobs/x/kept.png", Body=b"png")

    again = run_manage("create_bucket", env=env)

    assert again.returncode == 0, again.stderr
    assert "already exists" in again.stdout and "nothing to do" in again.stdout
    assert s3.get_object(Bucket=bucket, Key="jobs/x/kept.png")["Body"].read() == b"png"
    # The storage check finds it (the schedule rows are another check's business here).
    check = run_manage("check", "--deploy", "--tag", "cleanup", env=env)
    found = check.stdout + check.stderr
    assert "(cleanup.I001)" in found, found
    assert not any(f"(cleanup.E00{n})" in found for n in (1, 2, 3, 8, 9)), found


def test_create_bucket_without_a_bucket_configured_says_so_in_one_line():
    env = child_env()
    env.pop("AWS_STORAGE_BUCKET_NAME", None)

    assert_one_line_error(run_manage("create_bucket", env=env), "local files", "no bucket")


def test_create_bucket_on_an_unreachable_endpoint_says_so_in_one_line(s3_server):
    env = bucket_env(s3_server, "fmr-uploads", AWS_S3_MAX_ATTEMPTS=1)
    env["AWS_S3_ENDPOINT_URL"] = "http://127.0.0.1:9"

    done = run_manage("create_bucket", env=env)

    assert_one_line_error(done, "cannot create bucket 'fmr-uploads'", "unreachable")
