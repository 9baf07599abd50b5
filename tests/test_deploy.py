"""The files in deploy/ do what the README says (issue 17, item 2).

- deploy/nginx/fmr.conf, run by Debian's nginx in front of a real gunicorn with the README's
  HTTPS settings: HTTPS works through it, plain HTTP is redirected, and a client that claims
  HTTPS over plain HTTP (X-Forwarded-Proto: https, in any spelling) is not believed.
- deploy/systemd/*.service: the README's three processes, as a non-root user with the
  EnvironmentFile, accepted by `systemd-analyze verify`; deploy/systemd/fmr.env is the README's
  environment.
"""

import configparser
import http.client
import shlex
import shutil
import ssl
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import _unavailable
from tests.processes import ROOT, child_env, stop, wait_until
from tests.runbook import (
    environment,
    new_secret_key,
    nginx_command,
    nginx_config,
    nginx_missing,
    steps,
    throwaway_certificate,
)
from tests.s3server import free_port

DEPLOY = ROOT / "deploy"
UNITS = {
    "fmr-web.service": ["gunicorn", "fmr.wsgi"],
    "fmr-worker.service": ["celery", "-A", "fmr", "worker"],
    "fmr-beat.service": ["celery", "-A", "fmr", "beat"],
}
VENV_BIN = "/srv/fmr/app/.venv/bin/"


def request(port, path, headers=(), *, tls=False):
    """One GET with exactly these headers (repeats allowed): (status, headers)."""
    if tls:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def answers(port, **kwargs) -> bool:
    try:
        request(port, "/admin/login/", **kwargs)
    except OSError:
        return False
    return True


CLAIMS_HTTPS = [
    [("X-Forwarded-Proto", "https")],
    [("x-forwarded-proto", "https")],
    [("X-Forwarded-Proto", "https"), ("X-Forwarded-Proto", "https")],
    [("X_Forwarded_Proto", "https")],
]


@pytest.mark.django_db(transaction=True)
def test_nginx_terminates_tls_and_a_client_cannot_claim_https_over_plain_http(tmp_path):
    if nginx_missing():
        _unavailable(nginx_missing())
    readme = environment()
    https_settings = {name: value for name, value in readme.items() if name.startswith("DJANGO_")}
    env = child_env(
        **https_settings
        | {
            "DJANGO_SECRET_KEY": new_secret_key(),
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_CSRF_TRUSTED_ORIGINS": "https://127.0.0.1",
        }
    )
    env.pop("DJANGO_DEBUG", None)
    assert env["DJANGO_SECURE_PROXY_SSL_HEADER"] == "X-Forwarded-Proto"
    gunicorn_port, http_port, https_port = free_port(), free_port(), free_port()
    cert, key = throwaway_certificate(tmp_path)
    config = nginx_config(
        tmp_path,
        http_port=http_port,
        https_port=https_port,
        upstream_port=gunicorn_port,
        cert=cert,
        key=key,
    )
    web = [sys.executable, "-m", "gunicorn", "fmr.wsgi", "--workers", "1"]
    with ExitStack() as stack:
        for argv in (
            [*web, "--bind", f"127.0.0.1:{gunicorn_port}"],
            nginx_command(tmp_path, config),
        ):
            process = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
            stack.callback(stop, process)
        wait_until(lambda: answers(gunicorn_port), 60, message="gunicorn")
        wait_until(lambda: answers(https_port, tls=True), 30, message="nginx")

        # HTTPS through the proxy: Django sees a secure request.
        status, headers = request(https_port, "/admin/login/", tls=True)
        assert status == 200 and headers["strict-transport-security"].startswith("max-age=")
        status, _ = request(https_port, "/admin/login/", [("X-Forwarded-Proto", "http")], tls=True)
        assert status == 200

        # Plain HTTP is redirected to HTTPS, whatever the client says it is.
        for claim in [[], *CLAIMS_HTTPS]:
            status, headers = request(http_port, "/admin/login/", claim)
            assert status == 301, claim
            assert headers["location"] == "https://127.0.0.1/admin/login/", claim
            assert "strict-transport-security" not in headers

        # Without the proxy the same claim is believed: the proxy is what makes it safe.
        status, _ = request(gunicorn_port, "/admin/login/", CLAIMS_HTTPS[0])
        assert status == 200


def unit(name) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read_string((DEPLOY / "systemd" / name).read_text())
    return parser


@pytest.mark.parametrize("name", sorted(UNITS))
def test_each_unit_runs_the_readme_command_as_a_non_root_user_with_the_environment_file(name):
    service = unit(name)["Service"]
    assert service["User"] == service["Group"] == "fmr"
    assert service["EnvironmentFile"] == "/etc/fmr/fmr.env"
    assert service["Restart"] == "on-failure"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].startswith(VENV_BIN)
    command = [argv[0].removeprefix(VENV_BIN), *argv[1:]]
    # The README's own line for this process, without its comment.
    readme = [words for words in steps() if words[: len(UNITS[name])] == UNITS[name]]
    assert readme == [command], (readme, command)
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the units' keys are parsed above")
    (tmp_path / "fmr.env").write_text((DEPLOY / "systemd" / "fmr.env").read_text())
    paths = []
    for name in UNITS:
        # This checkout and its venv stand in for /srv/fmr/app, which verify requires to exist.
        text = (DEPLOY / "systemd" / name).read_text()
        text = text.replace("/srv/fmr/app/.venv/bin/", f"{Path(sys.executable).parent}/")
        text = text.replace("/srv/fmr/app", str(ROOT))
        text = text.replace("/etc/fmr/fmr.env", str(tmp_path / "fmr.env"))
        (tmp_path / name).write_text(text)
        paths.append(str(tmp_path / name))

    done = subprocess.run(
        [analyze, "verify", "--man=no", *paths], capture_output=True, text=True, timeout=60
    )

    # verify exits 0 on unknown keys and bad values too, and says so on stderr.
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_environment_file_is_the_readme_environment():
    values = {}
    for line in (DEPLOY / "systemd" / "fmr.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and "export" not in name, line
            values[name] = shlex.split(value)[0] if value else ""
    assert values == environment()
