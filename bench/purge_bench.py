"""Benchmark the purge against a hand-written SQL floor and the original design, in steady state.

    createdb fmr_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fmr_bench \\
        python bench/purge_bench.py --json bench/results/purge.json

Three scenarios, each on identical freshly seeded data (N expired jobs with the full fan-out:
19 rows and 4 files each):

- files: the files are real, in a temporary MEDIA_ROOT on tmpfs;
- db:    the same rows, no stored objects (the storage deletes find nothing): database work;
- s3:    the files are objects on moto's S3 server on loopback (both ways use DeleteObjects);
- far:   the same, with moto behind bench/latency_proxy.py (a 40 ms round trip and
         5 ms per KiB of request body: a 1,000-key DeleteObjects takes ~0.4 s, as AWS's do);
         reported against s3 as far/loopback (the "far-s3" scenario of `make bench`).

The ways: `project` (cleanup.services.purge_expired_jobs), `floor` (hand-written SQL doing the
same work: per batch, select expired ids with SKIP LOCKED, select their file names, delete
children then jobs, commit, delete the files through cleanup.storage, as the project does),
`stock` (the design's first approach: per batch, stock `QuerySet.delete()` through Django's
Collector and its signals, a post_delete receiver collecting the file names, then the project's
outbox and file step; files and db scenarios), and
`original` (the first loop: load every expired job, job.delete() each, one transaction, no
file work). Every way runs in its own subprocess, so each peak RSS is its own.

Steady state: the database is never reset between rounds, only the seeded tables are refilled;
the outbox keeps its history (emptied by DELETE and vacuumed, never TRUNCATE) and every seed
ends with ANALYZE, so each purge meets a pending table analyzed while empty, as on a database in
production. The rounds interleave the ways (rotating their order) and the median round is reported.

The database is wiped: its name must contain "bench" (or pass --wipe).
"""

import argparse
import itertools
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")
# A benchmark, not a site: production settings (DEBUG off) with a throwaway key.
os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-key-not-secret")
# Production settings require a broker; the bench sends no task.
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")

FILE_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(248)
# Every seeded job expired before this; the purges run with now=CUTOFF.
CUTOFF = datetime(2026, 1, 2, tzinfo=timezone.utc)
CHILD_TABLES = [
    "jobs_payment",
    "jobs_jobfile",
    "jobs_smslog",
    "jobs_phoneverificationattempt",
    "jobs_paymentfailure",
]
S3_SCENARIOS = ("s3", "far")
LATENCY_PROXY = Path(__file__).resolve().parent / "latency_proxy.py"
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_S3_REGION_NAME": "us-east-1",
}


# --- seeding (parent) --------------------------------------------------------------------------


def files_per_job() -> int:
    from jobs.demo import FILES_PER_JOB  # the seed SQL below makes jobs of exactly this shape

    return FILES_PER_JOB


def job_id(i) -> str:
    # The same as the seed SQL's md5('job' || i)::uuid.
    import hashlib

    return str(uuid.UUID(hashlib.md5(f"job{i}".encode()).hexdigest()))


def file_name(i, k):
    # Under the upload prefix, one directory per job, as jobs.models.job_file_upload_to makes.
    return f"jobs/{job_id(i)}/{'original' if k == 0 else 'ai_generated'}-{k}.png"


SEED_SQL = [
    # Only the seeded tables are reset. The outbox and the run records keep their history.
    "TRUNCATE jobs_job, jobs_payment, jobs_jobfile, jobs_smslog, jobs_phoneverificationattempt, "
    "jobs_paymentfailure, jobs_report, jobs_reportknowledge",
    "DELETE FROM cleanup_pendingfiledeletion",
    # As autovacuum does after a purge (this machine's PostgreSQL runs with it off): unvacuumed,
    # the outbox only grew, and the project's end-of-run count read 167 MB of dead rows.
    "VACUUM cleanup_pendingfiledeletion",
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
              'jobs/' || md5('job' || i)::uuid || '/'
              || CASE WHEN k = 0 THEN 'original' ELSE 'ai_generated' END || '-' || k || '.png',
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
    # As autovacuum would: every table analyzed, the outbox while empty (but not truncated).
    "ANALYZE",
]


