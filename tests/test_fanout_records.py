"""One fan-out, one record: a fan-out leaves a parent run whose totals are its subtasks' runs'.

The parent carries the trigger that was asked for (beat, admin, ...); its subtasks' runs point at
it; it is "succeeded" only once every subtask is done and none failed or left files pending; and
"last successful purge" names the parent, never an empty leftover subtask.
"""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from cleanup.models import PurgeRun
from cleanup.services import (
    plan_purge,
    purge_expired_chunk,
    purge_status,
    release_subtask,
    start_fan_out,
)
from cleanup.tasks import delete_expired_jobs
from jobs.demo import FILES_PER_JOB, ROWS_PER_JOB
from jobs.models import Job
from tests.helpers import FULL_JOB_ROWS, bulk_expired_jobs, expired_job, live_job, rows_of
from tests.processes import fan_out_on_a_real_worker

SUMMED = ["batches", "jobs_deleted", "files_deleted", "files_pending"]


def assert_parent_is_the_sum_of_its_subtasks(parent):
    subtasks = list(parent.subtask_runs.all())
    assert subtasks, "a fan-out parent without subtask runs"
    for field in SUMMED:
        assert getattr(parent, field) == sum(getattr(s, field) for s in subtasks), field
    rows = {}
    for subtask in subtasks:
        for label, count in subtask.rows_deleted.items():
            rows[label] = rows.get(label, 0) + count
    assert parent.rows_deleted == rows


def run_chain(cutoff, batch_size, parent_id, seconds=0):
    """Subtasks as the worker runs them: each one's successor runs after it, until none is due."""
    chunks = [purge_expired_chunk(cutoff=cutoff, batch_size=batch_size, parent_id=parent_id)]
    while chunks[-1].more:
        chunks.append(
            purge_expired_chunk(
                cutoff=cutoff, batch_size=batch_size, parent_id=parent_id, seconds=seconds
            )
        )
        assert len(chunks) < 20
    return chunks


@pytest.mark.django_db(transaction=True)
def test_a_fan_out_records_a_parent_run_with_the_requested_trigger_and_its_subtasks_totals(
    settings,
):
    settings.CLEANUP_SUBTASK_SECONDS = 0  # each subtask does one batch, then hands over
    bulk_expired_jobs(9)
    kept = live_job()
    plan = plan_purge(batch_size=2, max_parallel=2)
    fan_out = start_fan_out(plan=plan, trigger=PurgeRun.Trigger.ADMIN, requested_by="operator")

    parent = PurgeRun.objects.get(pk=fan_out.run_id)
    assert parent.trigger == PurgeRun.Trigger.ADMIN and parent.requested_by == "operator"
    assert parent.status == PurgeRun.Status.FANNED_OUT
    assert fan_out.as_dict()["run_id"] == parent.pk

    # Two chains side by side (here: one after the other), each re-enqueueing itself.
    first = run_chain(plan.cutoff, 2, parent.pk)
    parent.refresh_from_db()
    # One chain is done, the other has not started: the parent is still open.
    assert parent.status == PurgeRun.Status.FANNED_OUT
    assert_parent_is_the_sum_of_its_subtasks(parent)
    second = run_chain(plan.cutoff, 2, parent.pk)

    parent.refresh_from_db()
    assert parent.status == PurgeRun.Status.SUCCEEDED and parent.finished_at is not None
    assert parent.jobs_deleted == 9 and parent.rows_deleted["jobs.SmsLog"] == 27
    assert_parent_is_the_sum_of_its_subtasks(parent)
    subtasks = parent.subtask_runs.all()
    assert subtasks.count() == len(first) + len(second)
    assert {s.trigger for s in subtasks} == {PurgeRun.Trigger.TASK}
    assert rows_of(kept.pk) == FULL_JOB_ROWS

    facts = purge_status()
    # The last subtask found nothing left: it is never "the last successful purge".
    assert facts.last_success["run_id"] == parent.pk
    assert facts.last_success["jobs_deleted"] == 9
    assert facts.last_success["subtask_runs"] == subtasks.count()
    assert {s["run_id"] for s in facts.last_success["subtasks"]} == {s.pk for s in subtasks}
    assert facts.last_run["run_id"] == parent.pk


