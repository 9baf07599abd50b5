"""One purge, one entry: a fan-out's runs share a group, and the history reads the group.

Every run of a fan-out (its tasks side by side and the successors they hand over to) carries
the trigger that was asked for (beat, admin, ...) and the group of the request; the purge's
totals are its runs' sums; it is "succeeded" only once none of its runs is open, failed or left
files pending, and its latest run did not hand work on; and "last successful purge" names the
purge, never an empty leftover run on its own.
"""

import json
from io import StringIO

import pytest
from django.core.management import call_command

from cleanup.models import PurgeRun
from cleanup.services import (
    plan_purge,
    purge_expired_chunk,
    purge_status,
    record_unsent,
)
from cleanup.tasks import delete_expired_jobs
from jobs.demo import FILES_PER_JOB, ROWS_PER_JOB
from jobs.models import Job
from tests.helpers import (
    FULL_JOB_ROWS,
    bulk_expired_jobs,
    expired_job,
    live_job,
    rows_of,
    run_chain,
    run_fan_out,
)
from tests.processes import fan_out_on_a_real_worker

SUMMED = ["jobs_deleted", "files_deleted", "files_pending"]


def assert_purge_is_the_sum_of_its_runs(facts, runs):
    assert runs, "a purge without runs"
    assert facts["run_id"] == min(run.pk for run in runs)
    assert {r["run_id"] for r in facts["runs"]} == {run.pk for run in runs}
    for field in SUMMED:
        assert facts[field] == sum(getattr(run, field) for run in runs), field
    rows = {}
    for run in runs:
        for label, count in run.rows_deleted.items():
            rows[label] = rows.get(label, 0) + count
    assert facts["rows_deleted"] == rows


@pytest.mark.django_db(transaction=True)
def test_a_fan_out_is_one_purge_with_the_requested_trigger_and_its_runs_totals(settings):
    settings.CLEANUP_SUBTASK_SECONDS = 0  # each task does one batch, then hands over
    bulk_expired_jobs(9)
    kept = live_job()
    plan = plan_purge(batch_size=2, max_parallel=2)
    asked = {"group": "tick-1", "trigger": PurgeRun.Trigger.ADMIN, "requested_by": "operator"}

    # A task handed over and its successor has not run yet: the purge is not done.
    first = purge_expired_chunk(cutoff=plan.cutoff, batch_size=2, **asked)
    assert first.status == PurgeRun.Status.HANDED_OVER
    assert purge_status().last_run["status"] == PurgeRun.Status.HANDED_OVER
    assert purge_status().last_success is None

    # Two chains side by side (here: one after the other), each re-enqueueing itself.
    chains = run_chain(plan.cutoff, 2, **asked) + run_chain(plan.cutoff, 2, **asked)
    runs = [first, *chains]
    assert {run.trigger for run in runs} == {PurgeRun.Trigger.ADMIN}
    assert {run.requested_by for run in runs} == {"operator"}
    assert rows_of(kept.pk) == FULL_JOB_ROWS

    facts = purge_status()
    assert facts.last_success["status"] == PurgeRun.Status.SUCCEEDED
    assert facts.last_success["trigger"] == "admin"
    assert facts.last_success["jobs_deleted"] == 9
    assert facts.last_success["rows_deleted"]["jobs.SmsLog"] == 27
    assert_purge_is_the_sum_of_its_runs(facts.last_success, runs)
    assert facts.last_run == facts.last_success