class Seeder:
    """Fills the database, and the storage of one scenario, with N expired jobs."""

    def __init__(self, scenario: str, media_root: Path, s3=None):
        self.scenario = scenario
        self.media_root = media_root
        self.s3 = s3  # (client, bucket) for the s3 scenario

    def seed(self, n):
        from django.db import connection

        base = CUTOFF - timedelta(days=2)
        with connection.cursor() as cursor:
            for sql in SEED_SQL:
                cursor.execute(sql, {"base": base, "n": n} if "%(" in sql else None)
            # Seeded in SQL, so no file was saved through the ORM to bind the storage: bind the
            # one the children purge from (the purge refuses storage it cannot verify).
            if self.scenario in S3_SCENARIOS:
                kind, bucket, location = "s3", self.s3[1], ""
            else:
                kind, bucket, location = "local", "", os.path.realpath(self.media_root)
            cursor.execute("DELETE FROM cleanup_storagebinding")
            cursor.execute(
                "INSERT INTO cleanup_storagebinding (id, kind, bucket, location, bound_at, "
                "bound_by, previous) VALUES (1, %s, %s, %s, now(), 'bench', '')",
                [kind, bucket, location],
            )
        names = [file_name(i, k) for i in range(n) for k in range(files_per_job())]
        if self.scenario == "files":
            for i in range(n):
                (self.media_root / file_name(i, 0)).parent.mkdir(parents=True, exist_ok=True)
            for name in names:
                (self.media_root / name).write_bytes(FILE_BYTES)
        elif self.scenario in S3_SCENARIOS:
            from tests.s3server import put_objects

            client, bucket = self.s3
            put_objects(client, bucket, names, body=FILE_BYTES, threads=16)
        # Write back the seed (files and WAL) now, not while a way is being timed: measured,
        # the kernel flushing 400,000 new files during a run made every way 2-3x slower.
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
        os.sync()

    def leftovers(self) -> dict:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT count(*) FROM jobs_job) + (SELECT count(*) FROM jobs_jobfile) "
                "+ (SELECT count(*) FROM jobs_reportknowledge), "
                "(SELECT count(*) FROM cleanup_pendingfiledeletion)"
            )
            rows, pending = cursor.fetchone()
        if self.scenario in S3_SCENARIOS:
            client, bucket = self.s3
            files = sum(
                page.get("KeyCount", 0)
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            )
            dirs = 0
        else:
            walked = list(os.walk(self.media_root))
            files = sum(len(names) for _, _, names in walked)
            kept = {str(self.media_root), str(self.media_root / "jobs")}
            dirs = sum(
                1 for path, sub, names in walked if not sub and not names and path not in kept
            )
        return {"rows_left": rows, "pending_left": pending, "files_left": files, "dirs": dirs}


# --- the four ways (each in a child process) --------------------------------------------------


class StatementTimer:
    """Counts the queries a way sends and the time each kind of statement takes."""

    # "DELETE FROM table", "SELECT ... FROM table", "INSERT INTO table", "UPDATE table": enough
    # to tell them apart. A UNION's first part in parentheses counts as the statement it starts.
    SHAPE = re.compile(r"^[\s(]*(?:(UPDATE)|(\w+)\b.*?\b(?:FROM|INTO))\s+\"?(\w+)", re.S | re.I)

    def __init__(self):
        self.count = 0
        self.seconds = defaultdict(float)
        self.calls = defaultdict(int)

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            match = self.SHAPE.match(sql)
            if match:
                shape = f"{(match[1] or match[2]).upper()} {match[3]}"
            else:
                shape = sql.split()[0].upper()
            self.seconds[shape] += time.perf_counter() - started
            self.calls[shape] += 1

    def breakdown(self) -> list[dict]:
        return [
            {"statement": shape, "calls": self.calls[shape], "seconds": round(seconds, 4)}
            for shape, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1])
        ]


