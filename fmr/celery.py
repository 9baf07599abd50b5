import logging

from celery import Celery
from celery.signals import import_modules, setup_logging
from django.conf import settings
from django.db import Error, connection

from .boot import exit_with, one_line, settings_or_exit
from .logconfig import configure

app = Celery("fmr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def refuse_unusable_settings(sender=None, **kwargs):
    # Sent before Celery loads Django's settings: bad settings stop the worker and beat in one line.
    settings_or_exit("celery")


@import_modules.connect
def refuse_without_database(sender=None, **kwargs):
    # Before beat reads its schedule or the worker says ready: restarted until the database answers.
    opened_here = connection.connection is None
    try:
        connection.ensure_connection()
    except Error as exc:
        exit_with("celery", f"database unreachable, stopping: {one_line(exc)}")
    finally:
        # A connection this check opened is not left to a forked worker; one in use stays.
        if opened_here:
            connection.close()


@setup_logging.connect
def use_django_logging(loglevel=None, **kwargs):
    # With a receiver here Celery leaves logging alone: one root handler, no line written twice.
    configure(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
