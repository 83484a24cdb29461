"""The unmodified twilio-video.js SDK in headless Chromium against a real Atrium stack."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from atrium_shared.settings import Settings
from tests.browser.harness import Browser, Page, StaticServer, mint_token
from tests.conftest import Tenant
from tests.support.stack import REALTIME, Stack, running_stack


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with running_stack(settings, REALTIME) as running:
        yield running


def token_for(tenant: Tenant, identity: str, room: str | None = None) -> str:
    return mint_token(identity, room, account_sid=tenant.account.sid,
                      api_key_sid=tenant.api_key.sid, api_key_secret=tenant.key_secret)


async def join(
    browser: Browser, web: StaticServer, stack: Stack, token: str, room: str, **media: bool
) -> Page:
    page = await browser.new_page(web.url())
    options = {"wsServer": stack.base_url.replace("http://", "ws://") + "/signaling",
               "name": room, "logLevel": "debug", **media}
    result = await page.eval(
        f"atrium.settle(atrium.connect({json.dumps(token)}, {json.dumps(options)}))", timeout=30
    )
    assert result["ok"], (result, page.console_text()[-3000:])
    return page


def sees_all_tracks(identity: str, count: int) -> str:
    """JS: the remote participant is there with ``count`` tracks, all subscribed."""
    return (
        f"atrium.state().participants.some(p => p.identity === {json.dumps(identity)}"
        f" && p.tracks.length === {count} && p.tracks.every(t => t.subscribed))"
    )


def receives_media(identity: str) -> str:
    """JS: video from ``identity`` decodes and changes, and its audio is above silence."""
    prefix = json.dumps(f"remote:{identity}:")
    return (
        "(() => { const m = atrium.media();"
        f" const mine = Object.entries(m).filter(([k]) => k.startsWith({prefix}));"
        " const v = mine.find(([k]) => k.includes(':video:'));"
        " const a = mine.find(([k]) => k.includes(':audio:'));"
        " return !!(v && a && v[1].distinctFrames >= 3 && v[1].changes >= 2"
        " && a[1].maxRms > 0.005); })()"
    )


async def test_a_browser_connects_and_rest_sees_it(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    page = await join(browser, web_server, stack, token_for(tenant, "alice"), "browser-room",
                      audio=True, video=True)
    state = await page.eval("atrium.state()")
    assert state["name"] == "browser-room" and state["sid"].startswith("RM")
    assert state["localParticipant"]["identity"] == "alice"
    assert state["localParticipant"]["sid"].startswith("PA")
    published = {t["kind"]: t for t in state["localParticipant"]["tracks"]}
    assert set(published) == {"audio", "video"}
    assert all(t["trackSid"].startswith("MT") for t in published.values())


async def test_two_browsers_exchange_audio_video_and_data(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    alice = await join(browser, web_server, stack, token_for(tenant, "alice"), "pair",
                       audio=True, video=True, data=True)
    bob = await join(browser, web_server, stack, token_for(tenant, "bob"), "pair",
                     audio=True, video=True, data=True)

    for page, other in ((alice, "bob"), (bob, "alice")):
        await page.wait_for(sees_all_tracks(other, 3), timeout=20)
    # Media really flows both ways: video frames decode and change, audio is above silence.
    for page, other in ((alice, "bob"), (bob, "alice")):
        assert await page.wait_for(receives_media(other), timeout=20)
    await alice.eval("atrium.sendData('hello from alice')")
    await bob.eval("atrium.sendData('hello from bob')")
    await bob.wait_for("atrium.dataMessages.some(m => m.data === 'hello from alice')")
    await alice.wait_for("atrium.dataMessages.some(m => m.data === 'hello from bob')")
