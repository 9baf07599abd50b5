"""Refusing to start on unusable settings or without a database: one line, no traceback."""

import os
import sys

import django
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

# For the worker, beat and gunicorn, which import this module (and fmr) before any setting.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")


def one_line(exc) -> str:
    return " ".join(str(exc).split())


def exit_with(program, problem, code=1):
    print(f"{program}: {problem}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def settings_problem() -> str:
    """Load the settings and the apps; why they are unusable, in one line, or "" when fine."""
    try:
        # Celery may configure itself while the apps load, or after: nothing left to check then.
        if not (apps.ready or apps.loading):
            django.setup()
    except ImproperlyConfigured as exc:
        return one_line(exc)
    return ""


def settings_or_exit(program: str, code: int = 1):
    if problem := settings_problem():
        exit_with(program, f"configuration error: {problem}", code)
