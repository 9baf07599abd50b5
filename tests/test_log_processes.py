"""Logs as production writes them: every line once, in a real `celery -A fmr worker` (prefork, as
deployed), a real `celery -A fmr beat` and `manage.py purge_expired_jobs`; with
CLEANUP_LOG_FORMAT=json, every log line of those processes is one JSON object with the same
fields as the plain line.
"""

import json
import re
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from cleanup.models import PurgeRun
from fmr.celery import app
from tests.admin_helpers import ensure_purge_schedule
from tests.helpers import expired_job
from tests.processes import ROOT, child_env, run_manage, stop, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

# The start of a line written by the project's plain formatter (cleanup.logs.KeyValueFormatter).
PLAIN_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d [A-Z]+ \S+ ")
JSON_KEYS = {"time", "level", "logger", "event"}


def start(tmp_path, name, *args, env):
    out, err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "fmr", *args],
        cwd=ROOT,
        env=env,
        stdout=out.open("wb"),
        stderr=err.open("wb"),
        start_new_session=True,
    )
    return process, out, err


def every_two_seconds():
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    task.interval, _ = IntervalSchedule.objects.get_or_create(
        every=2, period=IntervalSchedule.SECONDS
    )
    task.crontab = None
    task.save()


def beat_runs():
    return PurgeRun.objects.filter(trigger=PurgeRun.Trigger.BEAT)


def run_worker_and_beat(tmp_path, env):
    """Beat sends the purge every 2 s to a worker until 2 runs are done; both stop cleanly."""
    ensure_purge_schedule()
    every_two_seconds()
    app.control.purge()
    worker, worker_out, worker_err = start(
        tmp_path, "worker", "worker", "--loglevel=INFO", "--concurrency=1", env=env
    )
    beat, beat_out, beat_err = start(
        tmp_path, "beat", "beat", "--loglevel=INFO", f"--schedule={tmp_path / 'sched'}", env=env
    )
    try:
        wait_until(lambda: beat_runs().count() >= 2, 90, message="two purges sent by beat")
        stop(beat)
        sent = beat_err.read_text().count("Sending due task delete-expired-jobs")
        # Every purge beat sent is run before the worker stops, so the counts can be compared.
        wait_until(
            lambda: beat_runs().exclude(finished_at=None).count() == sent,
            60,
            message=f"the worker to finish the {sent} purge(s) beat sent",
        )
    finally:
        stop(beat)
        stop(worker)
    assert worker.returncode == 0 and beat.returncode == 0
    return {
        "worker": (worker_out.read_text(), worker_err.read_text()),
        "beat": (beat_out.read_text(), beat_err.read_text()),
        "sent": sent,
    }


def command(env):
    expired_job(now=timezone.now(), by=timedelta(minutes=1))
    done = run_manage("purge_expired_jobs", env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


def plain_fields(line: str) -> dict[str, str]:
    return dict(re.findall(r" ([a-z_]+)=(\S+)", line.partition(" purge.run")[2]))


def test_each_line_is_written_once_by_the_worker_beat_and_the_command(tmp_path):
    for _ in range(2):
        expired_job()

    logs = run_worker_and_beat(tmp_path, child_env(CLEANUP_LOG_FORMAT="plain"))
    out, err = command(child_env(CLEANUP_LOG_FORMAT="plain"))

    runs = set(beat_runs().values_list("pk", flat=True))
    worker_out, worker_err = logs["worker"]
    worker_log = worker_out + worker_err
    run_lines = [line for line in worker_log.splitlines() if "purge.run" in line]
    assert len(run_lines) == len(runs) == logs["sent"], run_lines
    assert {int(plain_fields(line)["run"]) for line in run_lines} == runs
    assert worker_log.count("Task delete_expired_jobs[") == 2 * len(runs)  # received, succeeded
    beat_log = "".join(logs["beat"])
    assert beat_log.count("Sending due task delete-expired-jobs") == logs["sent"]
    assert beat_log.count("beat: Starting...") == 1
    command_lines = [line for line in (out + err).splitlines() if "purge.run" in line]
    assert len(command_lines) == 1, out + err
    for text in (worker_log, beat_log, out + err):
        written = Counter(line for line in text.splitlines() if PLAIN_LINE.match(line))
        assert written and max(written.values()) == 1, written.most_common(3)


def json_lines(text: str) -> list[dict]:
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"not a JSON object: {line!r}") from None
        assert isinstance(entry, dict) and JSON_KEYS <= set(entry), line
        entries.append(entry)
    return entries


def test_json_logs_are_one_object_per_line_with_the_plain_lines_fields(tmp_path):
    for _ in range(2):
        expired_job()

    logs = run_worker_and_beat(tmp_path, child_env(CLEANUP_LOG_FORMAT="json"))
    out, err = command(child_env(CLEANUP_LOG_FORMAT="json"))
    _, plain_err = command(child_env(CLEANUP_LOG_FORMAT="plain"))

    # Log lines go to stderr; stdout holds Celery's start-up banner and the command's summary.
    worker = json_lines(logs["worker"][1])
    beat = json_lines(logs["beat"][1])
    from_command = json_lines(err)
    assert "purge.run" not in logs["worker"][0] + logs["beat"][0] + out
    runs = [e for e in worker if e["event"] == "purge.run"]
    assert len(runs) == beat_runs().count() == logs["sent"]
    assert {e["run"] for e in runs} == set(beat_runs().values_list("pk", flat=True))
    assert sum("Sending due task delete-expired-jobs" in e["event"] for e in beat) == logs["sent"]
    (command_run,) = [e for e in from_command if e["event"] == "purge.run"]
    (plain_line,) = [line for line in plain_err.splitlines() if "purge.run" in line]
    for entry in [*runs, command_run]:
        assert set(entry) - JSON_KEYS == set(plain_fields(plain_line)), entry
        assert all(isinstance(value, int | float | bool | str) for value in entry.values())
    for entries in (worker, beat, from_command):
        written = Counter(json.dumps(e, sort_keys=True) for e in entries)
        assert max(written.values()) == 1, written.most_common(3)
