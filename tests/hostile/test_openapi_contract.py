"""docs/openapi.yaml against the gateway app, in-process: schemathesis generates requests from
the document (valid ones and ones that break it) and checks every answer: no 5xx, only
documented status codes, content types and bodies as documented, schema-breaking requests refused.

Requests go with the registered device token (so the ingest path runs, publishing to a fake Kafka)
and without one. Where schemathesis found the gateway and the document disagreeing, the case is
kept as a regular test below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs  # schemathesis's own validator: no dependency of its own
import pytest
import schemathesis
import yaml  # type: ignore[import-untyped]
from hypothesis import given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from classtrace.codec import batch_from_json
from classtrace.errors import DecodeError
from tests.hostile.support import BUDGETS, TOKEN, FakePublisher, budget_settings, gateway_app

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
# Every documented refusal is a valid answer to a request that breaks the document: 413 (body over
# 1 MiB, more than 1000 events) and 408 are not in schemathesis's default list.
CONFIG = schemathesis.Config.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": ["400", "401", "408", "413", "415", "429"]}}}
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]


def _schema(publisher: FakePublisher) -> Any:
    schema = schemathesis.openapi.from_path(OPENAPI, config=CONFIG)
    schema.app = gateway_app(publisher)
    return schema


def test_the_gateway_serves_the_document_tested_here():
    with TestClient(gateway_app(FakePublisher())) as client:
        assert client.get("/openapi.yaml").text == OPENAPI.read_text()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
@pytest.mark.parametrize("authenticated", [True, False], ids=["device-token", "no-token"])
@pytest.mark.parametrize("budget", BUDGETS)
def test_every_operation_answers_as_documented(budget, mode, authenticated):
    publisher = FakePublisher()
    schema = _schema(publisher)
    headers = {"Authorization": f"Bearer {TOKEN}"} if authenticated else None

    @budget_settings(budget // 4)  # four combinations share the budget
    @given(schema.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        if not authenticated and case.operation.label == "POST /v1/events":
            # 401, or 429 once this address has failed too often (the limiter counts these requests)
            assert response.status_code in (401, 429)
            assert publisher.records == []

    check()


# --- disagreements schemathesis found (docs/openapi.yaml vs producers/gateway, issue 17), fixed ---

_EVENT_BATCH_JSON = yaml.safe_load(OPENAPI.read_text())["components"]["schemas"]["EventBatchJson"]


def _documented(body: object) -> bool:
    return bool(jsonschema_rs.validator_for(_EVENT_BATCH_JSON).is_valid(body))


@pytest.mark.parametrize(
    "body",
    [
        b'{"events": [""]}',
        b'{"events": [[]]}',
        b'{"events": [{"trace": ""}]}',
        b'{"events": [{"heartbeat": []}]}',
    ],
    ids=["event-empty-string", "event-empty-array", "trace-empty-string", "heartbeat-empty-array"],
)
def test_a_message_that_is_not_a_json_object_is_undecodable(body):
    with pytest.raises(DecodeError):
        batch_from_json(body)


def test_null_events_agree_with_the_document():
    publisher = FakePublisher()
    with TestClient(gateway_app(publisher)) as client:
        response = client.post(
            "/v1/events",
            content=b'{"events": null}',
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
    assert (response.status_code == 200) == _documented({"events": None})
