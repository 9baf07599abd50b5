"""The test run's settings: the production settings (fmr.settings), started the way the tests
need them.

Without DEBUG the production settings refuse to start without DJANGO_SECRET_KEY and redirect
plain HTTP to HTTPS. The test client, the live server and most child processes speak plain HTTP
and no operator is there to give a key, so this sets both in the environment, before
fmr.settings is read, unless the caller set them: a test-only key, and no HTTPS redirect
(cookies stay secure-only, as in production). pytest-django imports this module first, and
every child process (manage.py, celery, gunicorn) inherits the environment and reads
fmr.settings itself. A test that wants a process without a key removes it from the child's
environment.
"""

import os

os.environ.setdefault(
    "DJANGO_SECRET_KEY", "test-only-key-not-secret-x7Qp2Lr9Zw4Nc6Vb8Mt3Hs5Jd1Kf0GyUe6Wa2"
)
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
# Children load the production settings, not this module.
os.environ["DJANGO_SETTINGS_MODULE"] = "fmr.settings"

from fmr.settings import *  # noqa: F403
