"""Benchmark the purge against the original design and a hand-written SQL floor.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fmr_bench \\
        python bench/purge_bench.py --jobs 100000 --json bench/results/purge.json

Every way runs on identical, freshly seeded data (N expired jobs with the full fan-out: 19 rows
and 4 real files each, in a temporary MEDIA_ROOT) and in its own subprocess, so each peak RSS
is that way's own. The database is wiped: its name must contain "bench" (or pass --wipe).
"""

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")

FILE_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(248)
FLOOR_BATCH = 1000
# Every seeded job expired before this; the purges run with now=CUTOFF.
CUTOFF = datetime(2026, 1, 2, tzinfo=UTC)
CHILD_TABLES = [
    "jobs_payment",
    "jobs_jobfile",
    "jobs_smslog",
    "jobs_phoneverificationattempt",
    "jobs_paymentfailure",
]


# --- seeding (parent) --------------------------------------------------------------------------


def files_per_job() -> int:
    from jobs.demo import FILES_PER_JOB  # the seed SQL below makes jobs of exactly this shape

    return FILES_PER_JOB


def file_name(i, k):
    # Under the upload prefix: the purge never sends a name outside it to storage.
    return f"jobs/{i // 1000:04d}/{i}-{k}.png"


SEED_SQL = [
    "TRUNCATE jobs_job, jobs_payment, jobs_jobfile, jobs_smslog, jobs_phoneverificationattempt, "
    "jobs_paymentfailure, jobs_report, jobs_reportknowledge, cleanup_pendingfiledeletion, "
    "cleanup_purgerun, cleanup_storagebinding RESTART IDENTITY",
    # Job i expires i microseconds after the first: the same ids and order on every seed.
    """INSERT INTO jobs_job (id, status, created_at, expires_at, updated_at)
       SELECT md5('job' || i)::uuid, 'report_ready', %(base)s + i * interval '1 microsecond',
              %(base)s + interval '1 day' + i * interval '1 microsecond', %(base)s
       FROM generate_series(0, %(n)s - 1) i""",
    """INSERT INTO jobs_payment (job_id, provider, status, amount, currency,
                                provider_transaction_id, approved_at, created_at)
       SELECT md5('job' || i)::uuid, 'kakaopay', 'approved', 9900, 'KRW', 'T' || md5('p' || i),
              %(base)s, %(base)s
       FROM generate_series(0, %(n)s - 1) i""",
    """INSERT INTO jobs_jobfile (job_id, kind, file, content_type, size, created_at)
       SELECT md5('job' || i)::uuid, CASE WHEN k = 0 THEN 'original' ELSE 'ai_generated' END,
              'jobs/' || lpad((i / 1000)::text, 4, '0') || '/' || i || '-' || k || '.png',
              'image/png', 256, %(base)s
       FROM generate_series(0, %(n)s - 1) i CROSS JOIN generate_series(0, 3) k""",
    """INSERT INTO jobs_smslog (job_id, phone_number, message, provider, provider_message_id,
                               status, sent_at)
       SELECT md5('job' || i)::uuid, '010-0000-' || lpad((i %% 10000)::text, 4, '0'),
              '[fmr] 인증번호 123456를 입력해 주세요.', 'aligo', 'msg-' || i || '-' || k,
              'delivered', %(base)s
       FROM generate_series(0, %(n)s - 1) i CROSS JOIN generate_series(0, 2) k""",
    """INSERT INTO jobs_phoneverificationattempt (job_id, phone_number, code, verified,
                                                 attempt_count, created_at, verified_at)
       SELECT md5('job' || i)::uuid, '010-0000-' || lpad((i %% 10000)::text, 4, '0'), '123456',
              k = 2, k + 1, %(base)s, NULL
       FROM generate_series(0, %(n)s - 1) i CROSS JOIN generate_series(0, 2) k""",
    """INSERT INTO jobs_paymentfailure (job_id, provider, amount, code, message, created_at)
       SELECT md5('job' || i)::uuid, 'toss', 9900, 'CARD_DECLINED',
              '카드사에서 승인을 거절했습니다.', %(base)s
       FROM generate_series(0, %(n)s - 1) i""",
    """INSERT INTO jobs_report (job_id, title, body, created_at)
       SELECT md5('job' || i)::uuid, '나의 AI 리포트', '분석 결과 ...', %(base)s
       FROM generate_series(0, %(n)s - 1) i""",
    """INSERT INTO jobs_reportknowledge (report_id, position, topic, content, source)
       SELECT r.id, k, 'topic ' || k, '...', ''
       FROM jobs_report r CROSS JOIN generate_series(0, 4) k""",
    "ANALYZE",
]


