"""The purge command as a person uses it: progress on a terminal, quiet when asked, Ctrl-C."""

import os
import pty
import signal
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from cleanup.models import PurgeRun
from jobs.models import Job
from tests.helpers import FULL_JOB_ROWS, expired_job, rows_of
from tests.processes import ROOT, child_env

pytestmark = pytest.mark.django_db


def purge(*args, stderr=None):
    out, err = StringIO(), stderr or StringIO()
    call_command("purge_expired_jobs", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_no_progress_bar_when_output_is_not_a_terminal():
    for _ in range(3):
        expired_job(with_files=False)
    out, err = purge("--batch-size", "1")
    assert "ETA" not in err and "jobs/s" not in err
    assert "deleted 3 job(s) in 3 batch(es)" in out


def test_verbosity_zero_prints_nothing_on_success(caplog):
    expired_job(with_files=False)
    purge("-v", "1")
    assert "purge.batch" in caplog.text  # the log lines, when not asked to be quiet
    caplog.clear()
    expired_job(with_files=False)
    out, err = purge("-v", "0")
    assert (out, err, caplog.text) == ("", "", "")
    assert not Job.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_terminal_gets_a_progress_bar_with_eta_then_the_summary():
    for _ in range(4):
        expired_job(with_files=False)
    primary, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "manage.py", "purge_expired_jobs", "--batch-size", "1"],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=60,
        )
        os.close(secondary)
        terminal = read_all(primary)
    finally:
        os.close(primary)
    assert done.returncode == 0
    assert "4/4 jobs 100%" in terminal and "ETA" in terminal
    # On a terminal the bar replaces the per-batch log lines.
    assert "purge.batch" not in terminal
    assert "deleted 4 job(s) in 4 batch(es)" in done.stdout.decode()


def read_all(fd) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


BACKLOG = 150


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_ctrl_c_stops_after_the_current_batch_and_leaves_no_job_half_deleted():
    jobs = [expired_job().pk for _ in range(BACKLOG)]
    process = subprocess.Popen(
        [sys.executable, "manage.py", "purge_expired_jobs", "--batch-size", "1"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    for line in process.stderr:
        seen.append(line)
        if "purge.batch" in line:
            break
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    err = "".join(seen) + err

    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted after" in err
    run = PurgeRun.objects.get()
    assert run.status == PurgeRun.Status.INTERRUPTED and run.trigger == "command"
    remaining = set(Job.objects.values_list("pk", flat=True))
    # Stopped mid-run: some jobs gone, some left, and the run counted exactly the gone ones.
    assert 0 < len(remaining) < BACKLOG
    assert run.jobs_deleted == BACKLOG - len(remaining)
    assert err.count("purge.batch") == run.batches
    # Nothing half-done: every job left has all its rows, every job gone has none.
    for pk in jobs:
        if pk in remaining:
            assert rows_of(pk) == FULL_JOB_ROWS
        else:
            assert sum(rows_of(pk).values()) == 0
    assert f"run #{run.pk}: interrupted" in out
