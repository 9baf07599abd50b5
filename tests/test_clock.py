"""Never early, by construction: the database's clock decides, and nothing ahead of it is taken.

The worker's clock is moved in this process; the database's clock is moved inside PostgreSQL
(tests/clocks.py), so the purge really reads a database clock that disagrees with its own.
"""

import warnings
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from cleanup.models import PurgeRun
from cleanup.services import plan_purge, purge_expired_chunk, purge_expired_jobs
from cleanup.tasks import delete_expired_jobs_chunk
from jobs.models import Job
from tests.clocks import database_clock, offset_database_clock, real_now, worker_clock_off_by
from tests.helpers import FULL_JOB_ROWS, NO_ROWS, expired_job, file_names, rows_of, stored

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def job_expiring_at(expires_at) -> Job:
    return Job.objects.create(created_at=expires_at - django_settings.JOB_TTL)


def job_expiring_in(delta) -> Job:
    return job_expiring_at(real_now() + delta)


def test_a_worker_clock_ten_minutes_fast_deletes_nothing_early():
    soon = [job_expiring_in(timedelta(minutes=5)), job_expiring_in(timedelta(minutes=9))]
    past = job_expiring_in(-timedelta(minutes=1))

    with worker_clock_off_by(timedelta(minutes=10)):
        result = purge_expired_jobs()

    assert result.jobs_deleted == 1
    assert not Job.objects.filter(pk=past.pk).exists()
    assert Job.objects.filter(pk__in=[j.pk for j in soon]).count() == 2
    assert PurgeRun.objects.get(pk=result.run_id).cutoff <= database_clock()


def test_a_database_clock_behind_the_worker_decides():
    offset_database_clock(-timedelta(minutes=10))
    # Expired five minutes ago by the worker's (real) clock, live for five more by the database's.
    by_database_still_live = job_expiring_in(-timedelta(minutes=5))
    by_both_expired = job_expiring_in(-timedelta(minutes=15))

    result = purge_expired_jobs()

    assert result.jobs_deleted == 1
    assert Job.objects.filter(pk=by_database_still_live.pk).exists()
    assert not Job.objects.filter(pk=by_both_expired.pk).exists()


def test_a_naive_now_is_refused_before_anything_is_deleted():
    job = expired_job(by=timedelta(hours=12))
    naive = datetime.now() - timedelta(hours=1)  # the mistake under test

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old behaviour: a RuntimeWarning, then a purge
        with pytest.raises(ValueError, match="time zone"):
            purge_expired_jobs(now=naive)

    assert rows_of(job.pk) == FULL_JOB_ROWS
    assert stored(file_names(job)) == file_names(job)
    assert not PurgeRun.objects.exists()


@pytest.mark.parametrize(
    "ahead", [timedelta(days=365), timedelta(hours=9), timedelta(minutes=10), timedelta(seconds=2)]
)
def test_a_now_ahead_of_the_database_clock_is_refused_before_anything_is_deleted(ahead):
    live = job_expiring_in(timedelta(seconds=1) + ahead / 2)
    expired = expired_job()

    with pytest.raises(ValueError, match="ahead of the database clock"):
        purge_expired_jobs(now=database_clock() + ahead)

    assert Job.objects.filter(pk=live.pk).exists()
    assert rows_of(expired.pk) == FULL_JOB_ROWS
    assert not PurgeRun.objects.exists()


def test_a_now_in_kiritimati_wall_time_read_as_seoul_is_refused():
    # The case: a Pacific/Kiritimati wall time (UTC+14) handed over as a naive datetime.
    wall = real_now().astimezone(ZoneInfo("Pacific/Kiritimati")).replace(tzinfo=None)
    live = job_expiring_in(timedelta(hours=2))

    with pytest.raises(ValueError):
        purge_expired_jobs(now=wall)

    assert Job.objects.filter(pk=live.pk).exists()


def test_a_now_within_a_second_of_the_database_clock_is_accepted_but_never_passes_it():
    offset_database_clock(-timedelta(minutes=10))
    now = database_clock() + timedelta(milliseconds=500)

    result = purge_expired_jobs(now=now)

    assert PurgeRun.objects.get(pk=result.run_id).cutoff <= database_clock()


def test_a_past_now_is_used_as_given():
    job = job_expiring_in(-timedelta(hours=2))
    kept = job_expiring_in(-timedelta(minutes=30))

    result = purge_expired_jobs(now=real_now() - timedelta(hours=1))

    assert result.jobs_deleted == 1
    assert rows_of(job.pk)["jobs.Job"] == 0 and Job.objects.filter(pk=kept.pk).exists()


def test_the_fan_out_plan_takes_its_cutoff_from_the_database_clock():
    offset_database_clock(-timedelta(minutes=10))
    with worker_clock_off_by(timedelta(minutes=10)):
        plan = plan_purge(batch_size=1, max_parallel=2)
    assert plan.cutoff <= database_clock()


