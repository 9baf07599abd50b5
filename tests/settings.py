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
for _name in (
    "DJANGO_SECURE_SSL_REDIRECT",
    "DJANGO_SESSION_COOKIE_SECURE",
    "DJANGO_CSRF_COOKIE_SECURE",
):
    os.environ.setdefault(_name, "false")
# Children load the production settings, not this module.
os.environ["DJANGO_SETTINGS_MODULE"] = "fmr.settings"

from fmr.settings import *  # noqa: E402, F403
