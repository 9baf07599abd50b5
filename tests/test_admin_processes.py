"""Admin actions as production runs them: through Redis to a real worker, read by a real beat."""

import json

import pytest
import redis
from django.conf import settings
from django.contrib.messages import get_messages
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from cleanup.models import PurgeRun
from jobs.models import Job
from tests.admin_helpers import (
    ensure_purge_schedule,
    save_schedule,
)
from tests.helpers import NO_ROWS, expired_job, live_job, rows_of
from tests.processes import celery, wait_until

# The worker and beat processes read the test database, so it must be PostgreSQL.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(autouse=True)
def purge_schedule(transactional_db):
    ensure_purge_schedule()


@pytest.fixture
def default_queue():
    """Task names waiting in the default queue of this run's own broker database."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("celery")
    yield lambda: [json.loads(raw)["headers"]["task"] for raw in broker.lrange("celery", 0, -1)]
    broker.delete("celery")


def test_purge_now_enqueues_the_task_and_a_real_worker_runs_it(
    client, staff, tmp_path, default_queue
):
    gone, kept = expired_job(), live_job()
    client.force_login(staff)
    response = client.post("/admin/cleanup/purgerun/purge-now/", follow=True)
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert message.startswith("Enqueued delete_expired_jobs")
    # The request only enqueued: the job is still there, the message waits in Redis.
    assert Job.objects.filter(pk=gone.pk).exists()
    assert default_queue() == ["delete_expired_jobs"]

    with celery("worker", "--pool=solo", "--loglevel=INFO", log_path=tmp_path / "worker.log"):
        wait_until(
            lambda: PurgeRun.objects.filter(
                trigger=PurgeRun.Trigger.ADMIN, status=PurgeRun.Status.SUCCEEDED
            ).exists(),
            60,
            message="the admin-triggered run",
        )
    assert rows_of(gone.pk) == NO_ROWS
    assert Job.objects.filter(pk=kept.pk).exists()


def test_a_running_beat_follows_an_admin_edit_without_a_restart(
    client, staff, tmp_path, default_queue
):
    PeriodicTask.objects.filter(name="delete-expired-jobs").update(enabled=False)
    every_two_seconds = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    log = tmp_path / "beat.log"
    with celery("beat", "--loglevel=INFO", "--pidfile=", log_path=log):
        wait_until(lambda: "beat: Starting" in log.read_text(), 30, message="beat to start")
        assert "Sending due task" not in log.read_text()
        client.force_login(staff)
        save_schedule(client, enabled="on", crontab="", interval=str(every_two_seconds.pk))
        wait_until(
            lambda: "Sending due task delete-expired-jobs" in log.read_text(),
            45,
            message="beat to send the task after the admin's edit",
        )
        # Beat logs "Sending due task" before it publishes: wait for the message itself.
        wait_until(default_queue, 15, message="the task to reach the broker")
    assert default_queue()[0] == "delete_expired_jobs"
