"""The operator page in Debian's headless Chromium: log in, see a new alert arrive without a
reload, acknowledge it, play its clip. (Predicates are functions: the page's CSP allows no eval.)"""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from alertkit import episode, h264_packets

from camera_hub.ingest.ring import PacketRing

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.browser


@pytest.fixture
def chromium() -> str:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not installed")
    return CHROMIUM


@pytest.fixture
async def page(chromium: str):
    pw_api = pytest.importorskip("playwright.async_api")
    async with pw_api.async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=chromium,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"])
        try:
            pg = await browser.new_page()
            yield pg
        finally:
            await browser.close()


async def test_login_watch_acknowledge_and_play(live, publisher, page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # the page runs under the API's Content-Security-Policy: anything it blocks is an error here
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    await page.goto(live.url + "/")
    await page.fill("#username", "operator")
    await page.fill("#password", live.passwords["operator"])
    await page.click("#login-btn")
    await page.wait_for_selector("#main-view:not([hidden])")
    await page.wait_for_selector("#feed-state.live", timeout=10_000)
    cookies = await page.context.cookies()
    assert any(c["name"] == "ch_session" and c["httpOnly"] for c in cookies)
    assert await page.evaluate("document.cookie") == ""  # HttpOnly: not readable by scripts

    start = time.time() - 20
    info, packets = h264_packets(8, start=start, width=320, height=240)
    ring = PacketRing(60, 64 << 20)
    ring.set_info(info)
    for p in packets:
        ring.append(p)
    publisher.clip_source_for = lambda cam: ring
    aid = await publisher.publish(episode("start", camera="cam3", zone="browser", started_at=start + 4,
                                          with_frame=True))
    item = f'li[data-id="{aid}"]'
    await page.wait_for_selector(item, timeout=10_000)  # arrived over SSE, no reload
    assert await page.text_content(f"{item} .state") == "new"
    assert await page.locator(f"{item} .thumb rect").count() == 1
    assert "SLA" in await page.inner_text(f"{item} .sla")

    await page.fill(f"{item} .note", "seen from the browser")
    await page.click(f"{item} button.ack")
    await page.wait_for_function(
        f"() => document.querySelector('{item} .state')?.textContent === 'acknowledged'", timeout=10_000)

    await publisher.wait_clips()
    if not await page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.42E01E\"')"):
        pytest.skip("this Chromium build cannot play H.264")
    await page.wait_for_selector(f"{item} button.play-clip", timeout=10_000)  # the clip event arrived live
    await page.click(f"{item} button.play-clip")
    await page.wait_for_function(
        "() => { const v = document.querySelector('#player'); return v && v.readyState >= 2 && v.duration > 3; }",
        timeout=15_000)
    await page.evaluate("document.querySelector('#player').play()")
    await asyncio.sleep(0.3)
    played = await page.evaluate("document.querySelector('#player').currentTime")
    assert played > 0
    assert not errors, errors

    r = await publisher.store.get(aid)
    assert r.state == "acknowledged" and r.history[-1].note == "seen from the browser"
