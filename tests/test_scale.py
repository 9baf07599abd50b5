"""Scale: the purge's cost per batch is fixed, and purges running side by side share the work."""

import json
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cleanup.deletion import cascade_paths, purge_plan
from cleanup.models import PendingFileDeletion, PurgeRun
from cleanup.services import (
    delete_pending_files,
    plan_purge,
    purge_expired_chunk,
    purge_expired_jobs,
)
from jobs.demo import FILES_PER_JOB, ROWS_PER_JOB
from jobs.models import Job, JobFile
from tests.helpers import (
    FULL_JOB_ROWS,
    NO_ROWS,
    bind_test_storage,
    bulk_expired_jobs,
    expired_job,
    file_names,
    live_job,
    rows_of,
    stored,
)
from tests.processes import ROOT, child_env, fan_out_on_a_real_worker


@pytest.mark.django_db
def test_the_delete_plan_deletes_every_dependent_row_of_a_batch_and_nothing_else():
    # 130 jobs: more than Django's 100-key delete chunks and, on SQLite, more file rows than
    # one statement may carry parameters for (the batch's ids travel as one parameter).
    jobs = bulk_expired_jobs(130)
    kept = live_job()

    cascade = purge_plan().delete([j.pk for j in jobs])

    expected = {label: 130 * n for label, n in FULL_JOB_ROWS.items()}
    assert cascade.per_model == expected and cascade.total == 130 * ROWS_PER_JOB
    assert all(rows_of(job.pk) == NO_ROWS for job in jobs)
    assert rows_of(kept.pk) == FULL_JOB_ROWS


