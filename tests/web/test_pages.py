"""Every dashboard page over plain HTTP on a live server, on every catalog and storage backend:
status, content, escaping of user-written text, links and keyset pagination."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import httpx

from registry.client.local import LocalClient


class Links(HTMLParser):
    """Collects hrefs (and by rel when given) and script sources."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.rel: dict[str, str] = {}
        self.scripts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(str(a["href"]))
            if a.get("rel"):
                self.rel[str(a["rel"])] = str(a["href"])
        if tag == "script":
            self.scripts.append(str(a.get("src")))

    @property
    def adapters(self) -> list[str]:
        """Links to adapter pages (``/ui/ns/name``), not to the dashboard's own ``/ui/-/``."""
        return [h for h in self.hrefs if h.count("/") == 3 and not h.startswith("/ui/-/")]


def parse(html: str) -> Links:
    p = Links()
    p.feed(html)
    return p


def page(web: httpx.Client, url: str, status: int = 200) -> str:
    r = web.get(url)
    assert r.status_code == status, (url, r.status_code, r.text[:500])
    assert r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    return r.text


def test_root_redirects_to_dashboard(web: httpx.Client) -> None:
    r = web.get("/")
    assert r.status_code == 307 and r.headers["location"] == "/ui/"


def test_empty_catalog_says_how_to_start(web: httpx.Client) -> None:
    assert "No adapters yet" in page(web, "/ui/")


def test_index_groups_by_namespace(web: httpx.Client, catalog: LocalClient) -> None:
    html = page(web, "/ui/")
    links = parse(html)
    assert links.scripts == [s for s in links.scripts if s.startswith("/ui/-/static/app.js")]
    for ref in ("acme/brand-voice", "acme/support-bot", "beta/summarizer"):
        assert f"/ui/{ref}" in links.hrefs
    assert "/ui/acme/brand-voice/v3" in links.hrefs  # latest version link
    assert html.index('id="ns-acme"') < html.index('id="ns-beta"')
    # Descriptions are user-written: shown as text, never as markup.
    assert "<script>alert" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "Rank 8, tuned on the 2026 style guide" in html  # the latest version's


# One catalog, many queries: cheaper than a fresh catalog per case.
FILTER_CASES = [
    ("q=brand", {"acme/brand-voice"}),
    ("q=acme/s", {"acme/support-bot"}),
    ("q=%25", set()),  # a LIKE wildcard is a literal character
    ("namespace=beta", {"beta/summarizer"}),
    ("base=tiny-llama", {"acme/support-bot"}),
    ("tag=owner%3Dmarketing", {"acme/brand-voice"}),
    ("tag=owner", {"acme/brand-voice", "acme/support-bot"}),
    ("tag=owner%3Dnobody", set()),
    ("q=voice&namespace=acme&tag=owner%3Dmarketing", {"acme/brand-voice"}),
]


def test_index_search_and_filters(web: httpx.Client, catalog: LocalClient) -> None:
    for query, expected in FILTER_CASES:
        html = page(web, f"/ui/?{query}")
        shown = {h.removeprefix("/ui/") for h in parse(html).adapters}
        assert shown == expected, query
        assert ("No adapters match" in html) == (not expected), query


def test_index_keyset_pagination(web: httpx.Client, catalog: LocalClient) -> None:
    seen: list[str] = []
    url: str | None = "/ui/?limit=2"
    pages = 0
    while url:
        links = parse(page(web, url))
        seen += [h.removeprefix("/ui/") for h in links.adapters]
        assert "OFFSET" not in url.upper()
        url = links.rel.get("next")
        pages += 1
    assert pages == 2
    assert seen == ["acme/brand-voice", "acme/support-bot", "beta/summarizer"]
    # Walking back from the last page returns the first page, filters kept.
    last = parse(page(web, "/ui/?limit=2&after=acme%2Fsupport-bot"))
    prev = last.rel["prev"]
    assert "before=beta%2Fsummarizer" in prev and "limit=2" in prev
    first = parse(page(web, prev))
    assert first.adapters == [
        "/ui/acme/brand-voice",
        "/ui/acme/support-bot",
    ]
    assert "prev" not in first.rel


def test_adapter_page(web: httpx.Client, catalog: LocalClient) -> None:
    html = page(web, "/ui/acme/brand-voice")
    links = parse(html)
    for n in (1, 2, 3):
        assert f"/ui/acme/brand-voice/v{n}" in links.hrefs
    # Versions newest first, with rank, alpha, targets and the key eval columns.
    assert html.index(">v3</a>") < html.index(">v2</a>") < html.index(">v1</a>")
    assert "accuracy (mmlu)" in html and ">0.83<" in html
    assert "q_proj" in html
    # One server-rendered SVG chart per metric, points labelled for screen readers.
    assert html.count("<svg") == 2
    assert "accuracy (mmlu) across versions, v1 0.71, v2 0.78, v3 0.83" in html
    assert "lower is better" in html
    # The compare form works without JavaScript: GET with radio buttons a and b.
    assert 'action="/ui/acme/brand-voice/compare"' in html
    assert 'name="a" value="2"' in html


