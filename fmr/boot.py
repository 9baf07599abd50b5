"""Refusing to start on unusable settings: one line that names the problem, no traceback.

fmr/settings.py raises ImproperlyConfigured for a value it cannot use (a bad number, object
storage without DATABASE_URL, ...). Left alone, each entry point shows that as a traceback
(manage.py, `celery -A fmr worker`/`beat`) or as a worker boot failure (gunicorn). Every entry
point loads the settings through `settings_or_exit` first instead.
"""

import sys

from django.core.exceptions import ImproperlyConfigured

# The exit status of a process that refused to start on bad settings (as a failed command).
CONFIG_EXIT = 1


def settings_problem() -> str:
    """Load the settings; the reason they are unusable, in one line, or "" when they are fine."""
    from django.conf import settings

    try:
        settings.INSTALLED_APPS  # noqa: B018 - the first access loads fmr/settings.py
    except ImproperlyConfigured as exc:
        return " ".join(str(exc).split())
    return ""


def settings_or_exit(program: str = "fmr"):
    problem = settings_problem()
    if problem:
        print(f"{program}: configuration error: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(CONFIG_EXIT)