@pytest.mark.django_db(transaction=True)
def test_last_successful_purge_never_names_an_empty_leftover_run():
    bulk_expired_jobs(6)
    plan = plan_purge(batch_size=2, max_parallel=3)
    runs = run_fan_out(plan, group="tick", trigger=PurgeRun.Trigger.BEAT)
    # The last task came too late for work: an empty, succeeded run, the newest run.
    newest = PurgeRun.objects.order_by("-started_at", "-pk").first()
    assert newest.group == "tick" and newest.jobs_deleted == 0

    out = StringIO()
    call_command("purge_status", stdout=out)
    text = out.getvalue()
    assert f"last successful purge:        run #{runs[0].pk} (beat)" in text
    assert f"6 job(s), {6 * ROWS_PER_JOB} row(s), {6 * FILES_PER_JOB} file(s) deleted" in text
    assert f"fan-out over {len(runs)} run(s)" in text

    out = StringIO()
    call_command("purge_status", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["last_success"]["run_id"] == runs[0].pk
    assert data["last_success"]["group"] == "tick"
    assert data["last_success"]["jobs_deleted"] == 6
    assert len(data["last_success"]["runs"]) == len(runs) >= 3


@pytest.mark.django_db(transaction=True)
def test_a_purge_is_not_succeeded_while_one_of_its_runs_failed(settings):
    bulk_expired_jobs(4)
    plan = plan_purge(batch_size=2, max_parallel=2)
    working = settings.STORAGES
    # The first task's storage is one the purge does not support: its run fails before it
    # deletes anything.
    settings.STORAGES = {
        **working,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    with pytest.raises(Exception, match="not supported") as failed:
        purge_expired_chunk(cutoff=plan.cutoff, batch_size=2, group="tick")
    assert failed.value.purge_result.status == PurgeRun.Status.FAILED
    settings.STORAGES = working
    runs = [failed.value.purge_result, *run_chain(plan.cutoff, 2, group="tick")]

    assert not Job.objects.exists()
    facts = purge_status().last_run
    assert facts["status"] == PurgeRun.Status.FAILED
    assert_purge_is_the_sum_of_its_runs(facts, runs)
    assert facts["jobs_deleted"] == 4
    assert purge_status().last_success is None


@pytest.mark.django_db(transaction=True)
def test_a_fan_out_task_that_could_not_be_enqueued_fails_its_purge():
    bulk_expired_jobs(4)
    plan = plan_purge(batch_size=2, max_parallel=2)
    run_chain(plan.cutoff, 2, group="tick")
    record_unsent(
        cutoff=plan.cutoff.isoformat(),
        batch_size=2,
        error="OperationalError: broker unreachable",
        group="tick",
    )

    facts = purge_status().last_run
    assert facts["status"] == PurgeRun.Status.FAILED and facts["finished_at"] is not None
    unsent = PurgeRun.objects.get(group="tick", status=PurgeRun.Status.FAILED)
    assert "broker unreachable" in unsent.error and unsent.jobs_deleted == 0
    assert "none" in unsent.method
    assert purge_status().last_success is None


@pytest.mark.django_db(transaction=True)
def test_a_fan_out_whose_tasks_never_came_claims_no_purge():
    expired_job(with_files=False)
    delete_expired_jobs.apply()  # a purge that did its work
    done = purge_status().last_success
    bulk_expired_jobs(4)
    plan = plan_purge(batch_size=2, max_parallel=2)
    # Its tasks expired in the queue: no run was recorded, so none claims the backlog purged.
    assert plan.subtasks_started == 2
    assert purge_status().last_success == done and purge_status().expired_jobs == 4
    # A chain whose successor never came: never the last successful purge either.
    first = purge_expired_chunk(cutoff=plan.cutoff, batch_size=2, seconds=0, group="lost")
    assert first.status == PurgeRun.Status.HANDED_OVER
    assert purge_status().last_success == done


@pytest.mark.django_db(transaction=True)
def test_a_backlog_one_batch_can_take_is_one_plain_run_with_the_requested_trigger():
    expired_job(with_files=False)
    summary = delete_expired_jobs.apply(kwargs={"trigger": "admin", "requested_by": "operator"})
    run = PurgeRun.objects.get()
    assert summary.get()["run_id"] == run.pk
    assert run.trigger == "admin" and run.requested_by == "operator"
    assert run.group == summary.id == run.task_id
    assert run.status == PurgeRun.Status.SUCCEEDED and run.jobs_deleted == 1


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_fan_out_is_one_purge_with_the_admins_trigger(tmp_path):
    kept = fan_out_on_a_real_worker(tmp_path, trigger="admin", requested_by="operator")

    assert rows_of(kept.pk) == FULL_JOB_ROWS
    runs = list(PurgeRun.objects.all())
    assert len({run.group for run in runs}) == 1 and len(runs) >= 3
    assert {run.trigger for run in runs} == {PurgeRun.Trigger.ADMIN}
    assert {run.requested_by for run in runs} == {"operator"}
    facts = purge_status().last_success
    assert facts["status"] == PurgeRun.Status.SUCCEEDED and facts["jobs_deleted"] == 120
    assert_purge_is_the_sum_of_its_runs(facts, runs)
    assert purge_status().last_run == facts
