import logging
import os

from celery import Celery
from celery.signals import import_modules, setup_logging
from django.conf import settings

from .boot import database_or_exit, settings_or_exit
from .logconfig import configure

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")

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
    database_or_exit("celery")


@setup_logging.connect
def use_django_logging(loglevel=None, **kwargs):
    # With a receiver here Celery leaves logging alone: one root handler, no line written twice.
    configure(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
