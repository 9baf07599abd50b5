"""Production is explicit: no process runs on a public key, and HTTPS comes from the environment.

Every test here starts real processes (manage.py, gunicorn, celery worker and beat) with the
environment an operator would give them.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.admin_helpers import ensure_purge_schedule, ensure_reconcile_schedule
from tests.conftest import S3_CREDENTIALS
from tests.processes import ROOT, child_database_url, child_env
from tests.runbook import new_secret_key, site_environment
from tests.s3server import free_port

BIN = Path(sys.executable).parent
OLD_PUBLIC_KEY = "insecure-local-development-key-change-me"

PROCESSES = {
    "manage.py check": [sys.executable, "manage.py", "check"],
    "manage.py purge_expired_jobs": [sys.executable, "manage.py", "purge_expired_jobs"],
    "gunicorn fmr.wsgi": [str(BIN / "gunicorn"), "fmr.wsgi", "--bind", "127.0.0.1:{port}"],
    "celery worker": [str(BIN / "celery"), "-A", "fmr", "worker", "--pool=solo"],
    "celery beat": [str(BIN / "celery"), "-A", "fmr", "beat", "--schedule", "{tmp}/beat"],
}


def without_key(**extra) -> dict:
    """A child's environment with no secret key and no DEBUG (then `extra`)."""
    env = child_env()
    for name in ("DJANGO_SECRET_KEY", "DJANGO_DEBUG"):
        env.pop(name, None)
    return {**env, **{name: str(value) for name, value in extra.items()}}


def run(command, env, tmp_path, timeout=90):
    command = [part.format(port=free_port(), tmp=tmp_path) for part in command]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
@pytest.mark.parametrize("key", [None, "", OLD_PUBLIC_KEY], ids=["unset", "empty", "old-default"])
@pytest.mark.parametrize("process", list(PROCESSES))
def test_without_debug_no_process_starts_on_a_missing_or_public_secret_key(process, key, tmp_path):
    env = without_key() if key is None else without_key(DJANGO_SECRET_KEY=key)

    done = run(PROCESSES[process], env, tmp_path)

    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "DJANGO_SECRET_KEY" in output, output[-3000:]


def settings_in_child(**env) -> dict:
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({name: getattr(s, name) for name in ["
        "'DEBUG', 'SECURE_SSL_REDIRECT', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_HSTS_PRELOAD', "
        "'SECURE_PROXY_SSL_HEADER', 'CSRF_TRUSTED_ORIGINS', 'STATIC_ROOT', 'ALLOWED_HOSTS']}, "
        "default=str))"
    )
    base = without_key(DJANGO_SETTINGS_MODULE="fmr.settings")
    for name in list(base):
        if name.startswith(("DJANGO_SECURE_", "DJANGO_SESSION_", "DJANGO_CSRF_")):
            base.pop(name)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_with_debug_on_the_development_key_is_allowed_and_https_is_not_forced():
    seen = settings_in_child(DJANGO_DEBUG="true")

    assert seen["DEBUG"] is True
    assert not seen["SECURE_SSL_REDIRECT"] and not seen["SESSION_COOKIE_SECURE"]
    assert not seen["CSRF_COOKIE_SECURE"] and seen["SECURE_HSTS_SECONDS"] == 0


def test_without_debug_https_is_on_unless_the_environment_says_otherwise():
    seen = settings_in_child(DJANGO_SECRET_KEY=new_secret_key())

    assert seen["DEBUG"] is False
    assert seen["SECURE_SSL_REDIRECT"] and seen["SESSION_COOKIE_SECURE"]
    assert seen["CSRF_COOKIE_SECURE"]
    # HSTS cannot be taken back before it expires in browsers: on only when asked for.
    assert seen["SECURE_HSTS_SECONDS"] == 0
    assert seen["SECURE_PROXY_SSL_HEADER"] is None and seen["CSRF_TRUSTED_ORIGINS"] == []


def test_every_https_setting_comes_from_the_environment(tmp_path):
    seen = settings_in_child(
        DJANGO_SECRET_KEY=new_secret_key(),
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SESSION_COOKIE_SECURE="false",
        DJANGO_CSRF_COOKIE_SECURE="false",
        DJANGO_SECURE_HSTS_SECONDS="3600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        DJANGO_SECURE_HSTS_PRELOAD="false",
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://admin.fmr.example, https://ops.fmr.example",
        STATIC_ROOT=str(tmp_path / "static"),
    )

    assert not seen["SECURE_SSL_REDIRECT"] and not seen["SESSION_COOKIE_SECURE"]
    assert not seen["CSRF_COOKIE_SECURE"]
    assert seen["SECURE_HSTS_SECONDS"] == 3600
    assert not seen["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and not seen["SECURE_HSTS_PRELOAD"]
    assert seen["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert seen["CSRF_TRUSTED_ORIGINS"] == ["https://admin.fmr.example", "https://ops.fmr.example"]
    assert seen["STATIC_ROOT"] == str(tmp_path / "static")


@pytest.mark.parametrize(
    "name,value",
    [
        ("DJANGO_SECURE_HSTS_SECONDS", "a year"),
        ("DJANGO_SECURE_HSTS_SECONDS", "-1"),
        ("DJANGO_SECURE_SSL_REDIRECT", "maybe"),
        ("DJANGO_SESSION_COOKIE_SECURE", "2"),
        ("DJANGO_SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto: https"),
        ("DJANGO_CSRF_TRUSTED_ORIGINS", "admin.fmr.example"),
    ],
)
def test_a_bad_https_setting_stops_the_process_with_its_name(name, value, tmp_path):
    env = without_key(DJANGO_SECRET_KEY=new_secret_key(), **{name: value})

    done = run([sys.executable, "manage.py", "check"], env, tmp_path)

    assert done.returncode != 0
    assert name in done.stderr, done.stderr[-3000:]


def readme_site(s3_server, bucket, tmp_path, **changes) -> dict:
    env = site_environment(
        DJANGO_SECRET_KEY=new_secret_key(),
        DJANGO_ALLOWED_HOSTS="admin.fmr.test",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://admin.fmr.test",
        DATABASE_URL=child_database_url(),
        CELERY_BROKER_URL=child_env()["CELERY_BROKER_URL"],
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID=S3_CREDENTIALS["access_key"],
        AWS_SECRET_ACCESS_KEY=S3_CREDENTIALS["secret_key"],
        STATIC_ROOT=tmp_path / "static",
        CLEANUP_STATUS_TOKEN=new_secret_key(),
    )
    # A fresh machine: nothing from this test run's environment but the basics.
    base = {name: value for name, value in child_env().items() if name in {"PATH", "HOME", "LANG"}}
    return {**base, **env, **changes}


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_check_deploy_passes_with_the_readme_production_environment(s3_server, s3_bucket, tmp_path):
    ensure_purge_schedule()
    ensure_reconcile_schedule()
    env = readme_site(s3_server, s3_bucket.name, tmp_path)
    # The runbook's step before the check: the lifecycle backstop (else cleanup.W021).
    run([sys.executable, "manage.py", "storage_lifecycle", "--apply"], env, tmp_path)

    done = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env,
        tmp_path,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNINGS:" not in output and "ERRORS:" not in output, output

    # The same check does fail when the HTTPS settings are turned off: it tests something.
    insecure = readme_site(
        s3_server,
        s3_bucket.name,
        tmp_path,
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_HSTS_SECONDS="0",
        DJANGO_SESSION_COOKIE_SECURE="false",
    )
    done = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        insecure,
        tmp_path,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    for warning in ("security.W008", "security.W004", "security.W012"):
        assert warning in output, output
