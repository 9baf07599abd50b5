import os
from datetime import timedelta

from django.core.files.storage import default_storage
from django.utils import timezone

from cleanup.deletion import cascade_paths
from jobs.demo import FILES_PER_JOB, ROWS_PER_JOB, create_full_job
from jobs.models import Job, JobFile


def rows_of(job_id) -> dict[str, int]:
    """How many rows of each model belong to this job (all eight tables)."""
    return {
        model._meta.label: model._default_manager.filter(**{f"{path}pk": job_id}).count()
        for model, path in cascade_paths(Job)
    }


FULL_JOB_ROWS = {
    "jobs.Job": 1,
    "jobs.Payment": 1,
    "jobs.JobFile": 4,
    "jobs.SmsLog": 3,
    "jobs.PhoneVerificationAttempt": 3,
    "jobs.PaymentFailure": 1,
    "jobs.Report": 1,
    "jobs.ReportKnowledge": 5,
}
assert sum(FULL_JOB_ROWS.values()) == ROWS_PER_JOB
assert FULL_JOB_ROWS["jobs.JobFile"] == FILES_PER_JOB
NO_ROWS = dict.fromkeys(FULL_JOB_ROWS, 0)


def file_names(job) -> list[str]:
    return list(JobFile.objects.filter(job=job).values_list("file", flat=True))


def stored(names) -> list[str]:
    """The names the default storage holds, in order. Many names on S3: one listing of their
    common prefix (a request per 1,000 keys), not a HEAD request per name."""
    names = list(names)
    bucket = getattr(default_storage, "bucket", None)
    if len(names) <= 100 or bucket is None or default_storage.location:
        return [name for name in names if default_storage.exists(name)]
    listed = {obj.key for obj in bucket.objects.filter(Prefix=os.path.commonprefix(names))}
    return [name for name in names if name in listed]


def expired_job(now=None, *, by=timedelta(minutes=5), **kwargs) -> Job:
    now = now or timezone.now()
    return create_full_job(created_at=now - job_ttl() - by, **kwargs)


def live_job(now=None, *, remaining=timedelta(hours=1), **kwargs) -> Job:
    now = now or timezone.now()
    return create_full_job(created_at=now - job_ttl() + remaining, **kwargs)


def job_ttl():
    from django.conf import settings

    return settings.JOB_TTL


def bind_test_storage():
    """Bind the test's storage to the database, unverified (only a test may).

    For rows made in bulk, whose files were never stored: without a binding, a database that
    names files it does not hold refuses every delete (issue 18, "no binding without
    verification").
    """
    from cleanup.models import StorageBinding
    from cleanup.storage import configured_identity

    found = configured_identity()
    StorageBinding.objects.get_or_create(
        pk=1,
        defaults={
            "kind": found.kind,
            "bucket": found.bucket,
            "location": found.location,
            "bound_by": "tests",
        },
    )


def bulk_expired_jobs(count, *, by=timedelta(minutes=5)) -> list:
    """`count` expired jobs with the full fan-out (as create_full_job makes them), in bulk.

    The file names are rows only, no stored objects: for tests about rows and query counts.
    """
    from jobs.models import (
        Payment,
        PaymentFailure,
        PhoneVerificationAttempt,
        Report,
        ReportKnowledge,
        SmsLog,
    )

    created = timezone.now() - job_ttl() - by
    jobs = Job.objects.bulk_create(
        [
            Job(created_at=created - timedelta(microseconds=i), status=Job.Status.REPORT_READY)
            for i in range(count)
        ]
    )
    JobFile.objects.bulk_create(
        JobFile(job=job, kind=JobFile.Kind.AI_GENERATED, file=f"jobs/{job.pk}/{k}.png")
        for job in jobs
        for k in range(4)
    )
    for model, extra in [
        (SmsLog, {"phone_number": "010-0000-0000", "message": "code"}),
        (PhoneVerificationAttempt, {"phone_number": "010-0000-0000", "code": "123456"}),
    ]:
        model.objects.bulk_create(model(job=job, **extra) for job in jobs for _ in range(3))
    PaymentFailure.objects.bulk_create(
        PaymentFailure(job=job, provider="toss", amount=9900, code="DECLINED") for job in jobs
    )
    Payment.objects.bulk_create(Payment(job=job, provider="toss", amount=9900) for job in jobs)
    reports = Report.objects.bulk_create(Report(job=job, title="t", body="b") for job in jobs)
    ReportKnowledge.objects.bulk_create(
        ReportKnowledge(report=report, position=i, topic="t", content="c")
        for report in reports
        for i in range(5)
    )
    bind_test_storage()
    return jobs


def stored_job_files() -> set[str]:
    """Every object under the jobs prefix in the default storage, whatever the database says."""
    from jobs.models import UPLOAD_PREFIX

    def walk(path):
        try:
            dirs, files = default_storage.listdir(path)
        except FileNotFoundError:  # local storage before the first upload
            return
        yield from (f"{path}/{name}" for name in files)
        for name in dirs:
            yield from walk(f"{path}/{name}")

    return set(walk(UPLOAD_PREFIX))


def referenced_files() -> set[str]:
    return set(JobFile.objects.exclude(file="").values_list("file", flat=True))


def half_deleted_jobs() -> list:
    """Jobs still in the database that lost some of their rows: must always be empty."""
    return [pk for pk in Job.objects.values_list("pk", flat=True) if rows_of(pk) != FULL_JOB_ROWS]


def run_chain(cutoff, batch_size, *, seconds=0, **run_fields) -> list:
    """One fan-out task as the worker runs it: it, then each successor it hands over to, until
    one ends without handing over; returns their runs. `run_fields`: group, trigger..."""
    from cleanup.models import PurgeRun
    from cleanup.services import purge_expired_chunk

    runs = [purge_expired_chunk(cutoff=cutoff, batch_size=batch_size, **run_fields)]
    while runs[-1].status == PurgeRun.Status.HANDED_OVER:
        runs.append(
            purge_expired_chunk(cutoff=cutoff, batch_size=batch_size, seconds=seconds, **run_fields)
        )
        assert len(runs) < 20
    return runs


def run_fan_out(plan, *, group="fan-out", seconds=60, **run_fields) -> list:
    """A planned fan-out, its tasks one after the other: every run in one group."""
    return [
        run
        for _ in range(plan.subtasks_started)
        for run in run_chain(
            plan.cutoff, plan.batch_size, seconds=seconds, group=group, **run_fields
        )
    ]
