"""Shared pieces of the browser tests: where Chromium and the screenshots are, and a page
wrapper that records what went wrong in it (the ``browser`` fixture is in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("LORAREG_TEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Tab:
    """A page plus the problems it reported: console errors (CSP violations show up there),
    uncaught exceptions and dialogs (an ``alert`` would mean injected script ran)."""

    def __init__(self, page: Any, base: str) -> None:
        self.page = page
        self.base = base
        self.problems: list[str] = []

        def on_console(m: Any) -> None:
            if m.type == "error":
                self.problems.append(m.text)

        page.on("console", on_console)
        page.on("pageerror", lambda e: self.problems.append(str(e)))

        def on_dialog(d: Any) -> None:
            self.problems.append(f"dialog: {d.message}")
            d.dismiss()

        page.on("dialog", on_dialog)

    def go(self, path: str) -> Any:
        resp = self.page.goto(self.base + path)
        assert resp is not None and resp.ok, path
        return self.page

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
