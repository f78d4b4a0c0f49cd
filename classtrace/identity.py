"""The keys of a classroom and of a lesson (docs/DESIGN.md §8): one home for how they are spelled.

Room numbers, lesson ids and teacher ids repeat across schools, so a classroom is
``(school_id, classroom_id)`` and a lesson ``(school_id, lesson_id)`` in every record key, state
key, URL and table. Ids never contain ``/`` (validation's id rule is ``[A-Za-z0-9_.:-]``), so
joining with ``/`` is unambiguous and :func:`split_room` inverts :func:`room_key`.

>>> room_key("sch-1", "C101")
'sch-1/C101'
>>> split_room("sch-1/C101")
('sch-1', 'C101')
"""

from __future__ import annotations

__all__ = ["SEPARATOR", "device_key", "room_key", "split_room"]

SEPARATOR = "/"


def room_key(school_id: str, classroom_id: str) -> str:
    """The key of a classroom: the Kafka record key of its events and metrics, and its state key."""
    return f"{school_id}{SEPARATOR}{classroom_id}"


def device_key(school_id: str, device_id: str) -> str:
    """The key of a device: the device registry's record key, and how a token is found for it.

    Device ids, like room numbers, are only unique within a school.
    """
    return f"{school_id}{SEPARATOR}{device_id}"


def split_room(key: str) -> tuple[str, str]:
    """``(school_id, classroom_id)`` of a :func:`room_key`.

    Raises ValueError for a key without a school part (a record keyed by the classroom alone, as
    versions before 0.3 wrote): its school cannot be told, so it must not be guessed.
    """
    school, sep, classroom = key.partition(SEPARATOR)
    if not sep or not school or not classroom or SEPARATOR in classroom:
        raise ValueError(f"not a school/classroom key: {key!r}")
    return school, classroom
