"""The HTTP API fuzzed from its own OpenAPI description (schemathesis): whatever comes in,
no server error, no framework 422, and every refusal in the Open311 error format.

Schemathesis's own pytest plugin does not run under pytest 9 (it reads `Function._nodeid`),
so each operation's strategy is drawn with Hypothesis directly."""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance
from schemathesis.core.result import Ok

from bot.interop import apikeys
from bot.runtime import Runtime
from griddesk.app import build_application
from griddesk.http.app import build_http_app
from tests.fakebot import FakeBotAPI


def test_the_api_never_fails_or_answers_out_of_format(rt: Runtime, api: FakeBotAPI) -> None:
    # No post_init: no background senders, so the fuzzer's own event loop (Starlette's test
    # client runs the app in a thread) shares nothing with another.
    application = build_application(rt, request=api)
    apikeys.create(rt, "fuzzer")
    schema = schemathesis.openapi.from_asgi("/openapi.json", build_http_app(application))
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    assert len(operations) >= 9
    seen: set[int] = set()

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
        )
        def fuzz(case: schemathesis.Case) -> None:
            response = case.call()
            seen.add(response.status_code)
            assert response.status_code != 422, response.text
            case.validate_response(
                response, checks=[not_a_server_error, content_type_conformance, response_schema_conformance]
            )
            if response.status_code >= 400:
                body: Any = response.json()
                assert isinstance(body, list) and body and {"code", "description"} <= set(body[0]), response.text

        fuzz()
    assert {200, 403, 404} <= seen, seen  # the fuzzer reached answers and refusals alike
