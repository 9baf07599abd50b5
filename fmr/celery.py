import logging
import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")

app = Celery("fmr")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
