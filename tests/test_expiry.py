"""When a job expires: set once at creation from JOB_TTL, compared in absolute time."""

import os
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from cleanup.services import purge_expired_jobs
from jobs.demo import create_full_job
from jobs.models import Job

pytestmark = pytest.mark.django_db
SEOUL = ZoneInfo("Asia/Seoul")


def test_expiry_is_creation_plus_job_ttl(settings):
    settings.JOB_TTL = timedelta(hours=24)
    created = datetime(2026, 3, 1, 12, 0, tzinfo=SEOUL)
    job = Job.objects.create(created_at=created)
    job.refresh_from_db()
    assert job.expires_at == created + timedelta(hours=24)


def test_bulk_created_jobs_get_an_expiry_too():
    created = datetime(2026, 3, 1, 12, 0, tzinfo=SEOUL)
    Job.objects.bulk_create([Job(created_at=created), Job(created_at=created)])
    assert set(Job.objects.values_list("expires_at", flat=True)) == {created + timedelta(hours=24)}


def test_expiry_column_is_indexed_and_not_null():
    field = Job._meta.get_field("expires_at")
    assert not field.null
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, Job._meta.db_table)
    assert any(c["columns"] == ["expires_at"] and c["index"] for c in constraints.values())


@pytest.fixture(params=["UTC", "America/Los_Angeles", "Asia/Seoul", "Pacific/Kiritimati"])
def server_clock_zone(request):
    """The process clock zone of the machine the purge runs on; it must not matter."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_a_job_created_at_2330_kst_expires_at_2330_kst_the_next_day(server_clock_zone):
    # In the past: a purge's `now` may never be ahead of the database's clock.
    created = datetime(2025, 11, 26, 23, 30, tzinfo=SEOUL)
    job = create_full_job(created_at=created, with_files=False)
    job.refresh_from_db()

    assert job.expires_at == datetime(2025, 11, 27, 23, 30, tzinfo=SEOUL)
    assert job.expires_at.astimezone(ZoneInfo("UTC")) == datetime(
        2025, 11, 27, 14, 30, tzinfo=ZoneInfo("UTC")
    )

    # One second before, and at, 23:30 KST the next day: kept.
    purge_expired_jobs(now=datetime(2025, 11, 27, 23, 29, 59, tzinfo=SEOUL))
    purge_expired_jobs(now=datetime(2025, 11, 27, 14, 30, tzinfo=ZoneInfo("UTC")))
    assert Job.objects.filter(pk=job.pk).exists()

    # Just after, expressed in another zone: gone.
    purge_expired_jobs(now=datetime(2025, 11, 27, 14, 30, 1, tzinfo=ZoneInfo("Europe/London")))
    assert not Job.objects.filter(pk=job.pk).exists()


def test_expired_and_live_split_every_job_at_now():
    now = datetime(2026, 6, 1, 0, 0, tzinfo=SEOUL)
    for offset in (-2, -1, 0, 1, 2):
        Job.objects.create(created_at=now - timedelta(hours=24) + timedelta(seconds=offset))
    expired = set(Job.objects.expired(now).values_list("pk", flat=True))
    live = set(Job.objects.live(now).values_list("pk", flat=True))
    assert len(expired) == 2 and len(live) == 3
    assert not expired & live
    assert all(j.expires_at < now for j in Job.objects.filter(pk__in=expired))
