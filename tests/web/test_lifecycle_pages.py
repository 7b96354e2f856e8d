"""Stages, aliases, checks, lineage, jobs and base models on the pages, over plain HTTP on a
live server, on every catalog and storage backend (the server runs open: the visitor is the
local admin, so maintainer buttons show)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import httpx

from registry.client.local import LocalClient
from tests.web.conftest import HOSTILE, HOSTILE_TARGET, TINY
from tests.web.test_pages import page, parse

ESCAPED_HOSTILE = (
    "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"
)


def _row(html: str, version: int) -> str:
    """The versions-table row of one version (its "B" radio marks it)."""
    rows = re.findall(r"<tr>.*?</tr>", html, re.S)
    return next(r for r in rows if f'name="b" value="{version}"' in r)


def _adapters(html: str) -> set[str]:
    return {h.removeprefix("/ui/") for h in parse(html).adapters}


def test_stage_and_alias_badges(web: httpx.Client, fleet: LocalClient) -> None:
    index = page(web, "/ui/")
    assert re.search(
        r'href="/ui/acme/voice/v2"[^>]*>production <span class="v">v2</span></a>', index
    )
    assert re.search(
        r'href="/ui/acme/voice/v3"[^>]*>@champion <span class="v">v3</span></a>', index
    )
    html = page(web, "/ui/acme/voice")
    assert "stage-production" in _row(html, 2) and ">production<" in _row(html, 2)
    assert ">staging<" in _row(html, 3) and ">@champion<" in _row(html, 3)
    assert ">archived<" in _row(html, 1)
    merged = page(web, "/ui/acme/voice-merged")
    assert 'class="badge kind">merged<' in _row(merged, 1)


def test_stage_filter_production_and_staging(web: httpx.Client, fleet: LocalClient) -> None:
    html = page(web, "/ui/?stage=production")
    assert _adapters(html) == {"acme/voice"}
    assert '<option value="production" selected>' in html
    # With another filter and on keyset pages.
    assert _adapters(page(web, "/ui/?stage=production&q=prod")) == set()
    assert _adapters(page(web, "/ui/?stage=production&limit=1&after=acme%2Fproduct")) == {
        "acme/voice"
    }
    staging = page(web, "/ui/?stage=staging")
    assert _adapters(staging) == {"acme/voice"}  # v3 is in staging
    assert '<option value="staging" selected>' in staging
    # A stage without an index is refused, not served slowly.
    assert "the stage filter takes production, staging" in page(web, "/ui/?stage=archived", 422)


def test_compat_verdicts_on_the_adapter_page(web: httpx.Client, fleet: LocalClient) -> None:
    html = page(web, "/ui/acme/voice")
    section = html[html.index('id="compat-h"') : html.index('id="versions-h"')]
    assert "Compatibility of v3" in section
    assert f'href="/ui/-/bases/{TINY}"' in section
    for engine in ("vLLM", "SGLang", "LoRAX", "PEFT"):
        assert re.search(
            rf"<th scope=\"row\">{engine}</th><td><span class=\"badge verdict-pass\">", section
        )
    assert "--max-lora-rank 8" in section  # the rank-8 latest version's SGLang flags
    unchecked = page(web, "/ui/acme/voice-merged")
    # A merged model is full weights: no check command that cannot work on it.
    assert "v1 is a merged model (full weights)" in unchecked


def test_check_findings_on_the_version_page(web: httpx.Client, fleet: LocalClient) -> None:
    html = page(web, "/ui/acme/style/v1")
    checks = html[html.index('id="checks-h"') : html.index('id="config-h"')]
    assert "(trained on)" in checks and 'class="badge verdict-warn"' in checks
    assert "tensors.target_missing" in checks
    # The finding quotes the config's module name: text, never markup.
    assert HOSTILE_TARGET not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in checks
    assert re.search(r"\d+ checks passed", checks)
    # Warnings come before informational findings.
    assert checks.index("tensors.target_missing") < checks.index("numbers.norms")


def test_lineage_both_ways(web: httpx.Client, fleet: LocalClient) -> None:
    merged = page(web, "/ui/acme/voice-merged/v1")
    lineage = merged[merged.index('id="lineage-h"') : merged.index('id="history-h"')]
    assert "Merged from" in lineage and 'by <a href="/ui/-/jobs/1">job #1</a>' in lineage
    assert lineage.index("acme/voice:2") < lineage.index("acme/product:1")  # input order
    assert re.search(
        r'href="/ui/acme/voice/v2">acme/voice:2</a> <span class="muted">× 0.7', lineage
    )
    assert re.search(
        r'href="/ui/acme/product/v1">acme/product:1</a> <span class="muted">× 0.3', lineage
    )
    used = page(web, "/ui/acme/voice/v2")
    lineage = used[used.index('id="lineage-h"') : used.index('id="history-h"')]
    assert re.search(r'href="/ui/acme/voice-merged/v1">acme/voice-merged:1</a>', lineage)
    assert 'href="/ui/acme/voice/v1">v1</a>' in lineage  # the parent, as before
    assert "no merged model yet" in page(web, "/ui/acme/voice/v3")


def test_promote_buttons_follow_the_stage(web: httpx.Client, fleet: LocalClient) -> None:
    def buttons(n: int) -> list[str]:
        html = page(web, f"/ui/acme/voice/v{n}")
        head = html[
            html.index('class="head-actions"') : html.index(
                "</div>", html.index('class="head-actions"')
            )
        ]
        return re.findall(r'href="(/ui/-/promote[^"]*)">([^<]+)</a>', head)

    assert buttons(1) == [
        ("/ui/-/promote?ref=acme%2Fvoice%3A1&amp;to=production", "Roll back to this version")
    ]
    assert buttons(2) == []  # already in production
    assert buttons(3) == [
        ("/ui/-/promote?ref=acme%2Fvoice%3A3&amp;to=production", "Promote to production")
    ]
    product = page(web, "/ui/acme/product/v1")
    assert "Promote to staging" in product and "Promote to production" in product


def test_history_escapes_promotion_reasons(web: httpx.Client, fleet: LocalClient) -> None:
    html = page(web, "/ui/acme/voice/v2")
    assert HOSTILE not in html and "<b>bold" not in html
    assert ESCAPED_HOSTILE in html  # the reason of v2's promotion, in the history
    style = page(web, "/ui/acme/style/v1")
    assert ESCAPED_HOSTILE in style  # the description


def test_jobs_pages(web: httpx.Client, fleet: LocalClient) -> None:
    html = page(web, "/ui/-/jobs")
    assert html.index('href="/ui/-/jobs/2"') < html.index('href="/ui/-/jobs/1"')  # newest first
    # The queued job polls the API; the finished one does not.
    assert 'data-poll="/api/v1/jobs/2"' in html and 'data-poll="/api/v1/jobs/1"' not in html
    assert re.search(r'<progress max="1" value="1\.0000"[^>]*>100%</progress>', html)
    assert 'href="/ui/acme/voice-merged/v1">acme/voice-merged:1</a>' in html
    assert 'aria-current="page">Jobs</a>' in html
    queued = page(web, "/ui/-/jobs?state=queued")
    assert 'href="/ui/-/jobs/2"' in queued and 'href="/ui/-/jobs/1"' not in queued
    # Keyset pages, newest first.
    first = parse(page(web, "/ui/-/jobs?limit=1"))
    assert first.rel["next"] == "/ui/-/jobs?limit=1&before=2"
    older = page(web, first.rel["next"])
    assert 'href="/ui/-/jobs/1"' in older and 'href="/ui/-/jobs/2"' not in older
    assert "next" not in parse(older).rel
    assert "unknown job state" in page(web, "/ui/-/jobs?state=bogus", 422)

    job = page(web, "/ui/-/jobs/1")
    assert "succeeded" in job and "data-poll" not in job
    assert 'Output: <a href="/ui/acme/voice-merged/v1">' in job
    assert re.search(r'href="/ui/acme/voice/v2">acme/voice:2</a></th>\s*<td class="num">0.7', job)
    assert "Interference report" in job and "verification" in job
    waiting = page(web, "/ui/-/jobs/2")
    assert 'data-poll="/api/v1/jobs/2"' in waiting and "0%" in waiting
    assert "no job 99" in page(web, "/ui/-/jobs/99", 404)


def test_bases_pages(
    web: httpx.Client, fleet: LocalClient, base_library: dict[str, Path], tmp_path: Path
) -> None:
    # A folder named like markup: the source path is user-written too.
    odd = tmp_path / "<i>base</i>&co"
    shutil.copytree(base_library["tiny"], odd)
    fleet.add_base("org/tiny.v2", str(odd))
    html = page(web, "/ui/-/bases")
    assert parse(html).hrefs.count(f"/ui/-/bases/{TINY}") == 1
    assert 'href="/ui/-/bases/org/tiny.v2"' in html
    assert "<i>base</i>" not in html and "&lt;i&gt;base&lt;/i&gt;&amp;co" in html
    assert "LlamaForCausalLM" in html
    detail = page(web, f"/ui/-/bases/{TINY}")
    info = fleet.get_base(TINY)
    assert info["structure_hash"] in detail and "21 tensors" in detail
    assert "model.embed_tokens.weight" in detail
    assert f'href="/ui/?base={TINY}"' in detail
    # A name with a slash is one page, not a deeper path.
    assert "&lt;i&gt;base" in page(web, "/ui/-/bases/org/tiny.v2")
    assert "is not registered" in page(web, "/ui/-/bases/nobody/nothing", 404)
    paged = parse(page(web, "/ui/-/bases?limit=1"))
    assert paged.rel["next"] == "/ui/-/bases?limit=1&after=org%2Ftiny.v2"
