import logging
import os

from celery import Celery
from celery.signals import import_modules, setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")

app = Celery("fmr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_configure.connect
def refuse_unusable_settings(sender=None, **kwargs):
    # Sent before Celery loads Django's settings, so bad settings stop the worker and beat in one
    # line. (Not at import: fmr/__init__.py imports this module while the settings load.)
    from .boot import settings_or_exit

    settings_or_exit("celery")


@import_modules.connect
def refuse_without_database(sender=None, **kwargs):
    # Sent before beat reads its schedule or the worker says ready: without a database either
    # would fail every purge, so it stops and its service manager restarts it until one answers.
    from .boot import database_or_exit

    database_or_exit("celery")


@setup_logging.connect
def use_django_logging(loglevel=None, **kwargs):
    # With a receiver here Celery leaves logging alone: one root handler (settings.LOGGING), so
    # no line is written twice. `--loglevel` still sets the root level.
    from django.conf import settings

    from .logconfig import configure

    configure(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
