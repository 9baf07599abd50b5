"""Real Celery workers and beats, run as subprocesses against the test database."""

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

from cleanup.models import PurgeRun
from cleanup.services import purge_status
from cleanup.tasks import delete_expired_jobs
from jobs.models import Job
from tests.helpers import bulk_expired_jobs, live_job

ROOT = Path(__file__).resolve().parent.parent


def child_database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def child_env(**extra) -> dict:
    """The environment a worker or beat needs to see what the test sees."""
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    env["CELERY_BROKER_URL"] = settings.CELERY_BROKER_URL
    env.update({k: str(v) for k, v in extra.items()})
    return env


@contextmanager
def celery(*args, env=None, log_path=None):
    """`celery -A fmr <args>` in its own process group, stopped (TERM, then KILL) on exit."""
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "fmr", *args],
        cwd=ROOT,
        env=env or child_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        stop(process)
        if log_path:
            log.close()


def stop(process, timeout=20):
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout)


def wait_until(predicate, timeout, interval=0.25, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def manage(*args, env=None, stdout=subprocess.PIPE, stderr=subprocess.PIPE):
    """`python manage.py <args>` in its own process group; the caller waits or kills it."""
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env or child_env(),
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


def kill(process, application_name):
    """SIGKILL, as the OOM killer or a lost node would: no handler, no cleanup. The crash is
    over only once PostgreSQL has ended the sessions the process opened as `application_name`:
    a COMMIT it sent just before it died still lands after its death, and a check made before
    then sees a batch change under it."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(20)
    wait_until(
        lambda: not backend_pids(application_name),
        30,
        interval=0.05,
        message="the killed process's database sessions to end",
    )


def backend_pids(application_name) -> list[int]:
    """The PostgreSQL backends of the sessions opened under this application_name."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [application_name]
        )
        return [row[0] for row in cursor.fetchall()]


def database_url_with(**options) -> str:
    """The test database's URL with connection options, e.g. application_name, for a child."""
    from urllib.parse import urlencode

    return f"{child_database_url()}?{urlencode(options)}"


def fan_out_on_a_real_worker(tmp_path, **task_kwargs):
    """120 expired jobs and one live one, purged by `delete_expired_jobs(**task_kwargs)` on a
    real worker that fans out (batches of 5, up to 3 subtasks of a second each); returns the
    live job once the backlog is gone and every run, the fan-out's own included, has closed."""
    bulk_expired_jobs(120)
    kept = live_job()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = child_env(CLEANUP_BATCH_SIZE=5, CLEANUP_MAX_PARALLEL=3, CLEANUP_SUBTASK_SECONDS=1)
    with celery(
        "worker",
        "--concurrency=2",
        "-Q",
        queue,
        "--loglevel=INFO",
        env=env,
        log_path=tmp_path / "worker.log",
    ):
        delete_expired_jobs.apply_async(kwargs=task_kwargs, queue=queue)
        wait_until(lambda: Job.objects.count() == 1, 120, message="the fanned-out purge")
        # Every task it started has run, including ones still queued when the backlog was
        # already gone: no run is open, none waits for its successor.
        unfinished = [PurgeRun.Status.RUNNING, PurgeRun.Status.HANDED_OVER]
        wait_until(
            lambda: (
                PurgeRun.objects.count() >= 3  # the three tasks it fanned out to, at least
                and purge_status().last_run["status"] not in unfinished
            ),
            60,
            message="every run to close",
        )
    return kept


def run_manage(*args, env=None, timeout=120) -> subprocess.CompletedProcess:
    """`python manage.py <args>` to its end, output captured as text. `env` None: this
    process's environment, as subprocess does (child_env() for the test database)."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
