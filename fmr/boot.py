"""Refusing to start on unusable settings (fmr/settings.py, cleanup/file_models.py) or without a
database: one line, no traceback, in manage.py, the worker and beat, or gunicorn."""

import sys

import django
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import Error, connection


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


def database_or_exit(program: str):
    """Stop in one line when the database does not answer (the worker and beat at start)."""
    opened_here = connection.connection is None
    try:
        connection.ensure_connection()
    except Error as exc:
        exit_with(program, f"database unreachable, stopping: {one_line(exc)}")
    finally:
        # A connection this check opened is not left to a forked worker; one in use stays.
        if opened_here:
            connection.close()
