"""Configuration and bad input fail closed: every setting the code reads, every command, the worker,
beat and the web process either work or stop in one line, with a non-zero exit and no traceback.

The variables are found from the code, not listed here: a child process records every read of
os.environ while fmr/settings.py runs, so a variable added later is swept as well. The commands
are found by Django's own discovery of the project's apps.
"""

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from tests.processes import ROOT, child_env, run_manage, stop, wait_until
from tests.s3server import free_port

BAD_VALUES = {
    "empty": "",
    "blank": "   ",
    "garbage": "garbage!? ,",
    "huge number": "9" * 60,
    "huge text": "x" * 20000,
    "negative": "-1",
    "non-ASCII": "٣한국어\u3000",
    "undecodable": "\udcff\udcfe",
}

# Values each refused with the variable's name (bounds, digits, shares, levels, tokens, URLs).
REFUSED = [
    ("JOB_TTL_SECONDS", "100000000000000000000"),
    ("JOB_TTL_SECONDS", "0"),
    ("CLEANUP_STALE_RUN_MINUTES", "99999999999999"),
    ("CLEANUP_BATCH_SIZE", "99999999999"),
    ("CLEANUP_BATCH_SIZE", "٥"),
    ("CLEANUP_BATCH_SIZE", "1_000"),
    ("CLEANUP_BATCH_SIZE", "+5"),
    ("CLEANUP_MAX_PARALLEL", "99999999999"),
    ("CLEANUP_SUBTASK_SECONDS", "1e9"),
    ("AWS_S3_CONNECT_TIMEOUT", "99999999999999"),
    ("AWS_S3_READ_TIMEOUT", "-1"),
    ("AWS_S3_MAX_ATTEMPTS", "0"),
    ("CLEANUP_RECONCILE_MAX_ORPHAN_SHARE", "1.5"),
    ("CLEANUP_RECONCILE_MAX_ORPHAN_SHARE", "half"),
    ("CLEANUP_RECONCILE_MAX_ORPHAN_SHARE", "nan"),
    ("LOG_LEVEL", "loud"),
    ("CLEANUP_LOG_LEVEL", "verbose"),
    ("CLEANUP_STATUS_TOKEN", "..."),
    ("CLEANUP_STATUS_TOKEN", "short-token"),
    ("CLEANUP_STATUS_TOKEN", "토큰" * 20),
    ("CELERY_BROKER_URL", "localhost:6379"),
    ("CELERY_BROKER_URL", "amqp://rabbit"),
    ("AWS_S3_ENDPOINT_URL", "s3.example"),
    ("AWS_STORAGE_BUCKET_NAME", "My_Bucket"),
    ("MEDIA_ROOT", "media"),
    ("CLEANUP_FILE_MODELS", ""),
    ("CLEANUP_FILE_MODELS", " "),
    ("CLEANUP_FILE_MODELS", ","),
    ("CLEANUP_FILE_MODELS", "jobs.JobFile"),
]

# Runs in a child: records the variables fmr/settings.py reads, then loads the settings once per
# (variable, bad value) and reports how each ended: "ok", or the refusal's message.
SWEEP = r"""
import importlib, json, logging.config, os, sys
from django.core.exceptions import ImproperlyConfigured

class Recording(dict):
    def __init__(self, data):
        super().__init__(data)
        self.read = set()
    def get(self, name, default=None):
        self.read.add(name)
        return super().get(name, default)
    def __getitem__(self, name):
        self.read.add(name)
        return super().__getitem__(name)
    def __contains__(self, name):
        self.read.add(name)
        return super().__contains__(name)

def load():
    sys.modules.pop("fmr.settings", None)
    try:
        settings = importlib.import_module("fmr.settings")
        logging.config.dictConfig(settings.LOGGING)
    except ImproperlyConfigured as exc:
        return str(exc)
    return "ok"

base = dict(os.environ)
os.environ = Recording(base)
assert load() == "ok"
names = sorted(os.environ.read)
values = json.loads(sys.argv[1])
results = {}
for name in names:
    for kind, value in values.items():
        os.environ = Recording({**base, name: value})
        try:
            results[f"{name} {kind}"] = load()
        except Exception as exc:
            results[f"{name} {kind}"] = f"UNCAUGHT {type(exc).__name__}: {exc}"
for name, value in json.loads(sys.argv[2]):
    os.environ = Recording({**base, name: value})
    results[f"{name}={value}"] = load()
print(json.dumps({"names": names, "results": results}))
"""


