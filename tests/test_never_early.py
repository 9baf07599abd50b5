"""Never too early, never left: over random jobs expiring within seconds of `now`, created and
purged in random time zones, the purge deletes exactly the jobs with expires_at < now."""

from datetime import timedelta
from zoneinfo import ZoneInfo

from django.conf import settings as django_settings
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from cleanup.models import PurgeRun
from cleanup.services import purge_expired_jobs
from jobs.models import Job

ZONES = [
    "UTC",
    "Asia/Seoul",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
]
zones = st.sampled_from(ZONES)
# Mostly anywhere within 5 s of now, at microsecond resolution, and often right on the edge.
offsets = st.one_of(st.sampled_from([0, -1, 1]), st.integers(-5_000_000, 5_000_000)).map(
    lambda us: timedelta(microseconds=us)
)
jobs_around_now = st.lists(st.tuples(offsets, zones), min_size=1, max_size=12)


def create_jobs(expiring_at):
    """Jobs as a web process in `zone` would create them: created_at in local time."""
    ttl = django_settings.JOB_TTL
    jobs = []
    for expires_at, zone in expiring_at:
        with timezone.override(zone):
            created_at = timezone.localtime(expires_at - ttl)
            jobs.append(Job.objects.create(created_at=created_at))
    return jobs


class NeverTooEarly(TestCase):
    # Each example runs in its own transaction, rolled back afterwards (hypothesis' Django
    # TestCase), so examples never see each other's jobs.

    @settings(max_examples=40, deadline=None)
    @given(around=jobs_around_now, now_zone=zones, purge_zone=zones)
    def test_exactly_the_jobs_past_expires_at_are_deleted(self, around, now_zone, purge_zone):
        now = timezone.now().astimezone(ZoneInfo(now_zone))
        jobs = create_jobs([(now + offset, zone) for offset, zone in around])

        with timezone.override(purge_zone):
            result = purge_expired_jobs(now=now)

        expected_kept = {
            job.pk for job, (offset, _) in zip(jobs, around, strict=True) if offset >= timedelta(0)
        }
        assert set(Job.objects.values_list("pk", flat=True)) == expected_kept
        assert result.jobs_deleted == len(jobs) - len(expected_kept)

    @settings(max_examples=15, deadline=None)
    @given(around=jobs_around_now, purge_zone=zones)
    def test_on_the_real_clock_the_run_deletes_exactly_what_expired_before_its_cutoff(
        self, around, purge_zone
    ):
        # Milliseconds apart here, so many jobs expire between creation and the purge.
        around = [(offset / 1000, zone) for offset, zone in around]
        start = timezone.now()
        jobs = create_jobs([(start + offset, zone) for offset, zone in around])

        with timezone.override(purge_zone):
            result = purge_expired_jobs()
        end = timezone.now()

        cutoff = PurgeRun.objects.get(pk=result.run_id).cutoff
        assert start <= cutoff <= end
        expected_kept = {job.pk for job in jobs if job.expires_at >= cutoff}
        assert set(Job.objects.values_list("pk", flat=True)) == expected_kept
        assert all(job.expires_at < cutoff for job in jobs if job.pk not in expected_kept)
