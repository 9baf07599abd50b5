"""Is the 24-hour promise holding? purge_status and /cleanup/status/ say so, and alert on it."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs, purge_status
from jobs.demo import FILES_PER_JOB, ROWS_PER_JOB
from tests.helpers import expired_job, live_job
from tests.processes import child_env, run_manage

pytestmark = pytest.mark.django_db

STATUS_URL = "/cleanup/status/"


def status_command(*args):
    out = StringIO()
    call_command("purge_status", *args, stdout=out)
    return out.getvalue()


def test_a_planted_overdue_job_is_reported_with_its_age():
    live_job(with_files=False)
    expired_job(by=timedelta(hours=3), with_files=False)
    expired_job(by=timedelta(minutes=10), with_files=False)
    output = status_command()
    assert "expired jobs still present:   2 (most overdue: 3h 00m past expiry)" in output
    data = json.loads(status_command("--json"))
    assert data["expired_jobs"] == 2
    assert 3 * 3600 <= data["most_overdue_seconds"] < 3 * 3600 + 60


def test_max_overdue_turns_an_overdue_job_into_a_failure():
    expired_job(by=timedelta(hours=3), with_files=False)
    with pytest.raises(CommandError, match="promise is at risk: 1 expired job"):
        status_command("--max-overdue", "60")


def test_a_job_expired_less_than_max_overdue_ago_is_not_an_alarm():
    expired_job(by=timedelta(minutes=10), with_files=False)
    live_job(with_files=False)
    data = json.loads(status_command("--max-overdue", "60", "--json"))
    assert data["problems"] == [] and data["expired_jobs"] == 1


def test_old_pending_file_deletions_are_an_alarm():
    PendingFileDeletion.objects.record(["jobs/a/original-1.png", "jobs/a/ai_generated-2.png"])
    PendingFileDeletion.objects.filter(name__startswith="jobs/a/original").update(
        created_at=timezone.now() - timedelta(hours=2)
    )
    data = json.loads(status_command("--json"))
    assert data["pending_files"] == 2 and data["oldest_pending_seconds"] >= 7200
    with pytest.raises(CommandError, match="2 file deletion"):
        status_command("--max-overdue", "90")


def test_the_last_successful_run_and_its_counts_are_shown():
    expired_job()
    done = purge_expired_jobs(trigger=PurgeRun.Trigger.BEAT)
    PurgeRun.objects.create(cutoff=timezone.now(), batch_size=1, status="failed", error="x")
    facts = purge_status()
    assert facts.last_success["run_id"] == done.run_id
    assert facts.last_success["jobs_deleted"] == 1
    assert facts.last_success["rows_deleted"]["jobs.ReportKnowledge"] == 5
    assert facts.last_success["files_deleted"] == 4
    assert facts.last_run["status"] == "failed"
    output = status_command()
    assert (
        f"run #{done.run_id} (beat)" in output
        and f"1 job(s), {ROWS_PER_JOB} row(s), {FILES_PER_JOB} file(s)" in output
    )


@pytest.mark.parametrize("bad", ["abc", "-5", "nan", "inf", "1e400"])
def test_a_bad_max_overdue_is_refused_clearly(bad):
    with pytest.raises(CommandError, match="number of minutes, 0 or more"):
        status_command(f"--max-overdue={bad}")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_exit_status_as_cron_or_kubernetes_sees_it():
    def run(*args):
        return run_manage("purge_status", *args, env=child_env(), timeout=60)

    live_job(with_files=False)
    healthy = run("--max-overdue", "30")
    assert healthy.returncode == 0, healthy.stderr
    assert "expired jobs still present:   0" in healthy.stdout

    expired_job(by=timedelta(hours=1), with_files=False)
    at_risk = run("--max-overdue", "30")
    assert at_risk.returncode == 1
    assert "promise is at risk" in at_risk.stderr and "Traceback" not in at_risk.stderr

    bad = run("--max-overdue", "soon")
    assert bad.returncode != 0 and "number of minutes" in bad.stderr
    assert "Traceback" not in bad.stderr


# --- the HTTP endpoint -------------------------------------------------------------------------


def test_staff_get_the_same_facts_as_the_command(admin_client):
    expired_job(by=timedelta(hours=2), with_files=False)
    response = admin_client.get(STATUS_URL)
    assert response.status_code == 200
    data = response.json()
    command = json.loads(status_command("--json"))
    assert data.keys() == command.keys()
    assert data["expired_jobs"] == command["expired_jobs"] == 1
    assert response["Cache-Control"].startswith("max-age=0")


def test_anonymous_and_non_staff_are_refused(client, django_user_model):
    response = client.get(STATUS_URL)
    assert response.status_code == 401 and "expired_jobs" not in response.content.decode()
    client.force_login(django_user_model.objects.create_user("customer", is_superuser=True))
    assert client.get(STATUS_URL).status_code == 403


def test_a_monitor_reads_it_with_the_bearer_token(client, settings):
    settings.CLEANUP_STATUS_TOKEN = "s3cret-token"
    ok = client.get(STATUS_URL, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and ok.json()["expired_jobs"] == 0
    for wrong in ["Bearer s3cret", "Bearer s3cret-token-x", "Basic s3cret-token", "s3cret-token"]:
        assert client.get(STATUS_URL, headers={"Authorization": wrong}).status_code == 401


@pytest.mark.parametrize("unset", [None, ""])
def test_tokens_are_refused_when_no_token_is_configured(client, settings, unset):
    settings.CLEANUP_STATUS_TOKEN = unset
    for offered in ["Bearer ", "Bearer None", "Bearer  "]:
        assert client.get(STATUS_URL, headers={"Authorization": offered}).status_code == 401


def test_max_overdue_makes_the_endpoint_answer_503_when_at_risk(admin_client):
    expired_job(by=timedelta(hours=2), with_files=False)
    at_risk = admin_client.get(STATUS_URL, {"max_overdue": "60"})
    assert at_risk.status_code == 503 and at_risk.json()["problems"]
    assert admin_client.get(STATUS_URL, {"max_overdue": "600"}).status_code == 200
    bad = admin_client.get(STATUS_URL, {"max_overdue": "later"})
    assert bad.status_code == 400 and "number of minutes" in bad.json()["error"]


def test_the_endpoint_only_reads(admin_client):
    assert admin_client.post(STATUS_URL).status_code == 405
