import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cleanup.models import PurgeRun
from jobs.demo import ROWS_PER_JOB
from jobs.models import Job
from tests.helpers import expired_job, live_job
from tests.processes import run_manage

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command("purge_expired_jobs", *args, stdout=out)
    return out.getvalue()


def test_prints_the_rows_deleted_per_model():
    expired_job()
    live_job()
    output = run()
    assert "deleted 1 job(s)" in output
    assert "jobs.ReportKnowledge" in output and "5" in output
    assert "files deleted: 4" in output
    assert Job.objects.count() == 1


def test_json_output_is_the_result():
    expired_job()
    data = json.loads(run("--json"))
    assert data["jobs_deleted"] == 1
    assert data["rows_deleted"]["jobs.SmsLog"] == 3
    assert data["rows_total"] == ROWS_PER_JOB
    assert data["status"] == "succeeded"
    assert PurgeRun.objects.get(pk=data["run_id"]).trigger == PurgeRun.Trigger.COMMAND


def test_dry_run_flag_changes_nothing():
    expired_job()
    data = json.loads(run("--dry-run", "--json"))
    assert data["dry_run"] is True and data["would_delete_jobs"] == 1
    assert Job.objects.count() == 1


def test_limit_and_batch_size_flags():
    for _ in range(3):
        expired_job(with_files=False)
    data = json.loads(run("--limit", "2", "--batch-size", "1", "--json"))
    assert data["jobs_deleted"] == 2 and data["batches"] == 2
    assert Job.objects.count() == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--batch-size", "0"],
        ["--batch-size", "-5"],
        ["--limit", "abc"],
        ["--limit", "0"],
        ["--batch-size", "1.5"],
    ],
)
def test_bad_arguments_are_refused_and_delete_nothing(args):
    expired_job(with_files=False)
    with pytest.raises(CommandError, match="positive whole number"):
        run(*args)
    assert Job.objects.count() == 1


def test_bad_arguments_exit_non_zero_with_a_clear_message():
    done = run_manage("purge_expired_jobs", "--batch-size", "zero", timeout=60)
    assert done.returncode != 0
    assert "positive whole number" in done.stderr
    assert "Traceback" not in done.stderr