@pytest.fixture(scope="module")
def sweep():
    env = child_env()
    env.pop("CLEANUP_FILE_MODELS", None)
    done = subprocess.run(
        [sys.executable, "-c", SWEEP, json.dumps(BAD_VALUES), json.dumps(REFUSED)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        errors="surrogateescape",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_the_sweep_finds_the_variables_from_the_code(sweep):
    # A sample of what the settings are known to read; the sweep covers whatever else they do.
    expected = {"DATABASE_URL", "CELERY_BROKER_URL", "LOG_LEVEL", "CLEANUP_STATUS_TOKEN"}
    assert expected <= set(sweep["names"]), sweep["names"]
    assert "CLEANUP_FILE_MODELS" in sweep["names"]  # read only to refuse it
    assert len(sweep["results"]) == len(sweep["names"]) * len(BAD_VALUES) + len(REFUSED)


def test_every_bad_value_of_every_variable_is_accepted_or_refused_in_one_sentence(sweep):
    wrong = {}
    for case, outcome in sweep["results"].items():
        name = case.split()[0].split("=")[0]
        refused_clearly = name in outcome and "\n" not in outcome and len(outcome) < 400
        if outcome != "ok" and not refused_clearly:
            wrong[case] = outcome[:300]
    assert not wrong, wrong


@pytest.mark.parametrize("name,value", REFUSED, ids=lambda v: str(v)[:20])
def test_values_that_used_to_pass_or_crash_are_refused_with_their_name(sweep, name, value):
    outcome = sweep["results"][f"{name}={value}"]

    assert outcome != "ok" and name in outcome and "\n" not in outcome


@pytest.mark.parametrize("name,value", [("LOG_LEVEL", "loud"), ("CLEANUP_STATUS_TOKEN", "...")])
def test_a_refused_setting_stops_the_process_in_one_line(name, value):
    assert_one_line_refusal(run_manage("check", env=child_env(**{name: value})), name)


def assert_one_line_refusal(done, *words):
    assert done.returncode != 0, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def without_debug(**extra):
    env = child_env(**extra)
    env.pop("DJANGO_DEBUG", None)
    return env


def test_without_debug_the_broker_url_is_required():
    env = without_debug()
    env.pop("CELERY_BROKER_URL")

    assert_one_line_refusal(run_manage("check", env=env), "CELERY_BROKER_URL is not set")

    env["DJANGO_DEBUG"] = "true"
    assert run_manage("check", env=env).returncode == 0


@pytest.mark.parametrize("value", [" ", ",", "jobs.Nope", "jobs.Report", "jobs.JobFile"])
def test_the_file_models_variable_is_refused_whatever_its_value(value):
    done = run_manage("purge_expired_jobs", "--dry-run", env=child_env(CLEANUP_FILE_MODELS=value))

    assert_one_line_refusal(done, "CLEANUP_FILE_MODELS is code configuration now")


@pytest.mark.parametrize(
    "declared,message",
    [
        ([], "must list at least one model"),
        ("jobs.JobFile", "must list at least one model"),
        (["jobs.Nope"], "'jobs.Nope', which is not an installed model"),
        ([" "], "which is not an installed model"),
        (["jobs.Report"], "jobs.Report, which has no FileField"),
    ],
)
@pytest.mark.slow
def test_a_file_model_declaration_the_purge_cannot_honour_stops_every_process(
    declared, message, tmp_path
):
    # The declaration is code now: a settings module of the deployment's own sets it.
    (tmp_path / "declared_settings.py").write_text(
        f"from fmr.settings import *  # noqa\nCLEANUP_FILE_MODELS = {declared!r}\n"
    )
    env = child_env(DJANGO_SETTINGS_MODULE="declared_settings")
    env["PYTHONPATH"] = str(tmp_path)

    for command in (["manage.py", "purge_expired_jobs"], ["-m", "celery", "-A", "fmr", "beat"]):
        done = subprocess.run(
            [sys.executable, *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert_one_line_refusal(done, "configuration error", message)


def project_commands() -> list[str]:
    from django.core.management import get_commands

    return sorted(name for name, app in get_commands().items() if app in {"jobs", "cleanup"})


# Values for the arguments a command requires; a new required argument fails the test below
# until it is given one here.
REQUIRED = {"--since": "2026-01-01", "--until": "2026-01-02"}
# Flags a command needs to reach its database that its parser cannot require (export_purge_log
# takes either a range or --verify FILE).
GIVEN = {"export_purge_log": ["--since", "2026-01-01", "--until", "2026-01-02"]}
# Commands that never read the database: they must still not trip over it.
NO_DATABASE = {"storage_lifecycle", "create_bucket"}


def arguments_for(name) -> list[str]:
    from django.core.management import get_commands, load_command_class

    parser = load_command_class(get_commands()[name], name).create_parser("manage.py", name)
    args = list(GIVEN.get(name, []))
    for action in parser._actions:
        if action.required and action.option_strings[0] not in args:
            flag = action.option_strings[0]
            assert flag in REQUIRED, f"{name} requires {flag}: give it a value in REQUIRED"
            args += [flag, REQUIRED[flag]]
    return args


def unreachable_database():
    return f"postgres://fmr@127.0.0.1:{free_port()}/fmr"


@pytest.mark.slow
@pytest.mark.parametrize("command", ["migrate", *project_commands()])
def test_every_command_against_an_unreachable_database_says_so_in_one_line(command):
    done = run_manage(
        command,
        *arguments_for(command),
        env=child_env(DATABASE_URL=unreachable_database()),
    )

    if command in NO_DATABASE:  # on local files: nothing to do, or one line saying so
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) <= 1, done.stderr
    else:
        assert_one_line_refusal(done, "database", "127.0.0.1")


@pytest.mark.slow
@pytest.mark.parametrize("program", ["worker", "beat"])
def test_worker_and_beat_without_a_database_stop_in_one_line(program, tmp_path):
    args = ["--pool=solo"] if program == "worker" else ["--schedule", str(tmp_path / "beat")]
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "fmr", program, *args],
        cwd=ROOT,
        env=child_env(DATABASE_URL=unreachable_database()),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert_one_line_refusal(done, "celery: database unreachable", "Connection refused")


@pytest.mark.django_db
def test_a_closed_pipe_ends_list_jobs_in_one_line():
    from tests.helpers import live_job

    for _ in range(3):
        live_job(with_files=False)
    reader = subprocess.Popen(
        [sys.executable, "manage.py", "list_jobs"],
        cwd=ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    reader.stdout.close()  # as `| head -0` does
    err = reader.stderr.read()
    reader.wait(60)

    assert reader.returncode != 0
    assert err.strip().splitlines() == [
        "manage.py: output closed before the command finished (broken pipe)"
    ]


def test_export_purge_log_refuses_a_day_whose_bounds_overflow():
    done = run_manage("export_purge_log", "--since", "2026-01-01", "--until", "9999-12-31")

    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "argument --until: expected a date from 0002-01-01 to 9998-12-31" in done.stderr


@pytest.mark.slow
def test_status_and_metrics_without_a_database_answer_503_in_one_line():
    token = "t" * 40
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "fmr.wsgi", f"--bind=127.0.0.1:{port}"],
        cwd=ROOT,
        env=child_env(DATABASE_URL=unreachable_database(), CLEANUP_STATUS_TOKEN=token),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def get(path):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers["Content-Type"], error.read().decode()

    def answers():
        try:
            get("/cleanup/status/")
        except OSError:
            return False
        return True

    try:
        wait_until(answers, 30, message="gunicorn to answer")
        status = get("/cleanup/status/")
        metrics = get("/cleanup/metrics")
    finally:
        stop(server)

    assert status[0] == 503 and status[1].startswith("text/plain")
    assert status[2] == "database unreachable: OperationalError\n"
    assert metrics[0] == 503 and metrics[1].startswith("text/plain; version=0.0.4")
    from prometheus_client.parser import text_string_to_metric_families

    (family,) = text_string_to_metric_families(metrics[2])
    assert family.name == "fmr_cleanup_up" and family.samples[0].value == 0