def seed(n, media_root: Path):
    from django.db import connection

    base = CUTOFF - timedelta(days=2)
    with connection.cursor() as cursor:
        for sql in SEED_SQL:
            cursor.execute(sql, {"base": base, "n": n} if "%(" in sql else None)
        # Seeded in SQL, so no file was saved through the ORM to bind the storage: bind the
        # temporary MEDIA_ROOT the children purge from (the purge refuses an unbound one).
        cursor.execute(
            "INSERT INTO cleanup_storagebinding (id, kind, bucket, location, bound_at, bound_by, "
            "previous) VALUES (1, 'local', '', %s, now(), 'bench', '')",
            [os.path.realpath(media_root)],
        )
    for i in range(n):
        if i % 1000 == 0:
            (media_root / file_name(i, 0)).parent.mkdir(parents=True, exist_ok=True)
        for k in range(files_per_job()):
            (media_root / file_name(i, k)).write_bytes(FILE_BYTES)
    # Write back the seed (files and WAL) now, not while a way is being timed: measured, the
    # kernel flushing 400,000 new files during a run made every way 2-3x slower at 100,000 jobs.
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")
    os.sync()


def leftovers(media_root: Path) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM jobs_job) + (SELECT count(*) FROM jobs_jobfile) "
            "+ (SELECT count(*) FROM jobs_reportknowledge), "
            "(SELECT count(*) FROM cleanup_pendingfiledeletion)"
        )
        rows, pending = cursor.fetchone()
    files = sum(len(names) for _, _, names in os.walk(media_root))
    return {"rows_left": rows, "pending_left": pending, "files_left": files}


# --- the three ways (each in a child process) --------------------------------------------------


class QueryCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def run_project(batch_size, counter):
    import logging

    from cleanup.services import purge_expired_jobs

    marks = []

    class BatchMarks(logging.Handler):
        def emit(self, record):
            if record.getMessage().startswith("purge.batch"):
                marks.append(counter.count)

    logger = logging.getLogger("cleanup")
    logger.addHandler(BatchMarks())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        if not isinstance(handler, BatchMarks):
            logger.removeHandler(handler)  # one line per batch on stderr is not what we time
    result = purge_expired_jobs(now=CUTOFF, batch_size=batch_size)
    assert result.ok, result.error
    # Queries between two batch log lines: exactly one full batch (pick ids .. files deleted).
    per_batch = [b - a for a, b in itertools.pairwise(marks)]
    return result.jobs_deleted, result.rows_total, result.batches, per_batch


