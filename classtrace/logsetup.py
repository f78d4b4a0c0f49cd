"""Logging configuration: the only place that installs handlers (libraries only get loggers)."""

from __future__ import annotations

import logging

__all__ = ["configure_logging"]

_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(level: str = "INFO") -> None:
    """Send classtrace's logs to stderr at ``level``; noisy libraries are held at WARNING."""
    logging.basicConfig(level=level, format=_FORMAT, force=True)
    for noisy in ("aiokafka", "faust", "mode", "kafka", "urllib3", "httpx", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
