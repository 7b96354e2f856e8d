"""``GET /api/v1/resolve/...?experiment=&subject=``: the variant's version, with ETags."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from registry.client.local import LocalClient
from registry.runtime import Runtime

BASE = "meta-llama/Llama-3.1-8B"
REPO = "acme/brand-voice"
URL = f"/api/v1/resolve/{REPO}"


@pytest.fixture
def local(runtime: Runtime, adapter_library: dict[str, Path]) -> LocalClient:
    c = LocalClient(runtime)
    for key in ("v1", "v2", "r8"):
        c.push(adapter_library[key], REPO, base=BASE)
    c.promote(f"{REPO}:1", to="production")
    c.experiment_create(
        REPO,
        "tone-test",
        variants=[("control", "@production"), ("warm", "2"), ("formal", "3")],
        split="34,33,33",
        metric="conversion",
    )
    return c


def test_resolve_answers_the_assigned_variant_with_etags(
    local: LocalClient, server_url: str
) -> None:
    with httpx.Client(base_url=server_url, timeout=30) as http:
        seen = set()
        for i in range(60):
            subject = f"client-{i}"
            expected = local.assign(REPO, "tone-test", subject)
            r = http.get(URL, params={"experiment": "tone-test", "subject": subject})
            assert r.status_code == 200, r.text
            doc = r.json()
            assert doc["version"] == expected.version
            assert doc["experiment"] == {
                "name": "tone-test",
                "state": "running",
                "variant": expected.variant,
                "bucket": expected.bucket,
            }
            assert r.headers["x-lorareg-variant"] == expected.variant
            plain = http.get(URL, params={"ref": str(expected.version)}).json()
            assert {k: v for k, v in doc.items() if k != "experiment"} == plain
            again = http.get(
                URL,
                params={"experiment": "tone-test", "subject": subject},
                headers={"If-None-Match": r.headers["etag"]},
            )
            assert again.status_code == 304 and again.headers["etag"] == r.headers["etag"]
            seen.add(expected.variant)
        assert seen == {"control", "warm", "formal"}

        # Concluding ends assignment: every subject gets the new production version.
        etag = http.get(URL, params={"experiment": "tone-test", "subject": "client-1"}).headers[
            "etag"
        ]
        local.experiment_conclude(REPO, "tone-test", winner="formal", reason="wins")
        r = http.get(
            URL,
            params={"experiment": "tone-test", "subject": "client-1"},
            headers={"If-None-Match": etag},
        )
        assert r.status_code == 200
        assert r.json()["version"] == 3 and r.json()["experiment"]["variant"] is None
        assert r.headers["x-lorareg-experiment"] == "concluded"
        assert "x-lorareg-variant" not in r.headers


BAD = [
    ({"experiment": "nope", "subject": "a"}, 404, "experiment_not_found"),
    ({"experiment": "tone-test"}, 422, "invalid_subject"),
    ({"experiment": "tone-test", "subject": "x" * 300}, 422, "invalid_subject"),
    ({"experiment": "tone-test", "subject": "a\tb"}, 422, "invalid_subject"),
    ({"experiment": "tone-test", "subject": "a", "ref": "2"}, 422, "invalid_input"),
]


def test_bad_resolve_requests(local: LocalClient, server_url: str) -> None:
    for params, status, code in BAD:
        r = httpx.get(server_url + URL, params=params)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), params