def run_project(batch_size, timer):
    import logging

    from cleanup.models import PendingFileDeletionQuerySet
    from cleanup.services import purge_expired_jobs

    # The outbox is written with COPY, on the driver's own cursor, which Django's execute
    # wrappers do not see: time it here, so the breakdown shows it with the statements.
    record = PendingFileDeletionQuerySet.record

    def timed_record(self, names, **kwargs):
        started = time.perf_counter()
        try:
            return record(self, names, **kwargs)
        finally:
            timer.seconds["COPY cleanup_pendingfiledeletion"] += time.perf_counter() - started
            timer.calls["COPY cleanup_pendingfiledeletion"] += 1

    PendingFileDeletionQuerySet.record = timed_record

    marks = []

    class BatchMarks(logging.Handler):
        def emit(self, record):
            if record.getMessage() == "purge.batch":
                marks.append(timer.count)

    logger = logging.getLogger("cleanup")
    logger.addHandler(BatchMarks())
    logger.setLevel(logging.INFO)
    logger.propagate = False  # one line per batch on stderr is not what we time
    result = purge_expired_jobs(now=CUTOFF, batch_size=batch_size)
    assert result.ok, result.error
    # Queries between two batch log lines: exactly one full batch (pick ids .. files deleted).
    per_batch = [b - a for a, b in itertools.pairwise(marks)]
    return result.jobs_deleted, result.rows_total, result.batches, per_batch


def run_floor(batch_size, timer):
    from django.db import transaction

    from cleanup import storage
    from cleanup.deletion import binding_cursor, through_indexes
    from cleanup.services.files import open_storage

    jobs = rows = batches = 0
    per_batch = []
    while True:
        before = timer.count
        # The ids bound on the server, one binary array each, and the statements through the
        # indexes, as the project runs them: the two differ in the order of their work, not in
        # how the driver quotes 1,000 ids or how PostgreSQL finds their rows.
        with transaction.atomic(), through_indexes(), binding_cursor() as cursor:
            cursor.execute(
                "SELECT id FROM jobs_job WHERE expires_at < %s ORDER BY expires_at LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                [CUTOFF, batch_size],
            )
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            cursor.execute("SELECT file FROM jobs_jobfile WHERE job_id = ANY(%b)", [ids])
            names = [row[0] for row in cursor.fetchall() if row[0]]
            cursor.execute(
                "DELETE FROM jobs_reportknowledge WHERE report_id = "
                "ANY(ARRAY(SELECT id FROM jobs_report WHERE job_id = ANY(%b)))",
                [ids],
            )
            rows += cursor.rowcount
            for table in [*CHILD_TABLES, "jobs_report"]:
                cursor.execute(f"DELETE FROM {table} WHERE job_id = ANY(%b)", [ids])
                rows += cursor.rowcount
            cursor.execute("DELETE FROM jobs_job WHERE id = ANY(%b)", [ids])
            rows += cursor.rowcount
            jobs += cursor.rowcount
        outcome = storage.delete_names(names, session=open_storage())
        assert not outcome.failed, outcome.failed
        batches += 1
        per_batch.append(timer.count - before)
        if len(ids) < batch_size:
            break
    return jobs, rows, batches, per_batch


def run_original(batch_size, timer):
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


