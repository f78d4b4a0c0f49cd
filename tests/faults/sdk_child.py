"""A device process for the kill -9 test: ``python -m tests.faults.sdk_child MODE BOOTSTRAP TOPIC SPOOL``.

``produce N``: spool N events of two devices (their ids written to ``SPOOL.ids``), then send them
in drains of 100 events, printing ``delivered <n>`` after each, slowly enough to be killed mid-send.
``resume M``: reopen the spool, spool M more events, send everything, print ``done``.
"""

from __future__ import annotations

import sys
import time

from classtrace.v1 import events_pb2 as pb
from producers.sdk import EdgeProducer
from producers.transport.kafka import KafkaTransport


def spool_events(edge: EdgeProducer, n: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, n, 50):
        events = []
        for i in range(start, min(n, start + 50)):
            ev = edge.event(f"tab-{i % 2}", pb.DEVICE_KIND_TABLET, lesson_id="les-1")
            ev.trace.student_id = f"stu-{i % 30}"
            ev.trace.verb = pb.LearningTrace.VERB_VIEWED
            events.append(ev)
        ids += edge.send_events(events)
    return ids


def main() -> int:
    mode, bootstrap, topic, spool, count = sys.argv[1:6]
    transport = KafkaTransport(bootstrap, topic=topic)
    edge = EdgeProducer(
        "sch-1", "room-1", transport, spool=spool, pseudonym_key=b"k", background=False, drain_events=100
    )
    ids = spool_events(edge, int(count))
    with open(spool + ".ids", "a") as out:
        out.write("".join(i + "\n" for i in ids))
    print("spooled", len(ids), flush=True)
    if mode == "produce":
        while edge.depth:
            edge.drain_once()
            print("delivered", edge.stats().delivered, flush=True)
            time.sleep(0.05)  # pace the sends so the parent can kill us mid-way
    else:
        edge.flush(timeout=60)
    print("done", flush=True)
    edge.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
