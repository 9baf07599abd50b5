"""The README's production runbook, followed as written, on a fresh database and a fresh bucket.

The environment block and the commands are read from the README (tests/runbook.py), so the two
cannot drift apart. What the test supplies is what differs per site (its own PostgreSQL
database, Redis, the S3-compatible server and bucket, secrets, host names, the admin's
password). The README's proxy, deploy/nginx/fmr.conf in Debian's nginx, terminates TLS in front
of gunicorn with a throwaway certificate (only its ports and certificate paths changed), so every
HTTPS setting of the README stays as written (redirect to HTTPS, secure cookies, HSTS) and the
browser speaks HTTPS to the proxy.

Then a person logs into the admin in a real browser (Debian's chromium), the admin's CSS is
served by WhiteNoise with DEBUG off, the person changes the delete-expired-jobs schedule to fire
every few seconds, and beat, the worker and S3 do the rest: the expired jobs and their objects
go, the live job stays. Screenshots go to tests/artifacts/runbook-*.png.
"""

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import ExitStack
from pathlib import Path

import boto3
import psycopg
import pytest
from django.conf import settings
from django.db import connection

from fmr.celery import app
from tests.browser import ARTIFACTS
from tests.conftest import S3_CREDENTIALS
from tests.processes import ROOT, stop
from tests.runbook import (
    environment,
    new_secret_key,
    nginx_command,
    nginx_config,
    nginx_missing,
    site_environment,
    steps,
    throwaway_certificate,
)
from tests.s3server import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