@pytest.mark.parametrize(
    ("cutoff", "reason"),
    [
        ("2026-01-01T00:00:00", "time zone"),  # naive: read as Seoul, 9 h off from UTC
        ((real_now() + timedelta(days=365)).isoformat(), "ahead of the database clock"),
        ("yesterday", "ISO 8601"),
    ],
    ids=["naive", "a-year-ahead", "not-iso"],  # stable: pytest-xdist's workers collect alike
)
def test_a_fan_out_subtask_refuses_a_bad_cutoff_before_anything_is_deleted(cutoff, reason):
    live = job_expiring_in(timedelta(hours=1))
    expired = expired_job()

    with pytest.raises(ValueError, match=reason):
        delete_expired_jobs_chunk.apply(kwargs={"cutoff": cutoff, "batch_size": 10}).get()
    if reason != "ISO 8601":
        with pytest.raises(ValueError, match=reason):
            purge_expired_chunk(cutoff=datetime.fromisoformat(cutoff), batch_size=10)

    assert Job.objects.filter(pk=live.pk).exists()
    assert rows_of(expired.pk) == FULL_JOB_ROWS
    assert not PurgeRun.objects.exists()


def test_a_fan_out_subtask_with_a_past_aware_cutoff_purges_up_to_it():
    gone = expired_job(by=timedelta(hours=2))
    kept = expired_job(by=timedelta(minutes=1))

    cutoff = (real_now() - timedelta(hours=1)).isoformat()
    summary = delete_expired_jobs_chunk.apply(kwargs={"cutoff": cutoff, "batch_size": 10}).get()

    assert summary["jobs_deleted"] == 1
    assert rows_of(gone.pk) == NO_ROWS and rows_of(kept.pk) == FULL_JOB_ROWS


# --- the property: whatever the two clocks say, nothing goes before its time -----------------

seconds = st.floats(min_value=-3 * 3600, max_value=3 * 3600, allow_nan=False).map(
    lambda s: timedelta(seconds=s)
)
small = st.integers(-2_000_000, 2_000_000).map(lambda us: timedelta(microseconds=us))
offsets = st.one_of(st.just(timedelta(0)), small, seconds)
expiries = st.lists(offsets, min_size=1, max_size=10)


@pytest.mark.postgres
@pytest.mark.slow
class NoJobIsDeletedBeforeItsExpiryByTheDatabasesClock(TestCase):
    # Each example runs in its own transaction, rolled back afterwards: clock offsets included.

    @settings(max_examples=200, deadline=None)
    @given(worker_offset=offsets, database_offset=offsets, expiring=expiries)
    def test_without_now(self, worker_offset, database_offset, expiring):
        offset_database_clock(database_offset)
        start = real_now()
        jobs = [job_expiring_at(start + delta) for delta in expiring]
        database_before = database_clock()

        with worker_clock_off_by(worker_offset):
            worker_before = real_now() + worker_offset
            result = purge_expired_jobs()
        database_after = database_clock()

        left = set(Job.objects.values_list("pk", flat=True))
        deleted = [job for job in jobs if job.pk not in left]
        # Never early: every deleted job had expired by the database's clock.
        assert all(job.expires_at < database_after for job in deleted)
        cutoff = PurgeRun.objects.get(pk=result.run_id).cutoff
        assert cutoff <= database_after
        assert all(job.expires_at < cutoff for job in deleted)
        # And not needlessly late: whatever both clocks agreed had expired is gone.
        agreed = min(database_before, worker_before)
        assert all(job.pk not in left for job in jobs if job.expires_at < agreed)

    @settings(max_examples=200, deadline=None)
    @given(database_offset=offsets, now_offset=offsets, expiring=expiries)
    def test_with_now(self, database_offset, now_offset, expiring):
        offset_database_clock(database_offset)
        start = real_now()
        jobs = [job_expiring_at(start + delta) for delta in expiring]
        now = database_clock() + now_offset

        try:
            result = purge_expired_jobs(now=now)
        except ValueError:
            # Refused: only a `now` over a second ahead of the database clock; nothing deleted.
            assert now_offset > timedelta(seconds=1)
            assert Job.objects.count() == len(jobs)
            assert not PurgeRun.objects.exists()
            return
        database_after = database_clock()

        # Accepted: a `now` more than a second ahead of the database clock never is.
        assert now <= database_after + timedelta(seconds=1)
        left = set(Job.objects.values_list("pk", flat=True))
        cutoff = PurgeRun.objects.get(pk=result.run_id).cutoff
        assert cutoff <= now and cutoff <= database_after
        assert all(job.expires_at < cutoff for job in jobs if job.pk not in left)
        assert all(job.expires_at >= cutoff for job in jobs if job.pk in left)
