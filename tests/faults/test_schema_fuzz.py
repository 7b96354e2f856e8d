"""schemathesis against the OpenAPI schema: generated requests never get a 5xx, and
responses match the schema. A slow suite: SQLite and PostgreSQL, local storage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from registry.client.local import LocalClient
from registry.runtime import Runtime
from registry.server import create_app


@pytest.fixture
def api_schema(
    runtime: Runtime, adapter_library: dict[str, Path], base_library: dict[str, Path]
) -> Iterator[Any]:
    c = LocalClient(runtime)
    c.add_base("tiny-llama", str(base_library["tiny"]))
    c.push(adapter_library["v1"], "acme/a")
    c.push(adapter_library["v2"], "acme/a")
    c.promote("acme/a:1", to="production")
    app = create_app(runtime, background=False)

    async def on_localhost(scope: Any, receive: Any, send: Any) -> None:
        # An open server answers loopback Host names only; the ASGI transport says "testserver".
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            scope = {**scope, "headers": [*headers, (b"host", b"localhost")]}
        await app(scope, receive, send)

    yield schemathesis.openapi.from_asgi("/openapi.json", on_localhost)


pytestmark = [pytest.mark.slow, pytest.mark.parametrize("storage_backend", ["local"])]


def test_no_server_errors_and_schema_conformance(api_schema: Any) -> None:
    """Every operation, 25 generated requests each (hypothesis drives it directly: the
    schemathesis pytest plugin does not yet run under pytest 9)."""
    failures: list[str] = []
    operations = [r.ok() for r in api_schema.get_all_operations()]
    assert len(operations) > 30
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: Any) -> None:
            if case.query and "wait" in case.query:
                case.query["wait"] = 0  # a long poll waiting its full minute proves nothing here
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:800]}")
    assert failures == [], "\n\n".join(failures)