def run_stock(batch_size, timer):
    from django.db import transaction
    from django.db.models.signals import post_delete

    from cleanup import storage
    from cleanup.file_models import file_models, names_of, upload_rule
    from cleanup.models import PendingFileDeletion
    from cleanup.services import delete_pending_files
    from jobs.models import Job

    # A receiver collects the names of the file rows the Collector deletes (cleanup's own would
    # delete each file after its own commit); the outbox and the file step are the project's.
    names = []
    for model in file_models():
        post_delete.disconnect(
            sender=model, dispatch_uid=f"cleanup.record_deleted_files.{model._meta.label}"
        )
        post_delete.connect(
            lambda instance, **kw: names.extend(names_of(instance)), sender=model, weak=False
        )
    session = storage.open_session(upload_rule())
    jobs = rows = batches = 0
    per_batch = []
    while True:
        before = timer.count
        names.clear()
        with transaction.atomic():
            expired = Job.objects.expired(CUTOFF).order_by("expires_at")
            expired = expired.select_for_update(skip_locked=True).values_list("pk", flat=True)
            ids = list(expired[:batch_size])
            if not ids:
                break
            deleted, per_model = Job.objects.filter(pk__in=ids).delete()
            recorded_as = PendingFileDeletion.objects.record(names)
        rows += deleted
        jobs += per_model[Job._meta.label]
        outcome = delete_pending_files(
            names=names, recorded_as=recorded_as, session=session, storage_verified=True
        )
        assert not outcome.failed, outcome.errors
        batches += 1
        per_batch.append(timer.count - before)
        if len(ids) < batch_size:
            break
    return jobs, rows, batches, per_batch


WAYS = {"project": run_project, "floor": run_floor, "stock": run_stock, "original": run_original}


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

    timer = StatementTimer()
    rss_before = peak_rss_mb()
    with connection.execute_wrapper(timer):
        started = time.perf_counter()
        cpu_started = time.process_time()
        jobs, rows, batches, per_batch = WAYS[way](batch_size, timer)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    print(
        json.dumps(
            {
                "jobs": jobs,
                "rows": rows,
                "batches": batches,
                "seconds": seconds,
                "python_cpu_seconds": cpu,
                "queries": timer.count,
                "queries_per_batch": per_batch,
                "statements": timer.breakdown(),
                "peak_rss_mb": peak_rss_mb(),
                "rss_after_setup_mb": rss_before,
            }
        )
    )


# --- orchestration (parent) --------------------------------------------------------------------