def run_floor(batch_size, counter):
    from django.db import connection, transaction

    from cleanup import storage

    jobs = rows = batches = 0
    per_batch = []
    while True:
        before = counter.count
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM jobs_job WHERE expires_at < %s ORDER BY expires_at LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                [CUTOFF, batch_size],
            )
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            cursor.execute("SELECT file FROM jobs_jobfile WHERE job_id = ANY(%s)", [ids])
            names = [row[0] for row in cursor.fetchall() if row[0]]
            cursor.execute(
                "DELETE FROM jobs_reportknowledge WHERE report_id IN "
                "(SELECT id FROM jobs_report WHERE job_id = ANY(%s))",
                [ids],
            )
            rows += cursor.rowcount
            for table in [*CHILD_TABLES, "jobs_report"]:
                cursor.execute(f"DELETE FROM {table} WHERE job_id = ANY(%s)", [ids])
                rows += cursor.rowcount
            cursor.execute("DELETE FROM jobs_job WHERE id = ANY(%s)", [ids])
            rows += cursor.rowcount
            jobs += cursor.rowcount
        outcome = storage.delete_names(names)
        assert not outcome.failed, outcome.failed
        batches += 1
        per_batch.append(counter.count - before)
    return jobs, rows, batches, per_batch


def run_original(batch_size, counter):
    from django.db import transaction
    from django.db.models.signals import post_delete

    from cleanup.file_models import file_models
    from jobs.models import Job

    for model in file_models():  # the original design deleted no files
        post_delete.disconnect(
            sender=model, dispatch_uid=f"cleanup.record_deleted_files.{model._meta.label}"
        )
    jobs = rows = 0
    with transaction.atomic():
        for job in list(Job.objects.expired(CUTOFF)):
            deleted, _ = job.delete()
            jobs += 1
            rows += deleted
    return jobs, rows, 1, []


WAYS = {"project": run_project, "floor": run_floor, "original": run_original}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(way, batch_size):
    import django

    django.setup()
    from django.db import connection

    counter = QueryCounter()
    rss_before = peak_rss_mb()
    with connection.execute_wrapper(counter):
        started = time.perf_counter()
        jobs, rows, batches, per_batch = WAYS[way](batch_size, counter)
        seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "jobs": jobs,
                "rows": rows,
                "batches": batches,
                "seconds": seconds,
                "queries": counter.count,
                "queries_per_batch": per_batch,
                "peak_rss_mb": peak_rss_mb(),
                "rss_after_setup_mb": rss_before,
            }
        )
    )


# --- orchestration (parent) --------------------------------------------------------------------