@pytest.mark.django_db
def test_a_batch_is_one_delete_per_model_children_first_and_no_row_fetched():
    # One DELETE per model, children first, and the file names from the DELETE itself.
    jobs = bulk_expired_jobs(30)
    ids = [job.pk for job in jobs]
    names = set(JobFile.objects.values_list("file", flat=True))
    kept = live_job()

    with CaptureQueriesContext(connection) as queries:
        cascade = purge_plan().delete(ids)

    statements = [q["sql"] for q in queries if not q["sql"].startswith("SAVEPOINT")]
    assert [sql.split()[0] for sql in statements] == ["DELETE"] * len(FULL_JOB_ROWS)
    tables = [sql.split()[2].strip('"') for sql in statements]
    assert tables.index("jobs_reportknowledge") < tables.index("jobs_report")
    assert tables[-1] == Job._meta.db_table
    assert cascade.per_model == {label: 30 * n for label, n in FULL_JOB_ROWS.items()}
    assert set(cascade.file_names) == names and len(cascade.file_names) == len(names)
    assert all(rows_of(job.pk) == NO_ROWS for job in jobs)
    assert rows_of(kept.pk) == FULL_JOB_ROWS


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db
def test_a_batch_costs_the_same_number_of_queries_whatever_its_size():
    per_batch = {}
    for size in (10, 100, 1000):
        costs = []
        for batches in (1, 2):
            bulk_expired_jobs(batches * size)
            with CaptureQueriesContext(connection) as queries:
                result = purge_expired_jobs(batch_size=size)
            assert result.batches == batches and not Job.objects.exists()
            # Savepoints stand for the BEGIN/COMMIT of a real run; they are not the purge's work.
            costs.append(sum(not q["sql"].startswith(("SAVEPOINT", "RELEASE")) for q in queries))
        per_batch[size] = costs[1] - costs[0]
    assert per_batch[10] == per_batch[100] == per_batch[1000], per_batch
    assert per_batch[10] <= 17, per_batch


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_three_purges_side_by_side_delete_each_job_once(tmp_path):
    with_files = [expired_job(by=timedelta(minutes=i + 1)) for i in range(12)]
    names = [name for job in with_files for name in file_names(job)]
    bulk_expired_jobs(288, by=timedelta(minutes=30))
    kept = [live_job() for _ in range(3)]
    kept_names = [name for job in kept for name in file_names(job)]
    command = [sys.executable, "manage.py", "purge_expired_jobs", "--json", "--batch-size", "4"]

    processes = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=300) for p in processes]

    for process, (_, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err
    results = [json.loads(out) for out, _ in outputs]
    assert sum(r["jobs_deleted"] > 0 for r in results) >= 2  # they really purged side by side
    assert sum(r["jobs_deleted"] for r in results) == 300
    assert sum(r["rows_total"] for r in results) == 300 * ROWS_PER_JOB
    assert sum(r["files_deleted"] for r in results) == 300 * FILES_PER_JOB
    assert all(r["status"] == "succeeded" and not r["error"] for r in results)
    assert Job.objects.count() == 3
    assert all(rows_of(job.pk) == FULL_JOB_ROWS for job in kept)
    assert stored(names) == [] and stored(kept_names) == kept_names
    assert not PendingFileDeletion.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_backlog_beyond_one_batch_is_split_over_at_most_max_parallel_subtasks():
    bulk_expired_jobs(23)
    assert not plan_purge(batch_size=30, max_parallel=3).fan_out

    plan = plan_purge(batch_size=5, max_parallel=3)
    assert plan.fan_out and plan.subtasks_started == 3
    assert not plan_purge(batch_size=5, max_parallel=1).fan_out  # no parallelism: no fan-out

    # 23 jobs: 3 batches' worth
    assert plan_purge(batch_size=10, max_parallel=8).subtasks_started == 3

    # Two subtasks of an earlier run are still purging: only one more starts.
    for _ in range(2):
        PurgeRun.objects.create(task_id="earlier", cutoff=plan.cutoff, batch_size=5)
    assert plan_purge(batch_size=5, max_parallel=3).subtasks_started == 1


@pytest.mark.django_db(transaction=True)
def test_a_subtask_out_of_time_asks_to_continue_and_the_chain_finishes_the_backlog():
    bulk_expired_jobs(7)
    plan = plan_purge(batch_size=2, max_parallel=2)
    chunks = []
    while not chunks or chunks[-1].status == PurgeRun.Status.HANDED_OVER:
        # No time at all: each subtask still does one batch, then hands over.
        chunks.append(
            purge_expired_chunk(cutoff=plan.cutoff, batch_size=2, seconds=0, group="backlog")
        )
        assert len(chunks) < 10
    assert [c.jobs_deleted for c in chunks] == [2, 2, 2, 1]
    # Handing over is routine, not an interruption a monitor should page about.
    assert [c.status for c in chunks] == ["handed_over"] * 3 + ["succeeded"]
    assert not Job.objects.exists()
    runs = PurgeRun.objects.filter(group="backlog")
    assert sum(runs.values_list("jobs_deleted", flat=True)) == 7


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_fans_a_large_backlog_out_and_purges_all_of_it(tmp_path):
    kept = fan_out_on_a_real_worker(tmp_path)

    assert rows_of(kept.pk) == FULL_JOB_ROWS
    runs = PurgeRun.objects.all()
    assert runs.count() >= 3  # the three subtasks at least, more if they re-enqueued
    assert sum(runs.values_list("jobs_deleted", flat=True)) == 120
    assert not runs.filter(status=PurgeRun.Status.FAILED).exists()
    log = (tmp_path / "worker.log").read_text()
    assert "delete_expired_jobs_chunk" in log and "purge.plan" in log


def table_stats(*tables) -> dict:
    """Rows PostgreSQL has read from these tables (scans of every kind), and their planner
    statistics."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:  # a new statement: the flush happened in between
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT sum(s.seq_tup_read + coalesce(s.idx_tup_fetch, 0)), sum(c.reltuples), "
            "sum(c.relpages) FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
            "WHERE s.relname = ANY(%s)",
            [list(tables)],
        )
        read, reltuples, relpages = cursor.fetchone()
    return {"rows_read": read, "reltuples": reltuples, "relpages": relpages}


def pending_table_stats() -> dict:
    return table_stats(PendingFileDeletion._meta.db_table)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_pending_table_analyzed_while_empty_still_costs_work_linear_in_its_names():
    # A database with history: names left pending by an outage, deleted by a later run, then
    # the table analyzed while empty but not truncated (as autovacuum's analyze does), so the
    # planner believes it holds one row. On main this turned forgetting names into a nested loop
    # re-running the locking subquery for every row: quadratic (2,000,000 rows read for 2,000).
    bind_test_storage()
    PendingFileDeletion.objects.record([f"jobs/{uuid.uuid4()}/a-{i}.png" for i in range(500)])
    assert delete_pending_files().deleted == 500
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {PendingFileDeletion._meta.db_table}")
    stats = pending_table_stats()
    assert stats["reltuples"] == 0 and stats["relpages"] > 0

    names = [f"jobs/{uuid.uuid4()}/b-{i}.png" for i in range(2000)]
    PendingFileDeletion.objects.record(names)
    result = delete_pending_files()

    assert result.deleted == len(names) and not PendingFileDeletion.objects.exists()
    read = pending_table_stats()["rows_read"] - stats["rows_read"]
    print(f"{read} rows read from the outbox to forget {len(names)} names")
    # Linear: a few reads per name (find it due, lock it, delete it). Quadratic: ~names**2 / 2.
    assert read <= 5 * len(names), f"{read} rows read from the outbox for {len(names)} names"


def job_tables_rows_read() -> int:
    return table_stats(*(model._meta.db_table for model, _ in cascade_paths(Job)))["rows_read"]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_batch_reads_the_rows_it_deletes_not_the_tables_they_are_in():
    # A batch is a small share of tables that hold a day of live jobs. With PostgreSQL's default
    # costs, main planned the batch's deletes as scans of whole tables: every batch read them all
    # (18 rows read per row deleted at 20,000 jobs), and cost more the larger the site.
    bulk_expired_jobs(3800, by=-timedelta(hours=2))  # live: two hours left
    expired = bulk_expired_jobs(200)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum leaves a busy site's tables
    before = job_tables_rows_read()

    result = purge_expired_jobs()

    read = job_tables_rows_read() - before
    assert result.jobs_deleted == len(expired) and Job.objects.count() == 3800
    print(f"{read} rows read from the job tables to delete {result.rows_total}")
    # Each deleted row found once, and a few lookups per job (its report, the backlog's count).
    assert read <= 2 * result.rows_total, f"{read} rows read to delete {result.rows_total}"
