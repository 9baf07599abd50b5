"""The alert rules in deploy/prometheus/alerts.yml, tested by promtool on series that reproduce
a new deployment before its first run and the first failed and files_pending runs; and the
metrics they read, exported as those series need them."""

import shutil
import subprocess
from pathlib import Path

import pytest
from django_celery_beat.models import PeriodicTask

from cleanup.models import PurgeRun
from cleanup.services import purge_expired_jobs
from tests.helpers import expired_job
from tests.test_metrics import scrape, value

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"


def test_promtool_passes_the_alert_rules_unit_tests():
    promtool = shutil.which("promtool")
    assert promtool, "needs promtool (apt-get install -y prometheus; .ci/run does)"
    checked = subprocess.run(
        [promtool, "test", "rules", str(RULES / "alerts_test.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@pytest.mark.django_db
def test_every_status_counter_is_exported_from_zero(admin_client):
    text = scrape(admin_client)
    for status in ["succeeded", "failed", "files_pending", "abandoned", "interrupted", "dry_run"]:
        assert f'fmr_cleanup_runs_total{{status="{status}"}} 0.0' in text, status
    assert 'status="running"' not in text

    expired_job(with_files=False)
    purge_expired_jobs(trigger=PurgeRun.Trigger.BEAT)
    text = scrape(admin_client)
    assert value(text, "fmr_cleanup_runs_total", status="succeeded") == 1
    assert value(text, "fmr_cleanup_jobs_deleted_total", status="succeeded") == 1
    assert 'fmr_cleanup_runs_total{status="failed"} 0.0' in text


@pytest.mark.django_db
def test_the_first_run_due_is_the_first_scheduled_run_after_the_first_migrate(admin_client):
    text = scrape(admin_client)
    due = value(text, "fmr_cleanup_first_run_due_timestamp_seconds")
    assert due > 0
    # The hourly crontab: on the hour, at most an hour after the tables were made.
    assert due % 3600 == 0, due
    PeriodicTask.objects.filter(name="delete-expired-jobs").delete()
    assert value(scrape(admin_client), "fmr_cleanup_first_run_due_timestamp_seconds") == 0
