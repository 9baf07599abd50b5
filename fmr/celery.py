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
    # Sent when Celery first reads its configuration, before it loads Django's settings: the
    # worker and beat then stop in one line on bad settings instead of a traceback. (Not at
    # import: fmr/__init__.py imports this module while fmr/settings.py is being loaded.)
    from .boot import settings_or_exit

    settings_or_exit("celery")


@import_modules.connect
def refuse_without_database(sender=None, **kwargs):
    # Sent as a worker or beat loads its task modules, before beat reads its schedule or the
    # worker says ready: without a database neither can do anything but fail every purge, so
    # each stops in one line and its service manager starts it again until the database answers.
    from .boot import database_or_exit

    database_or_exit("celery")


@setup_logging.connect
def use_django_logging(loglevel=None, **kwargs):
    # With a receiver here Celery leaves logging alone: the worker and beat log through the
    # project's one root handler (settings.LOGGING), so no line is written twice. `--loglevel`
    # still sets the root level.
    from django.conf import settings

    from .logconfig import configure

    configure(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