@pytest.mark.django_db(transaction=True)
def test_last_successful_purge_never_names_an_empty_leftover_subtask():
    bulk_expired_jobs(6)
    plan = plan_purge(batch_size=2, max_parallel=3)
    fan_out = start_fan_out(plan=plan, trigger=PurgeRun.Trigger.BEAT)
    for _ in range(plan.subtasks):
        run_chain(plan.cutoff, 2, fan_out.run_id)
    # The third subtask came too late for work: an empty, succeeded subtask run, the newest run.
    newest = PurgeRun.objects.order_by("-started_at", "-pk").first()
    assert newest.parent_id == fan_out.run_id

    out = StringIO()
    call_command("purge_status", stdout=out)
    text = out.getvalue()
    assert f"last successful purge:        run #{fan_out.run_id} (beat)" in text
    assert f"6 job(s), {6 * ROWS_PER_JOB} row(s), {6 * FILES_PER_JOB} file(s) deleted" in text
    assert "subtask run(s)" in text

    out = StringIO()
    call_command("purge_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["last_success"]["run_id"] == fan_out.run_id
    assert data["last_success"]["jobs_deleted"] == 6
    assert len(data["last_success"]["subtasks"]) == data["last_success"]["subtask_runs"] >= 3


@pytest.mark.django_db(transaction=True)
def test_a_parent_is_not_succeeded_while_a_subtask_failed_or_left_files_pending(settings):
    bulk_expired_jobs(4)
    plan = plan_purge(batch_size=2, max_parallel=2)
    fan_out = start_fan_out(plan=plan, trigger=PurgeRun.Trigger.BEAT)
    working = settings.STORAGES
    # The first subtask's storage is one the purge does not support: its run fails before it
    # deletes anything.
    settings.STORAGES = {
        **working,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    with pytest.raises(Exception, match="not supported") as failed:
        purge_expired_chunk(cutoff=plan.cutoff, batch_size=2, parent_id=fan_out.run_id)
    assert failed.value.purge_result.status == PurgeRun.Status.FAILED
    settings.STORAGES = working
    run_chain(plan.cutoff, 2, fan_out.run_id)  # the other subtask finishes the backlog

    parent = PurgeRun.objects.get(pk=fan_out.run_id)
    assert not Job.objects.exists()
    assert parent.status == PurgeRun.Status.FAILED
    assert "not supported" in parent.error
    assert_parent_is_the_sum_of_its_subtasks(parent)
    assert parent.jobs_deleted == 4
    assert purge_status().last_success is None


@pytest.mark.django_db(transaction=True)
def test_a_subtask_that_could_not_be_enqueued_does_not_keep_the_parent_open_forever():
    bulk_expired_jobs(4)
    plan = plan_purge(batch_size=2, max_parallel=2)
    fan_out = start_fan_out(plan=plan, trigger=PurgeRun.Trigger.BEAT)
    run_chain(plan.cutoff, 2, fan_out.run_id)
    release_subtask(parent_id=fan_out.run_id, error="OperationalError: broker unreachable")

    parent = PurgeRun.objects.get(pk=fan_out.run_id)
    assert parent.status != PurgeRun.Status.FANNED_OUT and parent.finished_at is not None
    assert parent.status != PurgeRun.Status.SUCCEEDED
    assert "broker unreachable" in parent.error


@pytest.mark.django_db(transaction=True)
def test_a_fan_out_whose_subtasks_never_came_is_closed_by_a_later_purge():
    bulk_expired_jobs(4)
    plan = plan_purge(batch_size=2, max_parallel=2)
    fan_out = start_fan_out(plan=plan, trigger=PurgeRun.Trigger.BEAT)
    # Its subtasks expired in the queue: nothing happened for longer than they may wait.
    long_ago = timezone.now() - timedelta(hours=2)
    PurgeRun.objects.filter(pk=fan_out.run_id).update(started_at=long_ago, heartbeat_at=long_ago)

    from cleanup.services import purge_expired_jobs

    purge_expired_jobs()

    parent = PurgeRun.objects.get(pk=fan_out.run_id)
    assert parent.status == PurgeRun.Status.ABANDONED and parent.finished_at is not None
    assert "subtask" in parent.error


@pytest.mark.django_db(transaction=True)
def test_a_backlog_one_batch_can_take_is_one_plain_run_with_the_requested_trigger():
    expired_job(with_files=False)
    summary = delete_expired_jobs.apply(kwargs={"trigger": "admin", "requested_by": "operator"})
    run = PurgeRun.objects.get()
    assert summary.get()["run_id"] == run.pk
    assert run.trigger == "admin" and run.requested_by == "operator" and run.parent is None
    assert run.status == PurgeRun.Status.SUCCEEDED and run.jobs_deleted == 1


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_fan_out_leaves_one_parent_record_with_the_admins_trigger(tmp_path):
    kept = fan_out_on_a_real_worker(tmp_path, trigger="admin", requested_by="operator")

    assert rows_of(kept.pk) == FULL_JOB_ROWS
    parent = PurgeRun.objects.get(parent__isnull=True)
    assert parent.trigger == PurgeRun.Trigger.ADMIN and parent.requested_by == "operator"
    assert parent.status == PurgeRun.Status.SUCCEEDED
    assert parent.jobs_deleted == 120
    assert_parent_is_the_sum_of_its_subtasks(parent)
    assert parent.subtask_runs.count() >= 3
    assert not PurgeRun.objects.filter(parent__isnull=True).exclude(pk=parent.pk).exists()
    assert purge_status().last_success["run_id"] == parent.pk
