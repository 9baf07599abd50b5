"""The purge's logs: one structured line per batch and per run, counts only."""

import json
import logging
import re

import pytest

from cleanup.logs import JsonFormatter, KeyValueFormatter, fields_of
from cleanup.services import purge_expired_jobs
from tests.helpers import expired_job, file_names

pytestmark = pytest.mark.django_db

LINE = re.compile(r" purge\.(batch|run)( [a-z_]+=[\w.]+)+$")


def cleanup_records(caplog):
    return [r for r in caplog.records if r.name.startswith("cleanup.")]


def test_one_key_value_line_per_batch_and_one_per_run_without_personal_data(caplog):
    jobs = [expired_job() for _ in range(3)]
    personal = [sms.phone_number for job in jobs for sms in job.sms_logs.all()]
    personal += [name for job in jobs for name in file_names(job)]
    personal += [str(job.pk) for job in jobs]
    caplog.set_level("INFO", logger="cleanup")

    result = purge_expired_jobs(batch_size=2)

    records = cleanup_records(caplog)
    assert [r.getMessage() for r in records] == ["purge.batch", "purge.batch", "purge.run"]
    # Each module logs under its own name, below the app's logger.
    assert {r.name for r in records} == {"cleanup.services.purge"}
    for record in records:
        line = KeyValueFormatter().format(record)
        assert LINE.search(line), line
        assert not any(value in line for value in personal), line
    batches = [fields_of(r) for r in records[:2]]
    run = fields_of(records[2])
    assert {b["run"] for b in batches} == {run["run"]} == {result.run_id}
    assert [b["jobs"] for b in batches] == [2, 1]
    assert sum(b["rows"] for b in batches) == run["rows"] == 57
    assert run["status"] == "succeeded" and run["files_deleted"] == 12
    assert all("duration_ms" in f for f in [*batches, run])


def test_the_json_format_is_one_object_per_line_with_the_same_fields(caplog):
    expired_job()
    caplog.set_level("INFO", logger="cleanup")

    purge_expired_jobs()

    for record in cleanup_records(caplog):
        line = JsonFormatter().format(record)
        assert "\n" not in line
        entry = json.loads(line)
        assert entry["event"] == record.getMessage() and entry["logger"] == record.name
        assert {k: entry[k] for k in fields_of(record)} == fields_of(record)


def test_other_libraries_extras_are_not_repeated_as_fields():
    record = logging.makeLogRecord(
        {"msg": "Task succeeded", "data": {"id": "x", "return_value": "{...}"}, "runtime": 0.5}
    )
    assert KeyValueFormatter().format(record).endswith("Task succeeded runtime=0.5")


def test_every_line_starts_with_iso_8601_time_in_seoul_with_its_offset():
    record = logging.makeLogRecord({"msg": "purge.run", "created": 1796540400.25})
    plain = KeyValueFormatter().format(record)
    assert plain.startswith("2026-12-06T16:00:00.250+09:00 "), plain
    assert json.loads(JsonFormatter().format(record))["time"] == "2026-12-06T16:00:00.250+09:00"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_master_workers_and_access_lines_share_the_iso_time_and_zone(tmp_path):
    import subprocess
    import sys
    import urllib.request

    from tests.processes import ROOT, child_env, stop, wait_until
    from tests.s3server import free_port

    port, log = free_port(), tmp_path / "gunicorn.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py"]
            + ["fmr.wsgi", "--workers=2", f"--bind=127.0.0.1:{port}"],
            cwd=ROOT,
            env={**child_env(), "TZ": "UTC"},  # the machine's zone is not the operators'
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(lambda: "Booting worker" in log.read_text(), 30, message="gunicorn")
            url = f"http://127.0.0.1:{port}/admin/login/?q=secret-search"
            assert urllib.request.urlopen(url, timeout=10).status == 200
            wait_until(lambda: "/admin/login/" in log.read_text(), 10, message="access line")
        finally:
            stop(server)
    # Every line but a multi-line message's indented continuation (a Python warning's source).
    lines = [line for line in log.read_text().splitlines() if line[:1].strip()]
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00 ")
    assert [line for line in lines if not stamp.match(line)] == []
    assert any("Starting gunicorn" in line for line in lines)  # the master's
    assert any("Booting worker" in line for line in lines)
    [access] = [line for line in lines if "/admin/login/" in line]
    assert '"GET /admin/login/" 200' in access and "secret-search" not in access
