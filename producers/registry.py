"""The device registry: who may post events, as events on the compacted ``classtrace.devices.v1``.

A registration binds a bearer token to (school, classroom, device). Only the token's SHA-256 is
stored anywhere; the token itself is shown once by ``classtrace devices add``. The topic is the
registry (key ``<school_id>/<device_id>``, value ``DeviceRegistration``; the latest record per key
wins, a revocation is a registration with ``revoked`` set), and every gateway materialises it
(:mod:`producers.gateway.auth`).

Tansu keeps its log in memory, so the embedded stack also keeps every registration it publishes
in ``<data dir>/devices.jsonl`` (hashes only, mode 0600); :func:`restore_registry` publishes them
again when ``classtrace up`` starts, and a restarted stack accepts the tokens it issued before
(docs/DESIGN.md §2). With a production Kafka the topic alone is the durable record.

Given the stack's record key (classtrace/signing.py), every registration is signed and readers
ignore one that is not: on the embedded broker, which has no ACLs, whoever reaches its port could
otherwise register a device of any school.

Readers read the topic to its end with :func:`classtrace.kafka.read_compacted` (the gateway
follows it with :class:`classtrace.kafka.CompactedTopicReader`); tokens are made and hashed by
:mod:`classtrace.tokens`, as the dashboard's viewer tokens are.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import orjson
from google.protobuf import json_format

from classtrace.codec import set_ts_now
from classtrace.errors import BrokerError, ValidationError
from classtrace.identity import device_key
from classtrace.kafka import KafkaError, Producer, make_producer, read_compacted
from classtrace.signing import RecordKey
from classtrace.tokens import new_token, token_hash
from classtrace.topics import DEVICES
from classtrace.v1 import events_pb2 as pb
from classtrace.v1 import pipeline_pb2 as ppb
from classtrace.validation import ID_PATTERN
from producers.errors import RegistryError, UnknownDevice

__all__ = [
    "REGISTRY_FILE",
    "RegistryFile",
    "apply_record",
    "parse_kind",
    "read_registrations",
    "register_device",
    "register_devices",
    "registry_key",
    "restore_registry",
    "revoke_device",
]

logger = logging.getLogger(__name__)

REGISTRY_FILE = "devices.jsonl"
_ID = re.compile(ID_PATTERN).fullmatch


def registry_key(school_id: str, device_id: str) -> str:
    """The topic key of a device: :func:`classtrace.identity.device_key` (``school/device``; device
    ids like ``cam-01`` repeat across schools)."""
    return device_key(school_id, device_id)


def parse_kind(text: str) -> pb.DeviceKind.ValueType:
    """``camera``, ``CAMERA`` or ``DEVICE_KIND_CAMERA`` → the DeviceKind value."""
    name = text.strip().upper().replace("-", "_")
    if not name.startswith("DEVICE_KIND_"):
        name = "DEVICE_KIND_" + name
    names = [n for n, v in pb.DeviceKind.items() if v]
    if name not in names:
        choices = ", ".join(n.removeprefix("DEVICE_KIND_").lower() for n in names)
        raise ValidationError("kind", f"unknown device kind {text!r} (one of {choices})")
    return pb.DeviceKind.Value(name)


# -- the data-dir copy -----------------------------------------------------------------------------


class RegistryFile:
    """Append-only JSON lines of registrations under the data dir (hashes only, mode 0600)."""

    def __init__(self, data_dir: str | Path) -> None:
        self.path = Path(data_dir) / REGISTRY_FILE

    def append(self, registration: ppb.DeviceRegistration) -> None:
        """Add one registration (or revocation) durably."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps(json_format.MessageToDict(registration, preserving_proto_field_name=True))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def load(self) -> dict[str, ppb.DeviceRegistration]:
        """The latest registration per device; unreadable lines are skipped with a warning."""
        latest: dict[str, ppb.DeviceRegistration] = {}
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return latest
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                reg = json_format.ParseDict(orjson.loads(line), ppb.DeviceRegistration())
            except (ValueError, json_format.ParseError) as exc:
                logger.warning("skipping bad registry line path=%s line=%d: %s", self.path, number, exc)
                continue
            latest[registry_key(reg.school_id, reg.device_id)] = reg
        return latest


# -- the topic -------------------------------------------------------------------------------------


def _publish(
    bootstrap: str,
    options: Mapping[str, str] | None,
    topic: str,
    registrations: Iterable[ppb.DeviceRegistration],
    record_key: RecordKey | None = None,
) -> int:
    producer: Producer = make_producer(bootstrap, options, **{"message.timeout.ms": 15000})
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err.str())

    count = 0
    for reg in registrations:
        key = registry_key(reg.school_id, reg.device_id)
        value = reg.SerializeToString()
        headers = record_key.headers(topic, key, value) if record_key else None
        producer.produce(topic, value, key=key, headers=headers, on_delivery=on_delivery)
        count += 1
    remaining = producer.flush(20.0)
    if errors or remaining:
        raise RegistryError(
            f"cannot publish to {topic} on {bootstrap}: {errors[0] if errors else 'timed out'}"
        )
    return count


