"""Locust users for both ingest paths; run by :mod:`loadtests.runner` (``classtrace loadtest``).

* :class:`GatewayUser` posts protobuf ``EventBatch`` bodies to ``POST /v1/events`` with its
  device's bearer token (FastHttpUser: geventhttpclient, the cheapest client Locust has).
* :class:`KafkaUser` produces the same batches straight to ``classtrace.events.v1`` through the
  Kafka seam (:mod:`classtrace.kafka`, idempotent acks=all), key = classroom_id — what an
  EdgeProducer with a Kafka transport does.

The runner passes everything in a JSON file named by ``CLASSTRACE_LOADTEST_CONFIG`` (devices with
their tokens, target URLs, batch size, where to write the tallies). Each user takes the next
device of the list. Tallies of events (acknowledged, rejected, failed) are written to
``result_path`` when Locust quits, since Locust's own statistics count requests, not events.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, cast

import orjson
from locust import User, between, events, task
from locust.contrib.fasthttp import FastHttpUser

from classtrace.identity import room_key
from classtrace.kafka import KafkaError, Message, make_producer
from classtrace.signing import RecordKey
from classtrace.topics import EVENTS
from loadtests.traffic import BatchFactory, LoadDevice, template_events

__all__ = ["GatewayUser", "KafkaUser"]

CONFIG: dict[str, Any] = json.loads(Path(os.environ["CLASSTRACE_LOADTEST_CONFIG"]).read_text())
# The stack's record key (classtrace/signing.py): a Kafka user stands in for the SDK, a trusted writer.
RECORD_KEY = RecordKey.parse(CONFIG["record_key"]) if CONFIG.get("record_key") else None
DEVICES = [LoadDevice(**{k: v for k, v in d.items() if k != "token"}) for d in CONFIG["devices"]]
TOKENS = {d["device_id"]: d.get("token", "") for d in CONFIG["devices"]}
TEMPLATES = template_events(seed=int(CONFIG.get("seed", 0)))
BATCH = int(CONFIG.get("batch_size", 100))
_next_device = itertools.count()
TALLY = {"acked": 0, "rejected": 0, "failed": 0, "requests": 0}
RETRY = bool(CONFIG.get("retry"))
"""Fault runs (``--faults``): a failed request is retried with the same batch, as an edge device's
spool does, and each device's acknowledged event counters are recorded as ranges, so the runner
can tell acknowledged events from ones that landed without an acknowledgement."""
RETRY_PAUSE_S = 0.5
ACKED: dict[int, list[list[int]]] = {}
SENT_UPTO: dict[int, int] = {}


def _acked(device: int, first: int, n: int) -> None:
    """Record counters first..first+n-1 of ``device`` as acknowledged (adjacent ranges merged)."""
    ranges = ACKED.setdefault(device, [])
    if ranges and ranges[-1][1] + 1 == first:
        ranges[-1][1] = first + n - 1
    else:
        ranges.append([first, first + n - 1])


def _device() -> LoadDevice:
    return DEVICES[next(_next_device) % len(DEVICES)]


def _write_tally(environment: Any, **_kw: Any) -> None:
    tally: dict[str, Any] = {**TALLY, "batch_size": BATCH, "time": time.time()}
    if RETRY:
        tally |= {"acked_ranges": ACKED, "sent_upto": SENT_UPTO}
    Path(CONFIG["result_path"]).write_text(json.dumps(tally))


events.quitting.add_listener(_write_tally)  # type: ignore[no-untyped-call]


class GatewayUser(FastHttpUser):
    """A classroom device posting batches of ~100 events as fast as the gateway answers."""

    host = CONFIG.get("gateway_url", "http://127.0.0.1:8080")
    wait_time = between(0, 0)
    connection_timeout = 10.0
    network_timeout = 30.0

    def on_start(self) -> None:
        """Bind to a device and its token."""
        self.device = _device()
        self.factory = BatchFactory(self.device, TEMPLATES, BATCH)
        self.headers = {
            "Authorization": f"Bearer {TOKENS[self.device.device_id]}",
            "Content-Type": "application/x-protobuf",
        }

    @task
    def post_batch(self) -> None:
        """One request; a non-200 counts all its events as failed (they may still have landed)."""
        first = self.factory.counter + 1
        body, n = self.factory.next_batch()
        if RETRY:
            self._post_until_acked(body, n, first)
            return
        TALLY["requests"] += 1
        with self.client.post(
            "/v1/events",
            data=cast(Any, body),
            headers=self.headers,
            name="POST /v1/events",
            catch_response=True,
        ) as response:
            if response.status_code == 200:
                rejected = len(orjson.loads(response.content or b"{}").get("rejected", []))
                TALLY["acked"] += n
                TALLY["rejected"] += rejected
                response.success()
            else:
                TALLY["failed"] += n
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")

    def _post_until_acked(self, body: bytes, n: int, first: int) -> None:
        """Post until a 200 (or a 4xx other than 429); events count as failed until acknowledged,
        so a user stopped mid-retry leaves them unacknowledged, not uncounted."""
        index = self.device.index
        SENT_UPTO[index] = first + n - 1
        TALLY["failed"] += n
        while True:
            TALLY["requests"] += 1
            with self.client.post(
                "/v1/events",
                data=cast(Any, body),
                headers=self.headers,
                name="POST /v1/events",
                catch_response=True,
            ) as response:
                status = response.status_code
                if status == 200:
                    TALLY["failed"] -= n
                    TALLY["acked"] += n
                    TALLY["rejected"] += len(orjson.loads(response.content or b"{}").get("rejected", []))
                    _acked(index, first, n)
                    response.success()
                    return
                response.failure(f"HTTP {status}: {(response.text or '')[:200]}")
            if 400 <= status < 500 and status != 429:
                return
            TALLY["retries"] = TALLY.get("retries", 0) + 1
            time.sleep(RETRY_PAUSE_S)


class KafkaUser(User):
    """A classroom producing EventBatch records straight into Kafka; latency = produce → ack."""

    wait_time = between(0, 0)

    def on_start(self) -> None:
        """One producer per user, like one EdgeProducer per classroom."""
        self.device = _device()
        self.factory = BatchFactory(self.device, TEMPLATES, BATCH)
        self.producer = make_producer(CONFIG["kafka_bootstrap"], CONFIG.get("kafka_options") or {})
        self.in_flight = 0

    def on_stop(self) -> None:
        """Wait for outstanding acks so the tally is complete."""
        self.producer.flush(30)

    @task
    def produce_batch(self) -> None:
        """Produce one record, serve delivery callbacks; keep at most 50 records in flight."""
        body, n = self.factory.next_batch()
        started = time.perf_counter()
        TALLY["requests"] += 1

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            self.in_flight -= 1
            elapsed_ms = (time.perf_counter() - started) * 1000
            if err is None:
                TALLY["acked"] += n
            else:
                TALLY["failed"] += n
            self.environment.events.request.fire(
                request_type="KAFKA",
                name=f"produce {EVENTS}",
                response_time=elapsed_ms,
                response_length=len(body),
                exception=None if err is None else RuntimeError(err.str()),
                context={},
            )

        key = room_key(self.device.school_id, self.device.classroom_id)
        headers = RECORD_KEY.headers(EVENTS, key, body) if RECORD_KEY else None
        self.producer.produce(EVENTS, body, key=key, headers=headers, on_delivery=on_delivery)
        self.in_flight += 1
        self.producer.poll(0)
        while self.in_flight > 50:
            self.producer.poll(0)  # never block: a blocking poll would stall every greenlet
            time.sleep(0.002)  # gevent-patched: lets the other users run
