"""Headless Chromium on the inbox polish, at desktop width and on a 390-pixel phone: screenshots in test-artifacts/.

An invalid Edit shows its problem beside the field, in view and in plain words; an executed action's result
appears once; on a phone the list's rows keep their titles whole (no word broken in the middle).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.channels.web.test_web_browser import ARTIFACTS, _login_url, browser  # noqa: F401  (fixture)
from tests.support.processes import OpsgateProcess

pytestmark = [pytest.mark.browser]

LONG = "!deploy service=payments-gateway-eu-west version=2024.11.30-hotfix.2 environment=production"

# Where each line of an element's text starts: a break between two letters or digits splits a word.
_MID_WORD_BREAKS = """(el) => {
  const node = el.firstChild, text = node.textContent, range = document.createRange(), broken = [];
  let top = null;
  for (let i = 0; i < text.length; i++) {
    range.setStart(node, i); range.setEnd(node, i + 1);
    const rect = range.getClientRects()[0];
    if (!rect) { continue; }
    if (top !== null && rect.top > top + 2 && /[A-Za-z0-9]/.test(text[i - 1]) && /[A-Za-z0-9]/.test(text[i])) {
      broken.push(text.slice(Math.max(0, i - 6), i) + "|" + text.slice(i, i + 6));
    }
    top = rect.top;
  }
  return broken;
}"""


async def _request(page: Page, text: str) -> None:
    await page.get_by_role("link", name="New request").click()
    await page.get_by_label("Request").fill(text)
    await page.get_by_role("button", name="Send").click()
    await expect(page).to_have_url(re.compile(r"/t/[0-9a-z]+$"))
    await expect(page.locator("#approval")).to_contain_text("Approval needed: deploy", timeout=10_000)


async def _invalid_edit(page: Page) -> None:
    """Open Edit, type a version with a space and a "!", submit, and expect the problem beside the field."""
    await page.get_by_text("Edit…").click()
    await page.locator('input[name="arg.version"]').fill("2.0 hotfix!")
    await page.get_by_role("button", name="Approve with these arguments").click()
    note = page.locator("#err-version")
    await expect(note).to_be_visible()
    await expect(note).to_have_text(re.compile(r"^'2\.0 hotfix!' is not allowed: use only letters, digits"))
    await expect(note).to_be_in_viewport()
    await expect(page.locator("#flash")).to_be_hidden()
    await expect(page.locator('input[name="arg.version"]')).to_be_focused()
    assert "^[" not in await page.locator("#live").inner_text()


async def test_inbox_polish_on_desktop_and_phone(browser: Browser, tmp_workdir: Path) -> None:  # noqa: F811
    """Desktop: field error in view, fixed edit approved, one result line. Phone: the same, and whole titles."""
    ARTIFACTS.mkdir(exist_ok=True)
    async with OpsgateProcess({}, cwd=tmp_workdir) as process:
        login_url = await _login_url(process)
        desktop = await browser.new_context(viewport={"width": 1100, "height": 800})
        page = await desktop.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(login_url)
        await _request(page, LONG)
        await _invalid_edit(page)
        await page.screenshot(path=str(ARTIFACTS / "polish-edit-error-desktop.png"), full_page=False)
        await page.locator('input[name="arg.version"]').fill("2024.11.30-hotfix.3")
        await page.get_by_role("button", name="Approve with these arguments").click()
        timeline = page.locator(".timeline")
        await expect(timeline).to_contain_text("deploy succeeded", timeout=10_000)
        await expect(timeline.locator(".item", has_text="recorded deploy of payments-gateway-eu-west")).to_have_count(1)
        await page.screenshot(path=str(ARTIFACTS / "polish-result-desktop.png"), full_page=True)
        await _request(page, LONG.replace("hotfix.2", "hotfix.4"))  # stays pending: pinned in the list
        await desktop.close()

        phone = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        mobile = await phone.new_page()
        mobile.on("pageerror", lambda exc: errors.append(str(exc)))
        await mobile.goto(login_url)
        title = mobile.locator(".group", has_text="Waiting for approval").locator(".thread-row .title").first
        await expect(title).to_contain_text("payments-gateway-eu-west")
        assert await title.evaluate(_MID_WORD_BREAKS) == []
        row = await mobile.locator(".thread-row a").first.bounding_box()
        box = await title.bounding_box()
        assert row and box and box["width"] >= 0.8 * row["width"], (box, row)  # the badge no longer squeezes it
        overflow = await mobile.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the list is {overflow}px wider than the phone"
        await mobile.screenshot(path=str(ARTIFACTS / "polish-list-phone.png"), full_page=True)
        await title.click()
        await _invalid_edit(mobile)
        heading = await mobile.locator("h1.thread-title").evaluate(_MID_WORD_BREAKS)
        assert heading == []
        await mobile.screenshot(path=str(ARTIFACTS / "polish-edit-error-phone.png"), full_page=False)
        await phone.close()
        assert errors == [], errors
