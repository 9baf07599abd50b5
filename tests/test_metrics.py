"""GET /cleanup/metrics: the status facts and the purge's history in the Prometheus text format."""

import re
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import (
    plan_purge,
    purge_expired_jobs,
)
from jobs.demo import FILES_PER_JOB, ROWS_PER_JOB
from tests.helpers import (
    bind_test_storage,
    bulk_expired_jobs,
    expired_job,
    live_job,
    run_fan_out,
)
from tests.processes import ROOT, child_env, wait_until
from tests.s3server import free_port

pytestmark = pytest.mark.django_db

URL = "/cleanup/metrics"
GAUGES = [
    "fmr_cleanup_expired_jobs",
    "fmr_cleanup_oldest_expired_seconds",
    "fmr_cleanup_pending_files",
    "fmr_cleanup_stuck_files",
    "fmr_cleanup_last_success_timestamp_seconds",
]


def samples(text) -> dict:
    """{(name, frozenset(labels)): value} for every sample in an exposition."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text, name, **labels):
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client, **headers):
    response = client.get(URL, headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.content.decode()


def test_the_gauges_say_what_purge_status_says(admin_client, settings):
    settings.CLEANUP_STUCK_AFTER_ATTEMPTS = 10
    expired_job(by=timedelta(hours=2), with_files=False)
    expired_job(by=timedelta(minutes=5), with_files=False)
    live_job(with_files=False)
    PendingFileDeletion.objects.record(["jobs/a/original-1.png", "jobs/a/ai_generated-2.png"])
    PendingFileDeletion.objects.filter(name__startswith="jobs/a/original").update(attempts=12)
    bind_test_storage()  # names recorded by hand: nothing bound their storage (issue 9)

    text = scrape(admin_client)

    for gauge in GAUGES:
        assert f"# TYPE {gauge} gauge" in text, gauge
    assert value(text, "fmr_cleanup_expired_jobs") == 2
    assert 2 * 3600 <= value(text, "fmr_cleanup_oldest_expired_seconds") < 2 * 3600 + 60
    # Disjoint, as in purge_status: a stuck name is not also counted as pending.
    assert value(text, "fmr_cleanup_pending_files") == 1
    assert value(text, "fmr_cleanup_stuck_files") == 1
    assert value(text, "fmr_cleanup_last_success_timestamp_seconds") == 0  # none yet

    done = purge_expired_jobs()
    text = scrape(admin_client)
    finished = PurgeRun.objects.get(pk=done.run_id).finished_at.timestamp()
    assert value(text, "fmr_cleanup_last_success_timestamp_seconds") == pytest.approx(finished)
    assert value(text, "fmr_cleanup_expired_jobs") == 0
    assert value(text, "fmr_cleanup_oldest_expired_seconds") == 0


def test_the_counters_count_runs_jobs_rows_and_files_by_status_each_once(admin_client):
    bulk_expired_jobs(3)
    purge_expired_jobs()  # 3 jobs, succeeded
    expired_job()
    purge_expired_jobs(dry_run=True)  # would delete 1: deletes nothing
    bulk_expired_jobs(4)
    plan = plan_purge(batch_size=2, max_parallel=2)
    runs = run_fan_out(plan, trigger=PurgeRun.Trigger.BEAT)
    assert sum(run.jobs_deleted for run in runs) == 5

    text = scrape(admin_client)

    assert "# TYPE fmr_cleanup_runs_total counter" in text
    # The fan-out's jobs are counted once: by the runs that deleted them.
    jobs = sum(
        v for (name, _), v in samples(text).items() if name == "fmr_cleanup_jobs_deleted_total"
    )
    assert jobs == 3 + 5
    assert value(text, "fmr_cleanup_jobs_deleted_total", status="succeeded") == 8
    assert value(text, "fmr_cleanup_rows_deleted_total", status="succeeded") == 8 * ROWS_PER_JOB
    files = value(text, "fmr_cleanup_files_deleted_total", status="succeeded")
    assert files == 8 * FILES_PER_JOB
    assert value(text, "fmr_cleanup_runs_total", status="dry_run") == 1
    assert value(text, "fmr_cleanup_runs_total", status="succeeded") == 1 + plan.subtasks_started


def test_counters_never_go_down(admin_client):
    seen = {}

    def check():
        now = {
            key: v for key, v in samples(scrape(admin_client)).items() if key[0].endswith("_total")
        }
        for key, before in seen.items():
            assert now.get(key, 0) >= before, key
        seen.update(now)

    check()
    bulk_expired_jobs(3)
    # A run that is still going counts nothing yet, so its status can change without taking
    # anything back from a counter.
    running = PurgeRun.objects.create(
        trigger=PurgeRun.Trigger.TASK, cutoff=timezone.now(), batch_size=1, jobs_deleted=2
    )
    check()
    PurgeRun.objects.filter(pk=running.pk).update(
        started_at=timezone.now() - timedelta(hours=2), heartbeat_at=None
    )
    purge_expired_jobs()  # records the dead one as abandoned, then purges
    check()
    assert PurgeRun.objects.get(pk=running.pk).status == PurgeRun.Status.ABANDONED
    plan = plan_purge(batch_size=1, max_parallel=2)
    assert not plan.fan_out  # nothing left: nothing fans out
    expired_job(with_files=False)
    purge_expired_jobs(dry_run=True)
    check()
    purge_expired_jobs()
    check()
    assert seen[("fmr_cleanup_runs_total", frozenset({("status", "abandoned")}))] == 1


def test_anonymous_and_non_staff_are_refused_and_a_monitor_uses_the_bearer_token(
    client, django_user_model, settings
):
    settings.CLEANUP_STATUS_TOKEN = "s3cret-token"
    refused = client.get(URL)
    assert refused.status_code == 401 and "fmr_cleanup" not in refused.content.decode()
    assert refused["WWW-Authenticate"].startswith("Bearer")
    for wrong in ["Bearer s3cret", "Basic s3cret-token", "s3cret-token"]:
        assert client.get(URL, headers={"Authorization": wrong}).status_code == 401
    text = scrape(client, Authorization="Bearer s3cret-token")
    assert "fmr_cleanup_expired_jobs 0.0" in text
    client.force_login(django_user_model.objects.create_user("customer", is_superuser=True))
    assert client.get(URL).status_code == 403
    assert client.post(URL).status_code in (403, 405)


def test_the_readme_alert_rule_uses_metrics_the_endpoint_exposes(admin_client):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    rules = re.search(r"```yaml\n(groups:.*?)```", readme, re.S)
    assert rules, "README shows no Prometheus alert rule"
    used = set(re.findall(r"fmr_cleanup_\w+", rules.group(1)))
    families = list(text_string_to_metric_families(scrape(admin_client)))
    exposed = {f.name for f in families} | {f"{f.name}_total" for f in families}
    assert "fmr_cleanup_oldest_expired_seconds" in used
    assert used <= exposed, used - exposed
    # The 24-hour promise: jobs live JOB_TTL; an hourly purge must catch them within the hour.
    assert "24" in rules.group(1) or "86400" in rules.group(1)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_web_worker_answers_the_same_truth(settings):
    """Two gunicorn workers, each building its registry from the database per request."""
    bulk_expired_jobs(3)
    purge_expired_jobs()
    expired_job(by=timedelta(hours=1), with_files=False)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "fmr.wsgi",
            "--workers=2",
            f"--bind=127.0.0.1:{port}",
        ],
        cwd=ROOT,
        env=child_env(CLEANUP_STATUS_TOKEN="tok-metrics-0123456789abcdef0123456789"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def get():
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{URL}",
            headers={"Authorization": "Bearer tok-metrics-0123456789abcdef0123456789"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    def up():
        try:
            get()
        except OSError:
            return False
        return True

    try:
        wait_until(up, 30, message="gunicorn to answer")
        answers = []
        for _ in range(12):
            answers.append(
                {
                    k: v
                    for k, v in samples(get()).items()
                    if k[0] != "fmr_cleanup_oldest_expired_seconds"
                }
            )
        purge_expired_jobs()
        time.sleep(0.2)
        after = [samples(get()) for _ in range(6)]
    finally:
        server.terminate()
        server.wait(20)

    assert all(a == answers[0] for a in answers)
    assert answers[0][("fmr_cleanup_expired_jobs", frozenset())] == 1
    assert answers[0][("fmr_cleanup_jobs_deleted_total", frozenset({("status", "succeeded")}))] == 3
    assert all(a[("fmr_cleanup_expired_jobs", frozenset())] == 0 for a in after)
    assert all(
        a[("fmr_cleanup_jobs_deleted_total", frozenset({("status", "succeeded")}))] == 4
        for a in after
    )
