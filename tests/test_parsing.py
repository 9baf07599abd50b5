"""Every number and flag parsed once, bounded, with a clear error (issue 9, scenario 5).

Settings, the commands and the status endpoint share one parser (fmr/parsing.py): ASCII digits
only, bounds everywhere, no abbreviations, no traceback for any value.
"""

import subprocess
import sys
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import ManagementUtility

from tests.processes import ROOT, run_manage

STATUS_URL = "/cleanup/status/"


def run_cli(capsys, *argv):
    """Exactly what `python manage.py ...` does, in this process: (exit code, stderr)."""
    utility = ManagementUtility(["manage.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        utility.execute()
    return exit_info.value.code, capsys.readouterr().err


BAD_COMMAND_LINES = [
    # (argv, what stderr must say)
    (["reconcile_storage", "--grace", "1e300"], "argument --grace"),
    (["reconcile_storage", "--delete", "--grace", "1e12"], "argument --grace"),
    (["reconcile_storage", "--grace", "٣"], "argument --grace"),
    (["reconcile_storage", "--grace", "inf"], "argument --grace"),
    (["reconcile_storage", "--d"], "unrecognized arguments: --d"),
    (["reconcile_storage", "--del"], "unrecognized arguments: --del"),
    (["purge_status", "--max-over", "5"], "unrecognized arguments: --max-over"),
    (["purge_status", "--max-overdue", "٣"], "argument --max-overdue"),
    (["purge_status", "--max-overdue", "1e300"], "argument --max-overdue"),
    (["purge_status", "--js"], "unrecognized arguments: --js"),
    (["purge_expired_jobs", "--batch-size", "٥"], "argument --batch-size"),
    (["purge_expired_jobs", "--limit", "１０"], "argument --limit"),
    (["purge_status", "--verbosity", "٣"], "argument -v/--verbosity"),
    (["purge_status", "--verb", "2"], "unrecognized arguments: --verb"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "argv,message", BAD_COMMAND_LINES, ids=[" ".join(argv) for argv, _ in BAD_COMMAND_LINES]
)
def test_a_bad_flag_or_value_is_refused_by_every_command(capsys, argv, message):
    orphan = default_storage.save("jobs/x/original-1.png", ContentFile(b"png"))
    code, err = run_cli(capsys, *argv)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert default_storage.exists(orphan)


@pytest.mark.parametrize(
    "argv",
    [
        ["reconcile_storage", "--grace", "1e300"],
        ["reconcile_storage", "--delete", "--grace", "1e12"],
    ],
)
def test_absurd_graces_exit_cleanly_as_a_process(argv):
    done = run_manage(*argv, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "--grace" in done.stderr


def test_the_parser_takes_ascii_digits_within_bounds_only():
    from fmr import parsing

    assert parsing.parse_int(" 42 ", minimum=1, maximum=100) == 42
    for bad in ["٥", "１０", "1_0", "+5", "0x10", "1e3", "4.0", "", " ", "99999999999999999999"]:
        with pytest.raises(ValueError):
            parsing.parse_int(bad, minimum=1, maximum=parsing.MAX_SIZE)
    assert parsing.parse_minutes("1.5") == timedelta(minutes=1.5)
    assert parsing.parse_minutes(0) == timedelta(0)
    for bad in ["1e300", "1e12", "inf", "nan", "-1", "٣", float("inf"), True, None]:
        with pytest.raises(ValueError):
            parsing.parse_minutes(bad)
    assert parsing.parse_share("0.5") == 0.5
    for bad in ["1.01", "-0.1", "٠.5"]:
        with pytest.raises(ValueError):
            parsing.parse_share(bad)
    assert parsing.MAX_SIZE == 2_147_483_647


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["٣", "1e300", "1e12", "inf", "-1", "abc"])
def test_the_status_endpoint_refuses_a_bad_max_overdue(client, settings, value):
    settings.CLEANUP_STATUS_TOKEN = "t0ken"
    response = client.get(
        STATUS_URL, {"max_overdue": value}, headers={"Authorization": "Bearer t0ken"}
    )
    assert response.status_code == 400 and "minutes" in response.json()["error"]


@pytest.mark.django_db
def test_a_status_token_read_from_a_secret_file_with_a_trailing_newline_matches(client, settings):
    settings.CLEANUP_STATUS_TOKEN = "t0ken-from-a-file\n"
    response = client.get(STATUS_URL, headers={"Authorization": "Bearer t0ken-from-a-file"})
    assert response.status_code == 200
    assert client.get(STATUS_URL, headers={"Authorization": "Bearer t0ken"}).status_code == 401


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_token_with_a_newline_in_the_environment_matches_in_a_real_process():
    from tests.processes import child_env

    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(repr(settings.CLEANUP_STATUS_TOKEN))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **child_env(),
            "CLEANUP_STATUS_TOKEN": "s3cret-0123456789abcdef0123456789\n",
            "DJANGO_SETTINGS_MODULE": "fmr.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "'s3cret-0123456789abcdef0123456789'", done.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("grace", [1e300, "1e12", "٣", -1])
def test_the_reconcile_task_refuses_an_absurd_grace_and_deletes_nothing(grace):
    from cleanup.tasks import reconcile_storage_task

    orphan = default_storage.save("jobs/x/original-1.png", ContentFile(b"png"))
    outcome = reconcile_storage_task.apply(kwargs={"delete": True, "grace_minutes": grace})
    assert outcome.failed()
    assert "OverflowError" not in repr(outcome.result)
    assert default_storage.exists(orphan)