def measure(way, n, batch_size, media_root):
    seed(n, media_root)
    env = {**os.environ, "MEDIA_ROOT": str(media_root), "CLEANUP_LOG_LEVEL": "INFO"}
    done = subprocess.run(
        [sys.executable, __file__, "--child", way, "--batch-size", str(batch_size or 0)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(f"{way} failed:\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    left = leftovers(media_root)
    expected_files = 0 if way != "original" else n * files_per_job()
    if (
        data["jobs"] != n
        or left["rows_left"]
        or left["pending_left"]
        or (left["files_left"] != expected_files)
    ):
        sys.exit(f"{way} did not do the whole job: {data} {left}")
    per_batch = data.pop("queries_per_batch")
    return {
        "way": way,
        "jobs_seeded": n,
        "batch_size": batch_size,
        **data,
        "jobs_per_s": data["jobs"] / data["seconds"],
        "rows_per_s": data["rows"] / data["seconds"],
        "queries_per_batch": (
            {"min": min(per_batch), "max": max(per_batch), "median": statistics.median(per_batch)}
            if per_batch
            else None
        ),
        "queries_per_job": data["queries"] / data["jobs"],
        "loadavg_after": os.getloadavg()[0],
    }


def row_text(r):
    qpb = r["queries_per_batch"]
    qpb_text = (
        f"{qpb['min']}-{qpb['max']}"
        if qpb and qpb["min"] != qpb["max"]
        else (f"{qpb['min']}" if qpb else f"{r['queries_per_job']:.1f}/job")
    )
    return (
        f"{r['way']:<9}{r['jobs']:>9}{r['batch_size'] or '-':>7}{r['seconds']:>9.1f}"
        f"{r['jobs_per_s']:>9.0f}{r['rows_per_s']:>10.0f}{r['peak_rss_mb']:>9.1f}{qpb_text:>12}"
    )


HEADER = (
    f"{'way':<9}{'jobs':>9}{'batch':>7}{'seconds':>9}{'jobs/s':>9}{'rows/s':>10}"
    f"{'peak MB':>9}{'q/batch':>12}"
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="backlog for the main ways")
    parser.add_argument(
        "--original-jobs",
        type=int,
        default=10_000,
        help="backlog for the original loop (~200 jobs/s), default 10,000",
    )
    parser.add_argument(
        "--small-jobs",
        type=int,
        default=10_000,
        help="smaller backlog the project's purge also runs, to compare peak RSS",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="the project's batch size (default: CLEANUP_BATCH_SIZE)",
    )
    parser.add_argument(
        "--sweep",
        default="500,1000,2000,5000",
        help="batch sizes to measure the project's purge at ('' to skip)",
    )
    parser.add_argument("--sweep-jobs", type=int, default=20_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--media-parent",
        default="/dev/shm" if Path("/dev/shm").is_dir() else None,
        help="where the temporary MEDIA_ROOT goes (default /dev/shm: a tmpfs, so that writing "
        "back 400,000 freshly seeded files to disk does not dominate every way's time)",
    )
    parser.add_argument(
        "--wipe", action="store_true", help="allow a database whose name does not contain 'bench'"
    )
    parser.add_argument("--child", choices=sorted(WAYS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.batch_size or None)
    for name in ("jobs", "original_jobs", "small_jobs", "sweep_jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be positive")

    import django

    media_root = Path(tempfile.mkdtemp(prefix="fmr-bench-", dir=args.media_parent))
    os.environ["MEDIA_ROOT"] = str(media_root)
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        parser.error("the benchmark needs PostgreSQL: set DATABASE_URL=postgres://...")
    if "bench" not in connection.settings_dict["NAME"] and not args.wipe:
        parser.error(
            f"refusing to wipe database {connection.settings_dict['NAME']!r}: use a "
            "database whose name contains 'bench', or pass --wipe"
        )
    call_command("migrate", verbosity=0)
    batch_size = args.batch_size or settings.CLEANUP_BATCH_SIZE

    plan = [("project", args.sweep_jobs, int(b)) for b in args.sweep.split(",") if b]
    plan += [
        ("project", args.small_jobs, batch_size),
        ("project", args.jobs, batch_size),
        ("floor", args.jobs, FLOOR_BATCH),
        ("original", args.original_jobs, None),
    ]
    started = datetime.now(UTC)
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"PostgreSQL {connection.pg_version}; media in {media_root}",
        flush=True,
    )
    print(HEADER, flush=True)
    results = []
    for way, n, size in plan:
        results.append(measure(way, n, size, media_root))
        print(row_text(results[-1]), flush=True)

    small_project, main_project, floor, original = results[-4:]
    summary = {
        "project_vs_floor": main_project["jobs_per_s"] / floor["jobs_per_s"],
        "project_vs_original": main_project["jobs_per_s"] / original["jobs_per_s"],
        "peak_rss_growth_mb": main_project["peak_rss_mb"] - small_project["peak_rss_mb"],
    }
    print(
        f"\nproject / floor = {summary['project_vs_floor']:.2f}x   "
        f"project / original = {summary['project_vs_original']:.1f}x   "
        f"peak RSS {small_project['jobs']:,} -> {main_project['jobs']:,} jobs: "
        f"{summary['peak_rss_growth_mb']:+.1f} MB"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": " ".join(["python", "bench/purge_bench.py", *sys.argv[1:]]),
                    "started": started.isoformat(),
                    "cpus": os.cpu_count(),
                    "media": str(media_root),
                    "postgresql": connection.pg_version,
                    "results": results,
                    "summary": summary,
                },
                indent=2,
            )
            + "\n"
        )
    connection.close()
    subprocess.run(["rm", "-rf", str(media_root)], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
