"""Durable edge spools: where events wait between ``send_events`` and the broker's acknowledgement."""

from producers.spool.base import NewChunk, Spool, SpoolChunk, SpoolStats
from producers.spool.sqlite import SQLiteSpool

__all__ = ["NewChunk", "SQLiteSpool", "Spool", "SpoolChunk", "SpoolStats"]