def read_registrations(
    bootstrap: str,
    options: Mapping[str, str] | None = None,
    topic: str = DEVICES,
    timeout: float = 15.0,
    *,
    record_key: RecordKey | None = None,
) -> dict[str, ppb.DeviceRegistration]:
    """The current registry: the latest registration per device, read from the start of ``topic``
    (with ``record_key``, signed records only)."""
    latest: dict[str, ppb.DeviceRegistration] = {}

    def handle(key: bytes | None, value: bytes | None) -> None:
        apply_record(latest, key, value)

    try:
        read_compacted(
            bootstrap, topic, handle, options, timeout=timeout, name="devices", record_key=record_key
        )
    except BrokerError as exc:
        raise RegistryError(f"timed out reading {topic} on {bootstrap}: {exc}") from exc
    except Exception as exc:
        raise RegistryError(f"cannot read {topic} on {bootstrap}: {exc}") from exc
    return latest


def apply_record(
    latest: dict[str, ppb.DeviceRegistration], key: bytes | str | None, value: bytes | None
) -> ppb.DeviceRegistration | None:
    """Fold one registry record into ``latest``; returns the registration (None for a tombstone)."""
    name = key.decode() if isinstance(key, bytes) else (key or "")
    if value is None:
        latest.pop(name, None)
        return None
    try:
        reg = ppb.DeviceRegistration.FromString(value)
    except Exception:
        logger.warning("skipping undecodable registry record key=%s", name)
        return None
    latest[name or registry_key(reg.school_id, reg.device_id)] = reg
    return reg


def _new_registration(
    school_id: str, classroom_id: str, device_id: str, kind: pb.DeviceKind.ValueType
) -> tuple[str, ppb.DeviceRegistration]:
    for field, value in (("school", school_id), ("classroom", classroom_id), ("device", device_id)):
        if _ID(value) is None:
            raise ValidationError(field, f"must be 1–64 characters of [A-Za-z0-9_.:-], got {value!r}")
    token = new_token()
    reg = ppb.DeviceRegistration(
        school_id=school_id,
        classroom_id=classroom_id,
        device_id=device_id,
        device_kind=kind,
        token_sha256=token_hash(token),
    )
    set_ts_now(reg.created_at)
    return token, reg


def register_devices(
    bootstrap: str,
    options: Mapping[str, str] | None,
    devices: Iterable[tuple[str, str, str, pb.DeviceKind.ValueType]],
    *,
    topic: str = DEVICES,
    data_dir: Path | None = None,
    record_key: RecordKey | None = None,
) -> list[tuple[str, ppb.DeviceRegistration]]:
    """Register many ``(school_id, classroom_id, device_id, kind)`` at once: one producer, one flush.

    Every id is checked before anything is published, so a bad one registers none. Returns
    ``(token, registration)`` pairs in input order; the tokens exist only in the return value.
    """
    made = [_new_registration(*device) for device in devices]
    if not made:
        return []
    _publish(bootstrap, options, topic, [reg for _token, reg in made], record_key)
    if data_dir is not None:
        registry_file = RegistryFile(data_dir)
        for _token, reg in made:
            registry_file.append(reg)
    for _token, reg in made:
        logger.info(
            "device registered school=%s classroom=%s device=%s",
            reg.school_id,
            reg.classroom_id,
            reg.device_id,
        )
    return made


def register_device(
    bootstrap: str,
    options: Mapping[str, str] | None,
    *,
    school_id: str,
    classroom_id: str,
    device_id: str,
    kind: pb.DeviceKind.ValueType = pb.DEVICE_KIND_GATEWAY_SIM,
    topic: str = DEVICES,
    data_dir: Path | None = None,
    record_key: RecordKey | None = None,
) -> tuple[str, ppb.DeviceRegistration]:
    """Register (or re-register, rotating the token) a device; returns ``(token, registration)``.

    The token exists only in the return value. ``data_dir`` also records the registration there
    (the embedded stack's durable copy).
    """
    devices = [(school_id, classroom_id, device_id, kind)]
    return register_devices(
        bootstrap, options, devices, topic=topic, data_dir=data_dir, record_key=record_key
    )[0]


def revoke_device(
    bootstrap: str,
    options: Mapping[str, str] | None,
    *,
    school_id: str,
    device_id: str,
    topic: str = DEVICES,
    data_dir: Path | None = None,
    record_key: RecordKey | None = None,
) -> ppb.DeviceRegistration:
    """Revoke a device's token; gateways stop accepting it within seconds."""
    registrations = read_registrations(bootstrap, options, topic, record_key=record_key)
    current = registrations.get(registry_key(school_id, device_id))
    if current is None and data_dir is not None:
        current = RegistryFile(data_dir).load().get(registry_key(school_id, device_id))
    if current is None:
        raise UnknownDevice(school_id, device_id)
    reg = ppb.DeviceRegistration()
    reg.CopyFrom(current)
    reg.revoked = True
    set_ts_now(reg.revoked_at)
    _publish(bootstrap, options, topic, [reg], record_key)
    if data_dir is not None:
        RegistryFile(data_dir).append(reg)
    logger.info("device revoked school=%s device=%s", school_id, device_id)
    return reg


def restore_registry(
    data_dir: str | Path,
    bootstrap: str,
    options: Mapping[str, str] | None = None,
    topic: str = DEVICES,
    *,
    record_key: RecordKey | None = None,
) -> int:
    """Publish the data dir's registrations into ``topic`` again (signed); returns how many.

    ``classtrace up`` calls it after creating the topics of a fresh embedded broker, before the
    gateway starts, so tokens issued before a restart keep working (revocations included).
    """
    latest = RegistryFile(data_dir).load()
    if not latest:
        return 0
    count = _publish(bootstrap, options, topic, latest.values(), record_key)
    logger.info("device registry restored registrations=%d from=%s", count, data_dir)
    return count
