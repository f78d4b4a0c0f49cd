"""Gateway transport: one ``POST /v1/events`` per device and flush, bearer token of that device.

For devices that cannot run librdkafka. The gateway's 200 means the accepted events are in Kafka
(acks=all); events it refused one by one are reported in the body and dead-lettered by the
gateway, so they are acknowledged too (retrying cannot change a validation verdict). Whole-request
refusals split in two: 400/413/415 can never pass (:class:`RejectedBatch`, the sender quarantines
the chunk), while 401 (a registration not yet seen by this gateway), 429, 5xx and network errors
are retried with backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import httpx
import orjson

from classtrace.identity import device_key
from producers.errors import RejectedBatch, TransportError
from producers.transport.base import Delivery, Outbound

__all__ = ["MAX_BODY_BYTES", "HttpTransport"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # the gateway's limit (docs/DESIGN.md §5)
_FATAL = frozenset({400, 413, 415})


class HttpTransport:
    """POST spooled batches to a gateway at ``base_url`` (``http://host:8080``).

    ``tokens`` maps a device to its bearer token, since a gateway token binds one device: by
    :func:`~classtrace.identity.device_key` (``school_id/device_id``, for a transport shared by
    several schools' devices, whose ids may repeat) or by device_id alone; or it is a function of
    ``(school_id, device_id)``.
    """

    per_device = True
    max_record_bytes = MAX_BODY_BYTES - 4096

    def __init__(
        self,
        base_url: str,
        tokens: Mapping[str, str] | Callable[[str, str], str],
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/v1/events"
        self._token = tokens if callable(tokens) else _lookup(tokens)
        self._owns_client = client is None
        self._client = client or httpx.Client(timeout=timeout)

    def send(self, records: Sequence[Outbound]) -> list[Delivery]:
        """One request per record; a failure does not stop the records after it."""
        return [self._send_one(r) for r in records]

    def _send_one(self, record: Outbound) -> Delivery:
        try:
            token = self._token(record.school_id, record.device_id)
        except KeyError:
            return Delivery(TransportError(f"no token for device {record.device_id!r}"))
        headers = {"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {token}"}
        try:
            response = self._client.post(self.url, content=record.payload, headers=headers)
        except httpx.HTTPError as exc:
            return Delivery(TransportError(f"gateway unreachable at {self.url}: {exc!r}"))
        status = response.status_code
        if status == 200:
            try:
                body = orjson.loads(response.content)
                rejected = body.get("rejected") or []
            except (orjson.JSONDecodeError, AttributeError):
                return Delivery(TransportError("gateway answered 200 with an unreadable body"))
            for item in rejected[:5]:
                logger.warning(
                    "gateway rejected event_id=%s device=%s error=%s",
                    item.get("event_id"),
                    record.device_id,
                    item.get("error"),
                )
            return Delivery(rejected=len(rejected))
        message = _error_text(response)
        if status in _FATAL:
            return Delivery(RejectedBatch(status, message))
        retry_after = _retry_after(response)
        return Delivery(TransportError(f"gateway answered HTTP {status}: {message}", retry_after))

    def close(self) -> None:
        """Close the HTTP client if this transport made it."""
        if self._owns_client:
            self._client.close()


def _error_text(response: httpx.Response) -> str:
    try:
        body = orjson.loads(response.content)
        return str(body.get("error", body)) if isinstance(body, dict) else str(body)
    except orjson.JSONDecodeError:
        return response.text[:200]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _lookup(tokens: Mapping[str, str]) -> Callable[[str, str], str]:
    """Find a device's token by school/device first, then by device id (KeyError if neither)."""

    def token(school_id: str, device_id: str) -> str:
        found = tokens.get(device_key(school_id, device_id))
        return found if found is not None else tokens[device_id]

    return token
