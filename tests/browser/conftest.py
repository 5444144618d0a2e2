"""Browser tests: Playwright (Python, async API) driving Debian's Chromium against the real server.

The app runs on a loopback port (aiohttp's test server: an AppRunner and a TCPSite on 127.0.0.1) in the
test's event loop, with the injected FakeClock, so TOTP codes and "newest first" are under the test's
control. Without /usr/bin/chromium the tests skip with the reason, unless SECUREMSG_TEST_REQUIRE_SERVICES
is set (CI), where they fail instead. No browser is ever downloaded.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]
ROOT = Path(__file__).resolve().parents[2]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
# For page.evaluate: true when nothing on the page scrolls sideways (a phone's layout holds).
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= window.innerWidth"


def _missing(reason: str) -> None:
    if os.environ.get("SECUREMSG_TEST_REQUIRE_SERVICES", "") in ("1", "true", "yes"):
        pytest.fail(f"{reason}; the browser tests are required here (SECUREMSG_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        _missing("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        _missing("the playwright Python package is not installed")
    expect.set_options(timeout=10_000)
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    """One person's browser: its own context (cookies), one page, and what went wrong in it."""

    context: Any
    page: Any
    problems: list[str] = field(default_factory=list)

    def allow(self, needle: str) -> None:
        """Forget problems containing `needle` (an error the test provoked on purpose)."""
        self.problems[:] = [p for p in self.problems if needle not in p]


async def open_tab(browser: Any, viewport: dict[str, int] | None = None) -> Tab:
    context = await browser.new_context(viewport=viewport or DESKTOP, locale="en-US", timezone_id="UTC")
    page = await context.new_page()
    tab = Tab(context, page)
    page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: tab.problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None,
    )
    return tab


def base_url(client: Any) -> str:
    return str(client.make_url("")).rstrip("/")


def screenshots_wanted(config: Any) -> bool:
    """Screenshots come from the SQLite run only, so each test writes each file once."""
    return str(config.database_url).startswith("sqlite")


def screenshot_dir() -> Path:
    """docs/screenshots when asked for (`make screenshots`), else a scratch folder: a plain test run must not
    rewrite tracked files."""
    wanted = os.environ.get("SECUREMSG_SCREENSHOT_DIR")
    if wanted:
        return Path(wanted)
    scratch = Path(tempfile.gettempdir()) / "securemsg-screenshots"
    scratch.mkdir(exist_ok=True)
    return scratch


async def screenshot(page: Any, name: str, *, full_page: bool = False) -> None:
    """A still for docs/screenshots: transitions finished, and no passing status line over the page."""
    await page.evaluate("() => document.getElementById('toast')?.classList.remove('show')")
    await page.screenshot(path=str(screenshot_dir() / name), full_page=full_page, animations="disabled")


async def search_people(page: Any, text: str) -> None:
    """Type into the new-message picker's "To" field and wait for that search's own answer: until it comes,
    the rows are the previous list's (the recent people, which may hold the same names), and a click on
    one of them lands on a list about to be replaced."""
    from playwright.async_api import expect

    await page.get_by_label("To", exact=True).fill(text)
    await expect(page.locator("#picker-hint")).to_have_text(f"People matching “{text.strip()}”.")
