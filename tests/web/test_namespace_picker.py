"""The dashboard's namespace picker: a text field whose suggestions come from a bounded
prefix search (on the index page and from ``/ui/-/namespaces``), so the index page does not
grow with the number of namespaces; without JavaScript it is a plain text filter."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from registry.access import create_token
from registry.catalog import browse
from registry.db import models as m
from registry.runtime import Runtime
from registry.server import create_app
from tests.web.seed import seed_catalog

# Names and scopes only: both catalogs, the local store.
pytestmark = pytest.mark.parametrize("storage_backend", ["local"])

OPTION = re.compile(r'<option value="([^"]*)"></option>')


def datalist(html: str) -> list[str]:
    found = re.search(r'<datalist id="namespace-options">(.*?)</datalist>', html, re.S)
    assert found, "no namespace datalist on the page"
    return OPTION.findall(found.group(1))


@pytest.fixture
def many(runtime: Runtime) -> Runtime:
    """30 namespaces ns000..ns029 (one adapter of two versions each), and ``ns_x`` and
    ``nsax`` to check that ``_`` in a prefix is not a wildcard."""
    seed_catalog(runtime.db, namespaces=30, adapters_per_namespace=1, versions_per_adapter=2)
    with runtime.db.write() as s:
        s.add_all([m.Namespace(name="ns_x"), m.Namespace(name="nsax")])
    return runtime


@pytest.fixture
def web(many: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(many, background=False), base_url="http://localhost") as c:
        yield c


def test_suggestions_are_a_bounded_prefix_search(many: Runtime) -> None:
    with many.db.read() as s:
        first = browse.namespace_names(s)
        assert first == [f"ns{i:03d}" for i in range(browse.NAMESPACE_SUGGESTIONS)]
        assert browse.namespace_names(s, prefix="ns01") == [f"ns{i:03d}" for i in range(10, 20)]
        assert browse.namespace_names(s, prefix="ns_") == ["ns_x"]  # "_" is a letter here
        assert browse.namespace_names(s, prefix="ns029") == ["ns029"]
        assert browse.namespace_names(s, prefix="nsz") == []
        assert browse.namespace_names(s, prefix="ns0", limit=3) == ["ns000", "ns001", "ns002"]
        scope = frozenset({"ns004", "ns017", "nsax"})
        assert browse.namespace_names(s, prefix="ns0", visible=scope) == ["ns004", "ns017"]


def test_index_page_holds_a_bounded_picker_not_every_namespace(web: TestClient) -> None:
    html = web.get("/ui/").text
    assert '<select id="namespace"' not in html
    assert re.search(r'<input id="namespace" name="namespace" value=""', html)
    assert datalist(html) == [f"ns{i:03d}" for i in range(browse.NAMESPACE_SUGGESTIONS)]
    # The filter narrows the suggestions to what starts with it.
    html = web.get("/ui/?namespace=ns02").text
    assert datalist(html) == [f"ns{i:03d}" for i in range(20, 30)]


def test_without_javascript_a_partial_name_offers_the_matching_namespaces(
    web: TestClient,
) -> None:
    r = web.get("/ui/?namespace=ns01&q=adapter")
    assert r.status_code == 200
    assert "No adapters match" in r.text
    assert "No namespace is called <strong>ns01</strong>" in r.text
    links = re.findall(r'<li><a href="([^"]+)">(ns[^<]+)</a></li>', r.text)
    assert [name for _, name in links] == [f"ns{i:03d}" for i in range(10, 20)]
    # Each keeps the other filters and names the namespace in full.
    assert links[0][0] == "/ui/?q=adapter&amp;namespace=ns010"
    # An exact name filters as before, and offers no list.
    exact = web.get("/ui/?namespace=ns010").text
    assert "/ui/ns010/adapter-00000" in exact and "/ui/ns011/" not in exact
    assert "No namespace is called" not in exact


def test_suggestion_route_answers_json(web: TestClient) -> None:
    r = web.get("/ui/-/namespaces", params={"prefix": "ns02"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"namespaces": [f"ns{i:03d}" for i in range(20, 30)]}
    assert "no-store" in r.headers["cache-control"]
    everything = web.get("/ui/-/namespaces").json()["namespaces"]
    assert len(everything) == browse.NAMESPACE_SUGGESTIONS
    assert web.get("/ui/-/namespaces", params={"prefix": "  ns_"}).json() == {
        "namespaces": ["ns_x"]
    }


@pytest.mark.parametrize(
    "prefix", ["NS0", "-ns", "ns/x", "ns%", "x" * 65, "ns0'; DROP TABLE namespaces; --"]
)
def test_a_prefix_no_name_can_start_with_is_refused(web: TestClient, prefix: str) -> None:
    r = web.get("/ui/-/namespaces", params={"prefix": prefix})
    assert r.status_code == 422, (prefix, r.status_code)
    assert "prefix" in r.text
    assert web.get("/ui/-/namespaces", params={"prefix": "ns0"}).status_code == 200


def test_suggestions_follow_the_token_scope(many: Runtime) -> None:
    token, _ = create_token(
        many.db, name="t", role="reader", actor="admin", namespaces=["ns003", "ns013"]
    )
    with TestClient(
        create_app(many, require_auth=True, background=False), base_url="http://localhost"
    ) as locked:
        assert locked.get("/ui/-/namespaces").status_code == 401
        h = {"Authorization": f"Bearer {token}"}
        assert locked.get("/ui/-/namespaces", headers=h).json() == {
            "namespaces": ["ns003", "ns013"]
        }
        assert locked.get("/ui/-/namespaces?prefix=ns01", headers=h).json() == {
            "namespaces": ["ns013"]
        }
        assert datalist(locked.get("/ui/", headers=h).text) == ["ns003", "ns013"]
