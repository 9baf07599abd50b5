"""gunicorn's settings for fmr: `gunicorn fmr.wsgi --config deploy/gunicorn.conf.py ...`.

gunicorn's own lines (start-up, workers, one per request) go through the project's logging like
every other process's: ISO 8601 times with the +09:00 offset, in CLEANUP_LOG_FORMAT. Loading the
settings here, in the master, makes Django set TZ to TIME_ZONE in the master as it does in each
worker, so the master and its workers agree on the zone.
"""

import os

from fmr.boot import settings_problem

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")

# On unusable settings each worker says why in one line and stops the master (fmr/wsgi.py).
if not settings_problem():
    from django.conf import settings

    # No handlers of gunicorn's own: its loggers hand every line to the project's root handler.
    logconfig_dict = {
        **settings.LOGGING,
        "loggers": {
            **settings.LOGGING.get("loggers", {}),
            "gunicorn.error": {"handlers": [], "propagate": True},
            "gunicorn.access": {"handlers": [], "propagate": True},
        },
    }
# The line's time comes from the formatter; the path without its query string, which can
# carry what someone searched the admin for.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