class Bench:
    def __init__(self, args, media_root: Path, s3=None):
        self.args = args
        self.media_root = media_root
        self.s3 = s3
        self.results = []

    def env(self, scenario) -> dict:
        env = {**os.environ, "MEDIA_ROOT": str(self.media_root), "CLEANUP_LOG_LEVEL": "INFO"}
        if scenario in S3_SCENARIOS:
            client, bucket = self.s3
            env.update(
                AWS_STORAGE_BUCKET_NAME=bucket,
                AWS_S3_ENDPOINT_URL=self.far_url if scenario == "far" else client.meta.endpoint_url,
                **S3_CREDENTIALS,
            )
        else:
            env.pop("AWS_STORAGE_BUCKET_NAME", None)
        return env

    def measure(self, scenario, way, n, batch_size, round_no):
        seeder = Seeder(scenario, self.media_root, self.s3)
        seeder.seed(n)
        done = subprocess.run(
            [sys.executable, __file__, "--child", way, "--batch-size", str(batch_size or 0)],
            env=self.env(scenario),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            sys.exit(f"{scenario}/{way} failed:\n{done.stderr[-3000:]}")
        data = json.loads(done.stdout.strip().splitlines()[-1])
        left = seeder.leftovers()
        if scenario == "db" or way == "original":
            expected_files = n * files_per_job() if scenario != "db" else 0
        else:
            expected_files = 0
        if (
            data["jobs"] != n
            or left["rows_left"]
            or left["pending_left"]
            or left["files_left"] != expected_files
        ):
            sys.exit(f"{scenario}/{way} did not do the whole job: {data['jobs']} jobs, {left}")
        per_batch = data.pop("queries_per_batch")
        result = {
            "scenario": scenario,
            "way": way,
            "round": round_no,
            "jobs_seeded": n,
            "batch_size": batch_size,
            **data,
            "jobs_per_s": data["jobs"] / data["seconds"],
            "rows_per_s": data["rows"] / data["seconds"],
            "queries_per_batch": (
                {"min": min(per_batch), "max": max(per_batch)} if per_batch else None
            ),
            "queries_per_job": data["queries"] / data["jobs"],
            "empty_dirs_left": left["dirs"],
            "loadavg_after": os.getloadavg()[0],
        }
        self.results.append(result)
        print(row_text(result), flush=True)
        self.clean_media()
        return result

    def clean_media(self):
        for path in self.media_root.iterdir():
            subprocess.run(["rm", "-rf", str(path)], check=False)

    def median(self, scenario, way, n, batch_size=None) -> dict | None:
        runs = [
            r
            for r in self.results
            if (r["scenario"], r["way"], r["jobs_seeded"]) == (scenario, way, n)
            and (batch_size is None or r["batch_size"] == batch_size)
        ]
        if not runs:
            return None
        runs.sort(key=lambda r: r["jobs_per_s"])
        return runs[(len(runs) - 1) // 2]


def row_text(r):
    qpb = r["queries_per_batch"]
    if qpb:
        qpb_text = f"{qpb['min']}" if qpb["min"] == qpb["max"] else f"{qpb['min']}-{qpb['max']}"
    elif r["batches"] == 1 and r["way"] != "original":
        # One batch: no two batch marks to count between, so the whole run's queries.
        qpb_text = f"{r['queries']}/run"
    else:
        qpb_text = f"{r['queries_per_job']:.1f}/job"
    return (
        f"{r['scenario']:<6}{r['way']:<9}{r['round']:>3}{r['jobs']:>8}"
        f"{r['batch_size'] or '-':>7}{r['seconds']:>9.2f}{r['jobs_per_s']:>9.0f}"
        f"{r['rows_per_s']:>10.0f}{r['peak_rss_mb']:>9.1f}{qpb_text:>10}"
    )


HEADER = (
    f"{'where':<6}{'way':<9}{'rnd':>3}{'jobs':>8}{'batch':>7}{'seconds':>9}{'jobs/s':>9}"
    f"{'rows/s':>10}{'peak MB':>9}{'q/batch':>10}"
)


def sizes(text) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("sizes must be positive")
    return values


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--jobs", type=sizes, default=[5_000, 100_000], help="backlogs (files)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per backlog")
    parser.add_argument(
        "--original-rounds",
        type=int,
        default=1,
        help="rounds of the original loop above 10,000 jobs (it runs ~270 jobs/s: 6 minutes "
        "per round at 100,000); below that it runs every round",
    )
    parser.add_argument("--db-jobs", type=sizes, default=[5_000], help="backlogs (db only)")
    parser.add_argument("--s3-jobs", type=sizes, default=[5_000], help="backlogs (S3; '' skips)")
    parser.add_argument(
        "--far-jobs", type=sizes, default=[5_000], help="backlogs (far S3; '' skips; needs S3)"
    )
    parser.add_argument(
        "--s3-project-only",
        action="store_true",
        help="on S3 (s3, far) only the project, no floor: each way seeds its own objects, and "
        "moto takes ~15 minutes per 400,000",
    )
    parser.add_argument(
        "--small-jobs",
        type=int,
        default=10_000,
        help="backlog the project also purges once, to compare peak RSS with the largest",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="batch size (default CLEANUP_BATCH_SIZE)"
    )
    parser.add_argument(
        "--sweep", default="", help="batch sizes to also measure the project at, e.g. 1000,2000"
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
    if args.rounds < 1 or args.original_rounds < 0 or args.small_jobs < 1:
        parser.error("--rounds and --small-jobs must be positive, --original-rounds 0 or more")

    import django

    media_root = Path(tempfile.mkdtemp(prefix="fmr-bench-", dir=args.media_parent))
    os.environ["MEDIA_ROOT"] = str(media_root)
    os.environ.pop("AWS_STORAGE_BUCKET_NAME", None)
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

    server = s3 = far = None
    if args.far_jobs and not args.s3_jobs:
        parser.error("--far-jobs is reported against the same purge on loopback: give --s3-jobs")
    if args.s3_jobs:
        import boto3

        from tests.s3server import S3Server

        server = S3Server().start()
        from botocore.config import Config

        client = boto3.client(
            "s3",
            config=Config(max_pool_connections=32),  # the seed uploads from 16 threads
            endpoint_url=server.endpoint_url,
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_CREDENTIALS["AWS_S3_REGION_NAME"],
        )
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        s3 = (client, bucket)
    if args.far_jobs:
        far = far_proxy(server.endpoint_url)

    bench = Bench(args, media_root, s3)
    bench.far_url = far and far.url
    started = datetime.now(timezone.utc)
    print(
        f"{platform.node()}: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
        f"PostgreSQL {connection.pg_version}; media in {media_root}; "
        f"{args.rounds} rounds, batch size {batch_size}",
        flush=True,
    )
    print(HEADER, flush=True)
    try:
        plan = [("files", n) for n in args.jobs]
        plan += [("db", n) for n in args.db_jobs] + [("s3", n) for n in args.s3_jobs]
        plan += [("far", n) for n in args.far_jobs]
        for round_no in range(1, args.rounds + 1):
            for scenario, n in plan:
                ways = ["project", "floor"] + ["stock"] * (scenario not in S3_SCENARIOS)
                if scenario in S3_SCENARIOS and args.s3_project_only:
                    ways = ["project"]
                if scenario == "files" and (n <= 10_000 or round_no <= args.original_rounds):
                    ways.append("original")
                # Rotate the order each round, so no way always runs first or last.
                shift = (round_no - 1) % len(ways)
                for way in ways[shift:] + ways[:shift]:
                    bench.measure(
                        scenario, way, n, None if way == "original" else batch_size, round_no
                    )
        # Memory: the project once at a small backlog, to compare with the largest one's peak.
        bench.measure("files", "project", args.small_jobs, batch_size, 1)
        for size in sizes(args.sweep):
            bench.measure("files", "project", args.sweep_jobs, size, 1)
    finally:
        if far:
            far.terminate()
            far.wait(10)
        if server:
            server.stop()
    summary = summarize(bench, args, batch_size)
    print_summary(summary)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "command": " ".join(["python", "bench/purge_bench.py", *sys.argv[1:]]),
                    "started": started.isoformat(),
                    "cpus": os.cpu_count(),
                    "loadavg_at_end": os.getloadavg(),
                    "media": str(media_root),
                    "postgresql": connection.pg_version,
                    "results": bench.results,
                    "summary": summary,
                },
                indent=2,
            )
            + "\n"
        )
    connection.close()
    subprocess.run(["rm", "-rf", str(media_root)], check=False)
    return 0


