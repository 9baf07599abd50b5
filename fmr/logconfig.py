"""How every process (web, worker, beat, commands) applies settings.LOGGING.

Django calls this at start-up (settings.LOGGING_CONFIG), and so does the Celery worker and beat
(fmr/celery.py). Python warnings become log records too (logger py.warnings), so a warning such
as Celery's "running the worker with superuser privileges" is written by the one root handler,
in the same format as every other line: with CLEANUP_LOG_FORMAT=json, one JSON object per line,
never a bare multi-line text.
"""

import logging
import logging.config


def configure(config: dict) -> None:
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
