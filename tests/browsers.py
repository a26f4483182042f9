"""Debian's Chromium driven by playwright, for the end-to-end tests (never `playwright
install`: it downloads a browser, and fails here). Skips without /usr/bin/chromium, or
fails when TACTFUL_REQUIRE_BROWSER=1 (CI installs it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch_chromium(what: str) -> Iterator[Any]:
    """A launched browser for a fixture to yield (``what`` names the test that needs it)."""
    if not CHROMIUM.exists():
        if os.environ.get("TACTFUL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{what} needs /usr/bin/chromium: apt-get install -y chromium")
        pytest.skip("no /usr/bin/chromium (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()
