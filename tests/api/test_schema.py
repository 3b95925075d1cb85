"""Property-based requests from the OpenAPI schema (schemathesis): never a 5xx.

Every operation gets generated requests (valid and invalid) with an admin key; the
only check is that the server never answers 5xx. Derandomized, so a run is repeatable.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from podmill.api.app import create_app
from podmill.settings import Settings

from support.api import LiveFeed

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402

EXAMPLES = 25


def test_no_operation_answers_5xx(api_settings: Settings, live_feed: LiveFeed) -> None:
    app = create_app(api_settings)
    service = app.state.platform
    service.create_tenant("root", admin=True)
    _id, key = service.create_key("root")
    service.subscribe(service.tenant("root"), live_feed.url)  # something to find
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {key}"}
    # GET /events never ends (server-sent events): tests/api/test_events.py reads it
    operations = [
        op for op in (result.ok() for result in schema.get_all_operations()) if op.path != "/events"
    ]
    assert len(operations) >= 17

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def no_server_error(case) -> None:  # type: ignore[no-untyped-def]
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        no_server_error()