def far_proxy(target_url):
    """moto behind the shared latency proxy: 40 ms round trip, 5 ms per KiB sent."""
    from tests.s3server import free_port

    port = free_port()
    target = target_url.removeprefix("http://")
    proxy = subprocess.Popen(
        [sys.executable, str(LATENCY_PROXY), "--listen", f"127.0.0.1:{port}", "--target", target]
        + ["--rtt-ms", "40", "--per-kib-ms", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    proxy.stdout.readline()  # printed once it listens
    proxy.url = f"http://127.0.0.1:{port}"
    return proxy


def summarize(bench, args, batch_size) -> dict:
    summary = {"median_of_rounds": args.rounds, "ratios": []}
    plan = [("files", args.jobs), ("db", args.db_jobs), ("s3", args.s3_jobs)]
    for scenario, sizes_ in [*plan, ("far", args.far_jobs)]:
        for n in sizes_:
            project = bench.median(scenario, "project", n, batch_size)
            floor = bench.median(scenario, "floor", n, batch_size)
            original = bench.median(scenario, "original", n)
            entry = {
                "scenario": scenario,
                "jobs": n,
                "project_jobs_per_s": round(project["jobs_per_s"]),
                "queries_per_batch": project["queries_per_batch"],
                "project_statements": project["statements"],
                "project_python_cpu_s": round(project["python_cpu_seconds"], 2),
                "project_seconds": round(project["seconds"], 2),
            }
            if floor:  # none with --s3-project-only
                entry |= {
                    "floor_jobs_per_s": round(floor["jobs_per_s"]),
                    "project_vs_floor": round(project["jobs_per_s"] / floor["jobs_per_s"], 3),
                    "floor_statements": floor["statements"],
                    "floor_python_cpu_s": round(floor["python_cpu_seconds"], 2),
                    "floor_seconds": round(floor["seconds"], 2),
                }
            stock = bench.median(scenario, "stock", n, batch_size)
            if stock:
                entry["stock_jobs_per_s"] = round(stock["jobs_per_s"])
                entry["project_vs_stock"] = round(project["jobs_per_s"] / stock["jobs_per_s"], 1)
            near = bench.median("s3", "project", n, batch_size) if scenario == "far" else None
            if near:
                entry["loopback_jobs_per_s"] = round(near["jobs_per_s"])
                entry["far_vs_loopback"] = round(project["jobs_per_s"] / near["jobs_per_s"], 2)
            if original:
                entry["original_jobs_per_s"] = round(original["jobs_per_s"])
                entry["project_vs_original"] = round(
                    project["jobs_per_s"] / original["jobs_per_s"], 1
                )
            summary["ratios"].append(entry)
    largest = max(args.jobs, default=None)
    big = largest and bench.median("files", "project", largest, batch_size)
    small = [
        r
        for r in bench.results
        if (r["scenario"], r["way"], r["jobs_seeded"]) == ("files", "project", args.small_jobs)
    ]
    if big and small:
        summary["peak_rss_mb"] = {
            "small_jobs": args.small_jobs,
            "small": round(small[-1]["peak_rss_mb"], 1),
            "largest_jobs": largest,
            "largest": round(big["peak_rss_mb"], 1),
            "growth": round(big["peak_rss_mb"] - small[-1]["peak_rss_mb"], 1),
        }
    return summary


def print_summary(summary):
    print(f"\nmedian of {summary['median_of_rounds']} interleaved rounds:")
    for e in summary["ratios"]:
        line = (
            f"  {e['scenario']:<5} {e['jobs']:>7} jobs: project {e['project_jobs_per_s']:>6} jobs/s"
        )
        if "project_vs_floor" in e:
            line += f", floor {e['floor_jobs_per_s']:>6} -> {e['project_vs_floor']:.2f}x floor"
        if "project_vs_stock" in e:
            line += f", stock {e['stock_jobs_per_s']} -> {e['project_vs_stock']:.1f}x stock"
        if "far_vs_loopback" in e:
            line += f", loopback {e['loopback_jobs_per_s']} -> {e['far_vs_loopback']:.2f}x loopback"
        if "project_vs_original" in e:
            line += (
                f", original {e['original_jobs_per_s']} -> {e['project_vs_original']:.1f}x original"
            )
        print(line)
    if "peak_rss_mb" in summary:
        m = summary["peak_rss_mb"]
        print(
            f"  peak RSS {m['small_jobs']:,} -> {m['largest_jobs']:,} jobs: {m['small']} -> "
            f"{m['largest']} MB ({m['growth']:+.1f} MB)"
        )
    for e in summary["ratios"]:
        if e["scenario"] != "files":
            continue
        print(f"\nwhere the time goes, files, {e['jobs']} jobs (median round):")
        for way in ("project", "floor"):
            statements = e[f"{way}_statements"]
            db = sum(s["seconds"] for s in statements)
            print(
                f"  {way}: {e[f'{way}_seconds']:.2f}s wall, {db:.2f}s in SQL, "
                f"{e[f'{way}_python_cpu_s']:.2f}s Python CPU"
            )
            for s in statements[:6]:
                print(f"    {s['seconds']:7.3f}s {s['calls']:>6}x  {s['statement']}")


if __name__ == "__main__":
    sys.exit(main())