def _rows(html: str) -> list[int]:
    """Version numbers in the versions table, in order (each row has a "B" radio)."""
    return [int(n) for n in re.findall(r'name="b" value="(\d+)"', html)]


def test_adapter_page_paginates_versions(web: httpx.Client, catalog: LocalClient) -> None:
    html = page(web, "/ui/acme/brand-voice?limit=2")
    assert _rows(html) == [3, 2]
    links = parse(html)
    assert links.rel["next"] == "/ui/acme/brand-voice?limit=2&older=2"
    older = page(web, links.rel["next"])
    assert _rows(older) == [1] and "next" not in parse(older).rel
    assert parse(older).rel["prev"] == "/ui/acme/brand-voice?limit=2&newer=1"
    back = page(web, parse(older).rel["prev"])
    assert _rows(back) == [3, 2] and "prev" not in parse(back).rel


def test_version_page(web: httpx.Client, catalog: LocalClient) -> None:
    v = catalog.show("acme/brand-voice:1")
    html = page(web, "/ui/acme/brand-voice/v1")
    assert v.content_id in html
    for f in v.files:
        assert f.path in html and f.sha256 in html
    # Escaped description and tag values.
    assert "<script>alert" not in html and "<i>x</i>" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold" in html
    assert "note=&lt;i&gt;x&lt;/i&gt;" in html
    assert "adapter_config.json" in html and "lora_alpha" in html
    # History: every push of this adapter, newest first.
    assert html.count("version.created") == 3
    v3 = page(web, "/ui/acme/brand-voice/v3")
    assert "/ui/acme/brand-voice/v2" in parse(v3).hrefs  # parent link
    assert "/ui/acme/brand-voice/compare?a=2&amp;b=3" in v3


def test_compare_page(web: httpx.Client, catalog: LocalClient) -> None:
    html = page(web, "/ui/acme/brand-voice/compare?a=1&b=3")
    assert "Compare" in html
    # Eval deltas, with the direction that counts as better for each metric.
    assert re.search(r"accuracy \(mmlu\).*?\+0\.12.*?better", html, re.S)
    assert re.search(r"loss.*?lower is better.*?-0\.15.*?better", html, re.S)
    # Rank differs between v1 (r=4) and v3 (r=8) and is flagged.
    assert re.search(r'class="differs"><th scope="row">rank \(r\)', html)
    default = page(web, "/ui/acme/brand-voice/compare")  # newest against its parent
    assert "v2</a> <span" in default and "v3</a>" in default
    across = page(web, "/ui/acme/brand-voice/compare?a=beta/summarizer:1&b=1")
    assert "beta/summarizer:v1" in across


def test_only_one_version_to_compare(web: httpx.Client, catalog: LocalClient) -> None:
    assert "Nothing to compare with yet" in page(web, "/ui/acme/support-bot/compare")


ERROR_CASES = [
    ("/ui/acme/nope", 404, "does not exist"),
    ("/ui/acme/brand-voice/v9", 404, "has no version 9"),
    ("/ui/acme/brand-voice/compare?a=7", 404, "has no version 7"),
    ("/ui/acme/brand-voice/compare?a=nobody/x:1", 404, "does not exist"),
    ("/ui/ACME/x", 422, "invalid namespace"),
    ("/ui/acme/brand-voice?older=abc", 422, "older"),
    ("/ui/?limit=0", 422, "limit"),
    ("/ui/?namespace=Not%20Valid", 422, "invalid namespace"),
]


def test_errors_are_html_pages(web: httpx.Client, catalog: LocalClient) -> None:
    for url, status, text in ERROR_CASES:
        html = page(web, url, status)
        assert text in html, url
        assert "/ui/" in parse(html).hrefs  # a way back


def test_static_files_and_api_untouched(web: httpx.Client) -> None:
    css = web.get("/ui/-/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert web.get("/ui/-/static/app.js").status_code == 200
    assert web.get("/healthz").json() == {"status": "ok"}
    assert web.get("/api/v1/nothing").headers["x-error-code"] == "not_found"
    paths = web.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui") or p == "/"]


def test_pages_show_new_pushes(
    web: httpx.Client, catalog: LocalClient, adapter_library: dict[str, Path]
) -> None:
    assert "/ui/acme/brand-voice/v4" not in parse(page(web, "/ui/")).hrefs
    catalog.push(adapter_library["v1"], "acme/brand-voice", base="tiny-llama")
    assert "/ui/acme/brand-voice/v4" in parse(page(web, "/ui/")).hrefs


def test_adapter_named_like_a_route(
    web: httpx.Client, catalog: LocalClient, adapter_library: dict[str, Path]
) -> None:
    """Names such as "resolve" or "compare" are legal; their pages must still be ours."""
    for name in ("resolve", "compare", "v1"):
        catalog.push(adapter_library["v1"], f"acme/{name}", base="tiny-llama")
        assert f"<title>acme/{name} · lorareg" in page(web, f"/ui/acme/{name}")
        assert f"<title>acme/{name}:1 · lorareg" in page(web, f"/ui/acme/{name}/v1")
        assert "Nothing to compare" in page(web, f"/ui/acme/{name}/compare")
