"""A run's record says what really happened: every name it left pending, and for a dry run what
it *would* have deleted, under that name, never as a deletion or a successful purge."""

import json
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cleanup.logs import KeyValueFormatter, fields_of
from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import purge_expired_jobs, purge_status
from jobs.demo import FILES_PER_JOB, ROWS_PER_JOB
from jobs.models import Job
from tests.helpers import (
    FULL_JOB_ROWS,
    bind_test_storage,
    expired_job,
    file_names,
    live_job,
    rows_of,
    stored,
)
from tests.s3proxy import ERROR, FORWARD
from tests.s3server import put_objects

pytestmark = pytest.mark.django_db


# --- files_pending counts every name the run left pending, its final sweep included -----------


def pending_from_earlier_runs(bucket, count):
    names = [f"jobs/{uuid.uuid4()}/ai_generated-{i}.png" for i in range(count)]
    put_objects(bucket.client, bucket.name, names)
    PendingFileDeletion.objects.record(names)
    bind_test_storage()  # written without a file save: nothing bound them (issue 9)
    return names


@pytest.mark.slow
def test_during_an_outage_files_pending_counts_every_pending_name_not_the_first_chunk(
    s3_bucket, s3_proxy
):
    earlier = pending_from_earlier_runs(s3_bucket, 1200)
    s3_proxy.set_mode(ERROR)

    result = purge_expired_jobs()

    assert PendingFileDeletion.objects.count() == 1200
    assert result.status == PurgeRun.Status.FILES_PENDING
    assert result.files_pending == 1200
    assert PurgeRun.objects.get(pk=result.run_id).files_pending == 1200

    s3_proxy.set_mode(FORWARD)
    later = purge_expired_jobs()
    assert later.ok and later.files_deleted == 1200 and later.files_pending == 0
    assert s3_bucket.keys().isdisjoint(earlier)


@pytest.mark.slow
def test_an_outage_mid_run_counts_its_own_names_and_the_earlier_ones_once_each(s3_bucket, s3_proxy):
    pending_from_earlier_runs(s3_bucket, 1005)
    jobs = [expired_job() for _ in range(3)]
    s3_proxy.set_mode(ERROR)

    result = purge_expired_jobs(batch_size=1)

    assert all(not Job.objects.filter(pk=job.pk).exists() for job in jobs)
    assert PendingFileDeletion.objects.count() == 1005 + 3 * FILES_PER_JOB
    assert result.files_pending == 1005 + 3 * FILES_PER_JOB


@pytest.mark.slow
def test_a_run_that_finishes_earlier_names_counts_them_deleted_and_none_pending(s3_bucket):
    pending_from_earlier_runs(s3_bucket, 1200)
    expired_job()

    result = purge_expired_jobs()

    assert result.ok and result.files_pending == 0
    assert result.files_deleted == 1200 + FILES_PER_JOB
    assert not PendingFileDeletion.objects.exists()


# --- dry runs record what they would delete, under their own name ------------------------------


def test_a_dry_run_records_what_it_would_delete_and_deletes_nothing(caplog):
    jobs = [expired_job() for _ in range(5)]
    live_job()
    names = [name for job in jobs for name in file_names(job)]
    caplog.set_level("INFO", logger="cleanup")

    predicted = purge_expired_jobs(dry_run=True)

    assert all(rows_of(job.pk) == FULL_JOB_ROWS for job in jobs)
    assert stored(names) == names
    run = PurgeRun.objects.get(pk=predicted.run_id)
    assert run.dry_run and run.status == PurgeRun.Status.DRY_RUN
    assert (run.would_delete_jobs, run.would_delete_files) == (5, 5 * FILES_PER_JOB)
    assert sum(run.would_delete_rows.values()) == 5 * ROWS_PER_JOB
    assert run.would_delete_rows["jobs.SmsLog"] == 15
    # Nothing was deleted, and the record does not say otherwise.
    assert run.jobs_deleted == run.files_deleted == run.files_pending == 0
    assert sum(run.rows_deleted.values()) == 0
    assert predicted.files_deleted == predicted.jobs_deleted == predicted.rows_total == 0
    assert predicted.would_delete_files == 20 and predicted.would_delete_jobs == 5

    [line] = [r for r in caplog.records if r.getMessage() == "purge.run"]
    fields = fields_of(line)
    assert fields["would_delete_files"] == 20 and fields["would_delete_jobs"] == 5
    assert not any(key.endswith("deleted") for key in fields), fields
    assert "files_deleted=" not in KeyValueFormatter().format(line)

    actual = purge_expired_jobs()
    assert actual.jobs_deleted == predicted.would_delete_jobs
    assert actual.rows_deleted == run.would_delete_rows
    assert actual.files_deleted == predicted.would_delete_files


def test_a_dry_run_is_never_the_last_successful_purge():
    expired_job(with_files=False)
    purge_expired_jobs(dry_run=True)
    facts = purge_status()
    assert facts.last_success is None and facts.last_run is None

    done = purge_expired_jobs()
    purge_expired_jobs(dry_run=True)
    assert purge_status().last_success["run_id"] == done.run_id


def test_the_dry_run_command_says_would_and_its_json_claims_no_deletion():
    expired_job()
    out = StringIO()
    call_command("purge_expired_jobs", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "would delete 1 job(s)" in text and "would delete 4 file(s)" in text
    assert "deleted" not in text.replace("nothing deleted", "")

    out = StringIO()
    call_command("purge_expired_jobs", "--dry-run", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["dry_run"] is True and data["status"] == "dry_run"
    assert data["would_delete_jobs"] == 1 and data["would_delete_files"] == FILES_PER_JOB
    assert data["would_delete_rows_total"] == ROWS_PER_JOB
    assert data["jobs_deleted"] == data["files_deleted"] == data["rows_total"] == 0
    assert Job.objects.count() == 1


def test_a_real_run_still_exits_non_zero_when_it_leaves_files_pending(s3_bucket, s3_proxy):
    expired_job()
    s3_proxy.set_mode(ERROR)
    with pytest.raises(CommandError, match="4 file"):
        call_command("purge_expired_jobs", stdout=StringIO())
