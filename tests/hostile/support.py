"""What the hostile-input tests share: the gateway app over fakes, and the two fuzzing budgets.

Every test here runs twice over: once with a short budget in the default run (CI's ``pytest -q``)
and once with a long one behind the ``hostile_long`` marker (``pytest -m hostile_long
tests/hostile``), so the long variants are the same properties with more examples.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from starlette.applications import Starlette

from classtrace.v1 import events_pb2 as pb
from producers.gateway.app import GatewayConfig, build_app
from producers.gateway.auth import Binding, StaticDirectory
from tests.helpers.gateway_http import FakePublisher

TOKEN = "tok-hostile-A"
BINDING = Binding("sch-A", "room-1", "tab-1", pb.DEVICE_KIND_TABLET)
EVENTS_TOPIC, DEADLETTER_TOPIC = "ev", "dl"

SHORT, LONG = 200, 20_000
BUDGETS = [
    pytest.param(SHORT, id="short"),
    pytest.param(LONG, id="long", marks=[pytest.mark.hostile_long, pytest.mark.timeout(3600)]),
]
"""Parametrize a test on ``budget`` with these; :func:`budget_settings` makes its settings."""


def budget_settings(budget: int) -> settings:
    """Hypothesis settings for ``budget`` examples: no deadline (the machine is shared), no
    example database for the long run (it would fill the database with the long run's corpus)."""
    return settings(
        max_examples=budget,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        database=None if budget > SHORT else settings().database,
    )


def gateway_app(publisher: FakePublisher) -> Starlette:
    """The real gateway app with one registered device (:data:`TOKEN` → :data:`BINDING`)."""
    return build_app(
        GatewayConfig("unused:9092", events_topic=EVENTS_TOPIC, deadletter_topic=DEADLETTER_TOPIC),
        directory=StaticDirectory({TOKEN: BINDING}),
        publisher=publisher,
    )
