"""twilio-video.js in headless Chromium and the Python SDK (atrium_video) in one room."""

from __future__ import annotations

import json

import pytest

from atrium_video import LocalDataTrack, connect, create_local_audio_track, create_local_video_track
from tests.browser.harness import Browser, StaticServer
from tests.support.sdk import Recorder, audio_energy, distinct_video, remote, sees
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.video_js import join, receives_media, sees_all_tracks
from tests.support.waiting import eventually

pytestmark = pytest.mark.stack(REALTIME)


async def test_a_browser_and_an_sdk_participant_see_and_hear_each_other(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    page = await join(
        browser,
        web_server,
        stack,
        tenant.token("browser"),
        "mixed",
        audio=True,
        video=True,
        data=True,
    )
    chat = LocalDataTrack(name="chat")
    bot = await connect(
        tenant.token("bot"),
        name="mixed",
        url=stack.signaling_url,
        tracks=[create_local_audio_track(name="mic"), create_local_video_track(name="cam"), chat],
    )
    seen = Recorder(bot)
    try:
        # SDK -> browser: all three kinds subscribed, video changes, audio above silence, data.
        await page.wait_for(sees_all_tracks("bot", 3), timeout=20)
        assert await page.wait_for(receives_media("bot"), timeout=20)
        chat.send("hello from python")
        await page.wait_for(
            f"atrium.dataMessages.some(m => m.data === {json.dumps('hello from python')})",
            timeout=10,
        )
        # Browser -> SDK: the same, decoded by aiortc.
        await eventually(sees(bot, "browser", 3), timeout=20, message="bot sees the browser")
        assert await distinct_video(remote(bot, "browser", "video")) >= 3
        assert await audio_energy(remote(bot, "browser", "audio")) > 0.005
        await page.eval("atrium.sendData('hello from chromium')")
        await eventually(
            lambda: "hello from chromium" in seen.messages,
            timeout=10,
            message="bot gets the browser's message",
        )
    finally:
        await bot.disconnect()
    await page.wait_for(
        "atrium.events.some(e => e.event === 'participantDisconnected' && e.identity === 'bot')",
        timeout=10,
    )
