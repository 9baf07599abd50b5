import logging.config


def configure(config: dict) -> None:
    """LOGGING_CONFIG for every process; Python warnings go through the one root handler too."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
