"""classtrace: the shared core — settings, errors, schema bindings, Kafka and ClickHouse seams, CLI.

Stages (``producers``, ``stream_processors``, ``sinks``, …) import from here; this package imports
no stage.
"""

__version__ = "0.1.0"
