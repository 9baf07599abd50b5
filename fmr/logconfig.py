import logging.config


def configure(config: dict) -> None:
    """settings.LOGGING for every process (LOGGING_CONFIG; fmr/celery.py), Python warnings too, so
    a warning is written by the one root handler in the same format (JSON: one object a line)."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
