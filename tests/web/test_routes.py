"""The dashboard's URL space: under /ui, never in the shape of another router's routes."""

from __future__ import annotations

import re

from fastapi.routing import APIRoute

from registry.web.routes import router

# The Hugging Face-compatible download route: five or more segments, "resolve" third.
HF_RESOLVE = re.compile(r"^/[^/]+/[^/]+/resolve/[^/]+/.+$")


def test_every_page_lives_under_ui_in_at_most_four_segments() -> None:
    paths = [r.path for r in router.routes if isinstance(r, APIRoute)]
    assert "/" in paths and "/ui/" in paths
    for path in paths:
        if path == "/":
            continue
        assert path.startswith("/ui/"), path
        # Four segments at most: /ui/{ns}/{name}/{page}. A fifth would let an adapter
        # named "resolve" collide with /{ns}/{name}/resolve/{rev}/{file}.
        assert len(path.strip("/").split("/")) <= 4, path


def test_pages_never_match_the_hf_download_shape() -> None:
    for url in (
        "/ui/acme/resolve",
        "/ui/acme/resolve/v3",
        "/ui/acme/resolve/compare",
        "/ui/-/static/style.css",
    ):
        assert not HF_RESOLVE.match(url), url
    assert HF_RESOLVE.match("/ui/acme/resolve/main/adapter_config.json")  # the HF route's
