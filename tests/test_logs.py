"""The purge's logs: one structured line per batch and per run, counts only."""

import re

import pytest

from cleanup.services import purge_expired_jobs
from tests.helpers import expired_job, file_names

pytestmark = pytest.mark.django_db

LINE = re.compile(r"^purge\.(batch|run)( [a-z_]+=[\w.]+)+$")


def fields(message) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in message.split()[1:])


def test_one_key_value_line_per_batch_and_one_per_run_without_personal_data(caplog):
    jobs = [expired_job() for _ in range(3)]
    personal = [sms.phone_number for job in jobs for sms in job.sms_logs.all()]
    personal += [name for job in jobs for name in file_names(job)]
    personal += [str(job.pk) for job in jobs]
    caplog.set_level("INFO", logger="cleanup")

    result = purge_expired_jobs(batch_size=2)

    messages = [r.getMessage() for r in caplog.records if r.name == "cleanup"]
    assert [m.split()[0] for m in messages] == ["purge.batch", "purge.batch", "purge.run"]
    for message in messages:
        assert LINE.match(message), message
        assert not any(value in message for value in personal), message
    batches = [fields(m) for m in messages[:2]]
    run = fields(messages[2])
    assert {b["run"] for b in batches} == {run["run"]} == {str(result.run_id)}
    assert [b["jobs"] for b in batches] == ["2", "1"]
    assert sum(int(b["rows"]) for b in batches) == int(run["rows"]) == 57
    assert run["status"] == "succeeded" and run["files_deleted"] == "12"
    assert all("duration_ms" in f for f in [*batches, run])
