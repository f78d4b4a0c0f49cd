"""Delivery paths of a simulation: device tokens for the gateway, transports for either target.

With ``--target gateway`` every simulated device needs a bearer token, as a real one would from
``classtrace devices add``. Tokens are registered here through :mod:`producers.registry` (the
same call that command makes) and kept in ``<data dir>/simulator/tokens.json`` (mode 0600), so a
second run of the same classrooms reuses them instead of registering again — the registry is
restored by ``classtrace up`` from the data dir, so the stored tokens stay valid across restarts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

from classtrace.identity import device_key
from classtrace.signing import RecordKey
from producers.registry import register_devices
from producers.transport.http import HttpTransport
from producers.transport.kafka import KafkaTransport
from smart_classroom_agents.classroom import classroom_devices
from smart_classroom_agents.outlets import EdgeOutlet
from smart_classroom_agents.timetable import Classroom

__all__ = ["TOKENS_FILE", "device_tokens", "edge_outlet"]

logger = logging.getLogger(__name__)

TOKENS_FILE = "tokens.json"


def _load(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _store(path: Path, tokens: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(dict(tokens), out, indent=1)
    os.replace(tmp, path)


def device_tokens(
    rooms: list[Classroom],
    bootstrap: str,
    options: Mapping[str, str] | None,
    sim_dir: Path,
    registry_dir: Path | None,
    record_key: RecordKey | None = None,
) -> dict[str, str]:
    """``school_id/device_id`` → token for every device of ``rooms``, registering the ones not known yet.

    ``registry_dir`` is the embedded stack's data dir (its durable registry copy), None on a
    production Kafka where the topic is the record.
    """
    path = sim_dir / TOKENS_FILE
    tokens = _load(path)
    wanted = [
        (device.school_id, device.classroom_id, device.device_id, device.kind)
        for room in rooms
        for device in classroom_devices(room).all()
        if device_key(device.school_id, device.device_id) not in tokens
    ]
    registered = register_devices(bootstrap, options, wanted, data_dir=registry_dir, record_key=record_key)
    for token, reg in registered:
        tokens[device_key(reg.school_id, reg.device_id)] = token
    added = len(registered)
    if added:
        _store(path, tokens)
        logger.info("simulator devices registered new=%d total=%d", added, len(tokens))
    return tokens


def edge_outlet(
    target: str,
    rooms: list[Classroom],
    *,
    bootstrap: str,
    kafka_options: Mapping[str, str] | None,
    gateway_url: str,
    sim_dir: Path,
    registry_dir: Path | None,
    region_secret: bytes,
    record_key: RecordKey | None = None,
) -> EdgeOutlet:
    """An :class:`EdgeOutlet` over the gateway (HTTP + tokens) or straight into Kafka.

    ``record_key`` (the stack's, classtrace/signing.py) signs the device registrations, as
    ``classtrace devices add`` does, and, with ``kafka``, the event records: the simulator runs as
    the stack's owner and writes Kafka as the SDK, a trusted writer, does.
    """
    if target == "gateway":
        tokens = device_tokens(rooms, bootstrap, kafka_options, sim_dir, registry_dir, record_key)
        transport: HttpTransport | KafkaTransport = HttpTransport(gateway_url, tokens)
    elif target == "kafka":
        transport = KafkaTransport(bootstrap, kafka_options, record_key=record_key)
    else:
        raise ValueError(f"unknown target {target!r}: expected gateway or kafka")
    return EdgeOutlet(transport, sim_dir / "spool", region_secret)
