"""No personal data in logs or records: a phone number and a user's file name are planted in a job,
the job is purged (with storage failing once, so errors are recorded too), and every log line,
every output and every PurgeRun and PendingFileDeletion row is searched for them."""

import logging
import uuid
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError, call_command

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.tasks import delete_expired_jobs
from jobs.models import Job, JobFile, PhoneVerificationAttempt, SmsLog
from tests.helpers import NO_ROWS, expired_job, rows_of
from tests.processes import celery, wait_until
from tests.s3proxy import ERROR, FORWARD

PHONE = "010-9876-5432"
USER_FILE_NAME = "홍길동-passport.jpg"
PERSONAL = [PHONE, PHONE.replace("-", ""), "9876-5432", "홍길동", "passport"]


def planted_job():
    job = expired_job()
    SmsLog.objects.create(job=job, phone_number=PHONE, message=f"[fmr] {PHONE} 인증번호 482913")
    PhoneVerificationAttempt.objects.create(job=job, phone_number=PHONE, code="482913")
    upload = JobFile(job=job, kind=JobFile.Kind.ORIGINAL)
    upload.file.save(USER_FILE_NAME, ContentFile(b"\xff\xd8\xff\xe0 a photo"), save=True)
    # The storage name (which pending deletions and errors carry) must not be the user's.
    assert upload.file.name.endswith(".jpg")
    assert not any(secret in upload.file.name for secret in PERSONAL)
    return job


def records_text() -> str:
    rows = [*PurgeRun.objects.values(), *PendingFileDeletion.objects.values()]
    return "\n".join(str(value) for row in rows for value in row.values())


def assert_no_personal_data(*texts):
    for text in texts:
        for secret in PERSONAL:
            assert secret not in text, f"personal data {secret!r} leaked: {text[:2000]}"


@pytest.mark.django_db
def test_no_personal_data_in_logs_output_or_records(s3_bucket, s3_proxy, settings, caplog):
    job = planted_job()
    right_bucket = settings.STORAGES["default"]
    missing = {**right_bucket["OPTIONS"], "bucket_name": f"fmr-missing-{uuid.uuid4().hex[:8]}"}
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="django")
    # Everything Django can log, SQL included, while the purge runs.
    settings.DEBUG = True
    outputs = []

    def purge(*args):
        out, err = StringIO(), StringIO()
        try:
            call_command("purge_expired_jobs", *args, stdout=out, stderr=err)
        except CommandError as exc:  # refused, or the files stayed pending: output too
            outputs.append(str(exc))
        outputs.extend([out.getvalue(), err.getvalue()])

    # Another bucket than the bound one: refused, and the refusal names no user's file.
    settings.STORAGES = {**settings.STORAGES, "default": {**right_bucket, "OPTIONS": missing}}
    purge()
    settings.STORAGES = {**settings.STORAGES, "default": right_bucket}
    # The bound bucket failing: the files stay pending with the storage's error.
    s3_proxy.set_mode(ERROR)
    for args in [["--dry-run"], [], ["--json"]]:
        purge(*args)
    assert (
        PendingFileDeletion.objects.filter(last_error__contains="ServiceUnavailable").count() == 5
    )
    records_while_pending = records_text()

    s3_proxy.set_mode(FORWARD)
    out = StringIO()
    call_command("purge_expired_jobs", "-v", "3", stdout=out)
    outputs.append(out.getvalue())

    assert rows_of(job.pk) == NO_ROWS and not PendingFileDeletion.objects.exists()
    assert "SELECT" in caplog.text and "purge.run" in caplog.text  # the logs were really captured
    assert_no_personal_data(caplog.text, *outputs, records_while_pending, records_text())


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_no_personal_data_in_a_real_workers_debug_log(tmp_path):
    job = planted_job()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"

    with celery("worker", "--pool=solo", "-Q", queue, "--loglevel=DEBUG", log_path=log):
        delete_expired_jobs.apply_async(queue=queue)
        wait_until(lambda: not Job.objects.filter(pk=job.pk).exists(), 60, message="the purge")
        wait_until(lambda: "succeeded in" in log.read_text(), 30, message="the task to finish")

    text = log.read_text()
    assert "purge.run" in text and "delete_expired_jobs" in text
    assert_no_personal_data(text, records_text())