BIN = Path(sys.executable).parent
# The admin's password differs per site; the README's name and email are used as written.
ADMIN_PASSWORD = "runbook-" + uuid.uuid4().hex
# The README's commands, in this order; each checked against the README before it runs.
EXPECTED_STEPS = [
    ["python", "manage.py", "create_bucket"],
    ["python", "manage.py", "storage_lifecycle", "--apply"],
    ["python", "manage.py", "migrate"],
    ["python", "manage.py", "collectstatic", "--noinput"],
    ["export", "DJANGO_SUPERUSER_USERNAME="],
    ["python", "manage.py", "createsuperuser", "--noinput"],
    ["python", "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
    ["gunicorn", "fmr.wsgi"],
    ["celery", "-A", "fmr", "worker"],
    ["celery", "-A", "fmr", "beat"],
]
HTTPS_SETTINGS = {
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SESSION_COOKIE_SECURE": "true",
    "DJANGO_CSRF_COOKIE_SECURE": "true",
}


@pytest.fixture
def fresh_database():
    """An empty PostgreSQL database next to the test database, as on a new machine."""
    db = connection.settings_dict
    name = f"runbook_{db['NAME'].removeprefix('test_')}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    server = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Site:
    """The machine the runbook is followed on: its environment, its processes, their logs."""

    def __init__(self, env, logs: Path, stack: ExitStack):
        self.env = env
        self.logs = logs
        self.stack = stack

    def run(self, argv, extra_env=None, timeout=300):
        done = subprocess.run(
            argv,
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, f"{argv[1:]} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def start(self, name, argv):
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.stack.callback(log.close)
        self.stack.callback(stop, process)
        return process

    def log(self, name) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def wait_for(predicate, timeout, message, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in processes:
            assert process.poll() is None, f"{name} exited with {process.returncode}"
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def https_get(url, headers=None):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_the_readme_runbook_brings_up_the_admin_the_worker_and_beat_and_the_purge_happens(
    chromium, fresh_database, s3_server, tmp_path
):
    # --- 1. The environment, from the README --------------------------------------------------
    readme_env = environment()
    for name, value in HTTPS_SETTINGS.items():
        assert readme_env.get(name) == value, f"the README should set {name}={value}"
    assert int(readme_env["DJANGO_SECURE_HSTS_SECONDS"]) >= 31536000
    assert "DJANGO_DEBUG" not in readme_env
    if nginx_missing():
        pytest.fail(nginx_missing())
    port, http_port, gunicorn_port = free_port(), free_port(), free_port()
    origin = f"https://127.0.0.1:{port}"
    bucket = f"fmr-runbook-{uuid.uuid4().hex[:8]}"
    static_root = tmp_path / "static"
    status_token = new_secret_key()
    env = site_environment(
        DJANGO_SECRET_KEY=new_secret_key(),
        DJANGO_ALLOWED_HOSTS="127.0.0.1",
        DJANGO_CSRF_TRUSTED_ORIGINS=origin,
        DATABASE_URL=fresh_database,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID=S3_CREDENTIALS["access_key"],
        AWS_SECRET_ACCESS_KEY=S3_CREDENTIALS["secret_key"],
        STATIC_ROOT=static_root,
        CLEANUP_STATUS_TOKEN=status_token,
    )
    # A fresh machine: only the basics of this process's environment, then the README's.
    env = {name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ} | env
    proxy = tmp_path / "nginx"
    proxy.mkdir()
    certfile, keyfile = throwaway_certificate(proxy)
    nginx = nginx_config(
        proxy,
        http_port=http_port,
        https_port=port,
        upstream_port=gunicorn_port,
        cert=certfile,
        key=keyfile,
    )

    # --- 2. Nothing but the S3 server: the README's first step makes the bucket ------------
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=env["AWS_S3_REGION_NAME"],
        aws_access_key_id=S3_CREDENTIALS["access_key"],
        aws_secret_access_key=S3_CREDENTIALS["secret_key"],
    )
    app.control.purge()  # nothing left over in this broker database from earlier tests

    # --- 3. The README's steps, in order ----------------------------------------------------
    readme_steps = steps()
    assert len(readme_steps) == len(EXPECTED_STEPS), readme_steps
    for step, expected in zip(readme_steps, EXPECTED_STEPS, strict=True):
        assert step[: len(expected) - 1] == expected[:-1], step
        assert step[len(expected) - 1].startswith(expected[-1]), step
    admin = {}
    with ExitStack() as stack:
        site = Site(env, tmp_path, stack)
        processes = []
        for words in readme_steps:
            if words[0] == "export":
                # The admin's variables for the next line; its password is this site's.
                admin = dict(word.split("=", 1) for word in words[1:])
                assert set(admin) == {
                    f"DJANGO_SUPERUSER_{k}" for k in ("USERNAME", "EMAIL", "PASSWORD")
                }
                admin["DJANGO_SUPERUSER_PASSWORD"] = ADMIN_PASSWORD
            elif words[:2] == ["python", "manage.py"]:
                done = site.run([sys.executable, *words[1:]], extra_env=admin)
                if words[2] == "check":
                    check_output = done.stdout + done.stderr
                if words[2] == "create_bucket":
                    assert done.stdout.startswith(f"Created bucket '{bucket}'"), done.stdout
            elif words[0] == "gunicorn":
                argv = [str(BIN / "gunicorn"), *words[1:]]
                argv[argv.index("--bind") + 1] = f"127.0.0.1:{gunicorn_port}"
                processes.append(("gunicorn", site.start("gunicorn", argv)))
                processes.append(("nginx", site.start("nginx", nginx_command(proxy, nginx))))
            else:
                name = words[3]
                processes.append((name, site.start(name, [str(BIN / "celery"), *words[1:]])))
        assert "cleanup.E" not in check_output and "WARNINGS:" not in check_output

        def database(query, *args):
            with psycopg.connect(fresh_database) as db:
                return db.execute(query, args).fetchall()

        # Demo data through the same environment: 2 expired jobs, 1 live, 12 objects in S3.
        site.run([sys.executable, "manage.py", "seed_demo_jobs", "--expired", "2", "--live", "1"])
        files = database(
            "SELECT f.file, j.expires_at < now() "
            "FROM jobs_jobfile f JOIN jobs_job j ON j.id = f.job_id"
        )
        expired_files = {name for name, expired in files if expired}
        live_files = {name for name, expired in files if not expired}
        assert len(expired_files) == 8 and len(live_files) == 4

        def objects():
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

        assert objects() == expired_files | live_files
        wait_for(
            lambda: https_get(f"{origin}/admin/login/")[0] == 200,
            60,
            "gunicorn to serve the admin through nginx",
            processes,
        )
        wait_for(lambda: "ready" in site.log("worker"), 60, "the worker", processes)
        wait_for(lambda: "beat: Starting" in site.log("beat"), 60, "beat", processes)

        # --- 4. The admin's static files, served with DEBUG off ---------------------------------
        status, headers, body = https_get(f"{origin}/static/admin/css/base.css")
        assert status == 200 and headers["Content-Type"].startswith("text/css") and body
        assert (static_root / "admin" / "css" / "base.css").exists()
        status, _, body = https_get(f"{origin}/no-such-page/")
        assert status == 404 and b"URLconf" not in body  # no debug page: DEBUG is off
        status, headers, _ = https_get(f"{origin}/admin/login/")
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
        status, _, body = https_get(
            f"{origin}/cleanup/status/", {"Authorization": f"Bearer {status_token}"}
        )
        assert status == 200 and json.loads(body)["expired_jobs"] == 2

        # --- 5. A person in the browser -------------------------------------------------------
        with chromium() as browser:
            context = browser.new_context(
                ignore_https_errors=True, viewport={"width": 1280, "height": 1000}
            )
            page = context.new_page()
            page.goto(f"{origin}/admin/")
            page.wait_for_selector("#id_username")
            # The stylesheet applied: the admin's header has its colour, not the default.
            header = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
            assert header not in ("rgba(0, 0, 0, 0)", "transparent"), header
            page.screenshot(path=str(ARTIFACTS / "runbook-admin-login.png"))
            page.fill("#id_username", admin["DJANGO_SUPERUSER_USERNAME"])
            page.fill("#id_password", ADMIN_PASSWORD)
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")
            assert page.url == f"{origin}/admin/"
            page.screenshot(path=str(ARTIFACTS / "runbook-admin-index.png"), full_page=True)
            assert any(c["name"] == "sessionid" and c["secure"] for c in context.cookies())

            # Periodic tasks -> delete-expired-jobs: every 3 seconds instead of hourly.
            page.goto(f"{origin}/admin/django_celery_beat/periodictask/")
            page.click("text=delete-expired-jobs")
            page.wait_for_selector("#id_name")
            with page.expect_popup() as popup_info:
                page.click("#add_id_interval")
            popup = popup_info.value
            popup.wait_for_selector("#id_every")
            popup.fill("#id_every", "3")
            popup.select_option("#id_period", "seconds")
            # Listening before the click: a popup that closes at once is not missed.
            with popup.expect_event("close"):
                popup.click("input[name=_save]")
            page.select_option("#id_crontab", "")
            page.click("input[name=_continue]")
            page.wait_for_selector(".messagelist .success")
            assert "was changed successfully" in page.inner_text(".messagelist .success")
            page.screenshot(
                path=str(ARTIFACTS / "runbook-schedule-every-3-seconds.png"), full_page=True
            )

            # --- 6. Beat sends it, the worker purges: rows and objects go, the live job stays
            wait_for(
                lambda: database("SELECT count(*) FROM jobs_job")[0][0] == 1,
                90,
                "the scheduled purge",
                processes,
            )
            wait_for(lambda: objects() == live_files, 30, "the S3 objects to go", processes)
            page.goto(f"{origin}/admin/cleanup/purgerun/")
            page.wait_for_selector("#result_list")
            page.screenshot(path=str(ARTIFACTS / "runbook-purge-runs.png"), full_page=True)

        runs = database(
            "SELECT trigger, status, jobs_deleted, files_deleted FROM cleanup_purgerun "
            "WHERE jobs_deleted > 0"
        )
        assert {(trigger, status) for trigger, status, _, _ in runs} == {("beat", "succeeded")}
        assert sum(run[2] for run in runs) == 2 and sum(run[3] for run in runs) == 8, runs
        assert {name for (name,) in database("SELECT file FROM jobs_jobfile")} == live_files
        # README: beat adds Celery's own daily result cleanup row (04:00).
        assert database(
            "SELECT c.minute, c.hour FROM django_celery_beat_periodictask t "
            "JOIN django_celery_beat_crontabschedule c ON c.id = t.crontab_id "
            "WHERE t.name = 'celery.backend_cleanup'"
        ) == [("0", "4")]
        for name, process in processes:
            assert process.poll() is None, f"{name} exited"
    for name, process in processes:
        assert process.returncode == 0, f"{name} did not stop cleanly:\n{site.log(name)[-3000:]}"
