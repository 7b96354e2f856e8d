"""schemathesis against the OpenAPI schema: generated requests never get a 5xx, and every
response conforms to the schema: a documented status code, a documented content type and
a body matching the documented schema (the error envelope included). Every operation of
``/openapi.json``, on SQLite and PostgreSQL, local storage. A slow suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry.client.local import LocalClient
from registry.merge import job_queue as jobs
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
    c.set_alias("acme/a", "champion", 2)
    c.experiment_create(
        "acme/a", "ab", variants=[("control", "1"), ("b", "2")], split="50,50", metric="ctr"
    )
    # A queued merge (no worker runs here), so the job routes answer one.
    job = jobs.enqueue(
        runtime.db,
        {"inputs": [{"repo": "acme/a", "number": 1}], "base": "tiny-llama", "output": "acme/m"},
        actor="tester",
    )
    assert job.id == KNOWN_PATH["job_id"]
    app = create_app(runtime, background=False)

    async def on_localhost(scope: Any, receive: Any, send: Any) -> None:
        # An open server answers loopback Host names only; the ASGI transport says "testserver".
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            scope = {**scope, "headers": [*headers, (b"host", b"localhost")]}
        await app(scope, receive, send)

    yield schemathesis.openapi.from_asgi("/openapi.json", on_localhost)


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("storage_backend", ["local"])]


def test_no_server_errors_and_schema_conformance(api_schema: Any) -> None:
    """Every operation, 20 generated requests each (hypothesis drives it directly: the
    schemathesis pytest plugin does not yet run under pytest 9)."""
    failures: list[str] = []
    operations = [r.ok() for r in api_schema.get_all_operations()]
    documented = {
        (method.upper(), path)
        for path, ops in api_schema.raw_schema["paths"].items()
        for method in ops
    }
    assert {(op.method.upper(), op.path) for op in operations} == documented
    assert len(operations) > 60
    for op in operations:

        @given(case=op.as_strategy())
        @settings(
            max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def run(case: Any) -> None:
            if case.query and "wait" in case.query:
                case.query["wait"] = 0  # a long poll waiting its full minute proves nothing here
            case.call_and_validate(checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:800]}")
    assert failures == [], "\n\n".join(failures)


# Path parameters naming what the fixture made, so each operation is also called once where
# it answers 2xx and its success body is checked against the schema, not only its errors.
KNOWN_PATH = {
    "namespace": "acme", "name": "a", "revision": "1", "number": 1, "label": "champion",
    "path": "adapter_config.json", "base": "tiny-llama", "experiment": "ab", "job_id": 1,
}  # fmt: skip
KNOWN_QUERY = {"a": "1", "b": "2", "subject": "user-1", "winner": "b"}
OPTIONAL_QUERY = {"/api/v1/interference": {"base": "tiny-llama"}}
# The adapter has no folders: listing "adapter_config.json" as one is the Hub's 404.
NOT_FOUND = {
    "GET /api/models/{namespace}/{name}/tree/{revision}/{path}",
    "GET /_export/api/models/{namespace}/{name}/tree/{revision}/{path}",
}


def test_known_good_reads_conform(api_schema: Any) -> None:
    """Every GET and HEAD whose parameters name the fixture's data, called once: a 2xx
    whose status, content type and body match the schema."""
    failures: list[str] = []
    answered: dict[str, int] = {}
    for result in api_schema.get_all_operations():
        op = result.ok()
        if op.method.upper() not in ("GET", "HEAD"):
            continue
        params = op.definition.raw.get("parameters", [])
        path_names = [p["name"] for p in params if p["in"] == "path"]
        if not set(path_names) <= KNOWN_PATH.keys():
            continue
        query = {
            p["name"]: KNOWN_QUERY[p["name"]]
            for p in params
            if p["in"] == "query" and p.get("required") and p["name"] in KNOWN_QUERY
        }
        query.update(OPTIONAL_QUERY.get(op.path, {}))
        if "wait" in {p["name"] for p in params}:
            query["wait"] = "0"
        case = op.Case(path_parameters={k: KNOWN_PATH[k] for k in path_names}, query=query)
        try:
            response = case.call_and_validate(checks=CHECKS)
            answered[f"{op.method.upper()} {op.path}"] = response.status_code
        except Exception as exc:
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:800]}")
    assert failures == [], "\n\n".join(failures)
    refused = {k: v for k, v in answered.items() if v >= 400}
    assert refused == dict.fromkeys(NOT_FOUND, 404)
    assert len(answered) > 40
