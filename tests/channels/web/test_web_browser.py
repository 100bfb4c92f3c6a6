"""A real headless Chromium drives the first run: printed login URL, a production deploy by command, Approve.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (Playwright drives /usr/bin/chromium). Saves
screenshots and timings to test-artifacts/.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.channels.web.conftest import PRODUCTION_DEPLOY
from tests.support.processes import REPO_ROOT, OpsgateProcess

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

# No skip when Chromium is missing: scripts/test installs it, and a skipped browser test would hide that.
pytestmark = [pytest.mark.browser]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium from the Debian package."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        await launched.close()


async def _login_url(process: OpsgateProcess, within: float = 20.0) -> str:
    """The login URL `opsgate serve` printed on stdout."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = re.search(r"^opsgate inbox: open (\S+/login\?token=\S+) to log in$", process.log_text(), re.M)
        if found:
            return found.group(1)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no login URL printed:\n{process.log_tail()}")


async def _load_ms(page: Page) -> float:
    """Navigation start to load event of the current document, from the browser's own timing."""
    return float(await page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime; }"
    ))


async def test_first_run_deploy_approved_in_the_browser(browser: Browser, tmp_workdir: Path) -> None:
    """Log in with the printed URL, start a production deploy by command, approve it, see the result live."""
    ARTIFACTS.mkdir(exist_ok=True)
    timings: dict[str, float] = {}
    async with OpsgateProcess({}, cwd=tmp_workdir) as process:
        login_url = await _login_url(process)
        context = await browser.new_context(viewport={"width": 1100, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

        await page.goto(login_url)
        await expect(page).to_have_url(f"{process.url}/")
        await expect(page.get_by_role("alert")).to_contain_text("Open mode")
        timings["inbox_load_ms"] = await _load_ms(page)

        await page.get_by_role("link", name="New request").click()
        await page.get_by_label("Request").fill(PRODUCTION_DEPLOY)
        await page.get_by_role("button", name="Send").click()
        await expect(page).to_have_url(re.compile(r"/t/[0-9a-z]+$"))
        timings["thread_load_ms"] = await _load_ms(page)
        card = page.locator("#approval")
        await expect(card).to_contain_text("Approval needed: deploy", timeout=10_000)
        await expect(card).to_contain_text("production")
        await page.screenshot(path=str(ARTIFACTS / "inbox-pending.png"), full_page=True)

        await page.evaluate("() => { window.__sameDocument = 'yes'; }")
        started = time.perf_counter()
        await page.get_by_role("button", name="Approve", exact=True).click()
        await expect(page.locator(".timeline")).to_contain_text("approved via web", timeout=10_000)
        timings["decision_visible_ms"] = (time.perf_counter() - started) * 1000
        await expect(page.locator(".timeline")).to_contain_text("deploy succeeded", timeout=10_000)
        timings["result_visible_ms"] = (time.perf_counter() - started) * 1000
        await expect(page.locator(".badge").first).to_have_text("Done")
        await expect(page.locator("#approval")).to_have_count(0)
        assert await page.evaluate("() => window.__sameDocument") == "yes", "the page reloaded"
        await page.screenshot(path=str(ARTIFACTS / "inbox-done.png"), full_page=True)
        warm = []
        for _ in range(5):
            await page.reload()
            warm.append(await _load_ms(page))
        timings["thread_reload_median_ms"] = sorted(warm)[2]

        # The same thread on a phone-sized screen: nothing wider than the viewport.
        phone = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        mobile = await phone.new_page()
        await mobile.goto(f"{login_url}&next=/t/{page.url.rsplit('/', 1)[1]}")  # the link works while it runs
        await expect(mobile.locator(".timeline")).to_contain_text("deploy succeeded")
        overflow = await mobile.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"page is {overflow}px wider than a phone screen"
        await mobile.screenshot(path=str(ARTIFACTS / "inbox-phone.png"), full_page=True)
        await phone.close()
        await context.close()
        assert errors == [], errors

    (ARTIFACTS / "inbox-timings.json").write_text(json.dumps(timings, indent=2))
    print("inbox timings (ms):", json.dumps({k: round(v, 1) for k, v in timings.items()}))
    assert timings["result_visible_ms"] < 10_000
