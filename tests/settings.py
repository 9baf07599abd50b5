"""The test run's settings: the production settings (fmr.settings), started the way the tests
need them.

Without DEBUG the production settings refuse to start without DJANGO_SECRET_KEY, redirect
plain HTTP to HTTPS and send cookies over HTTPS only. No operator is there to give a key, and the
test client, the live server and the child processes the tests start speak plain HTTP, so this
puts into the environment, before fmr.settings is read and unless the caller set them: a
test-only key, and HTTPS off. pytest-django imports this module first; every child process
(manage.py, celery, gunicorn) inherits the environment and reads fmr.settings itself. A test
that wants a process without a key, or with production's HTTPS, sets the child's environment
(tests/test_production_settings.py, tests/test_runbook.py).
"""

import os

os.environ.setdefault(
    "DJANGO_SECRET_KEY", "test-only-key-not-secret-x7Qp2Lr9Zw4Nc6Vb8Mt3Hs5Jd1Kf0GyUe6Wa2"
)
# Production requires the broker's URL; the tests' own default is the local Redis.
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")


def _worker_broker(url: str, worker: str) -> str:
    """pytest-xdist worker gwN's own Redis database: the given one's number + 1 + N, so workers
    never share a queue, nor the base database (CI's 0). Redis has 16 (0-15): more workers than
    that leaves room for is refused, never wrapped onto a database someone else uses."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    number = base + 1 + int(worker.removeprefix("gw"))
    if number > 15:
        raise RuntimeError(
            f"pytest-xdist worker {worker} would need Redis database {number} (base {base} from "
            f"CELERY_BROKER_URL, + 1 + worker): run fewer workers (-n) or use a lower base"
        )
    return parts._replace(path=f"/{number}").geturl()


# Each child process inherits the worker's database through the environment. Once per process
# tree: a child that loads this module again keeps it.
if os.environ.get("PYTEST_XDIST_WORKER") and "FMR_TEST_BROKER_OF" not in os.environ:
    os.environ["FMR_TEST_BROKER_OF"] = os.environ["PYTEST_XDIST_WORKER"]
    os.environ["CELERY_BROKER_URL"] = _worker_broker(
        os.environ["CELERY_BROKER_URL"], os.environ["PYTEST_XDIST_WORKER"]
    )
for _name in (
    "DJANGO_SECURE_SSL_REDIRECT",
    "DJANGO_SESSION_COOKIE_SECURE",
    "DJANGO_CSRF_COOKIE_SECURE",
):
    os.environ.setdefault(_name, "false")
# Children load the production settings, not this module.
os.environ["DJANGO_SETTINGS_MODULE"] = "fmr.settings"

from fmr.settings import *  # noqa: E402, F403
