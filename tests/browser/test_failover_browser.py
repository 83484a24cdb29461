"""twilio-video.js through a media worker's death: kill -9 of the worker hosting the room, and both
browsers' media resumes on the other worker, in the same room with the same participants.

The adopting worker asks each client for a new offer (RSP ``create-offer``); its peer connection
is new, so the browser's answer brings new ICE credentials and a new DTLS fingerprint, and Chrome
restarts ICE and DTLS on the same RTCPeerConnection (twilio-video.js also restarts ICE on its own
when it notices the media stopped; whichever offer arrives first is answered). The pages connect
as Twilio's reference app does (bandwidth profile, dominant speaker, network quality, VP8
simulcast).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.browser.harness import Browser, Page, StaticServer
from tests.browser.test_media_signaling_browser import SIMULCAST, join, reference_app_options
from tests.support.processes import ServiceProcess
from tests.support.stack import WITH_CALLBACKS, Stack, StackFactory
from tests.support.tenants import Tenant
from tests.support.video_js import receives_media, sees_all_tracks

pytestmark = [pytest.mark.stack(WITH_CALLBACKS), pytest.mark.timeout(180)]


@pytest.fixture
def workers(stacks: StackFactory) -> dict[str, ServiceProcess]:
    return {wid: stacks.spawn("media", media_worker_id=wid) for wid in ("wa", "wb")}


def decoded_from(identity: str) -> str:
    """JS: frames decoded so far of ``identity``'s video (0 before it is attached)."""
    prefix = json.dumps(f"remote:{identity}:")
    return (
        "(() => Object.entries(atrium.media())"
        f".filter(([k]) => k.startsWith({prefix}) && k.includes(':video:'))"
        ".reduce((n, [, v]) => n + (v.decodedFrames || 0), 0))()"
    )


async def test_kill9_of_the_media_worker_resumes_browser_media_on_another(
    browser: Browser,
    web_server: StaticServer,
    stack: Stack,
    tenant: Tenant,
    redis: Redis,
    workers: dict[str, ServiceProcess],
) -> None:
    options: dict[str, Any] = reference_app_options(SIMULCAST)
    pages: dict[str, Page] = {}
    for identity in ("alice", "bob"):
        pages[identity] = await join(
            browser, web_server, stack, tenant, identity, "fo-browser", gain=0.3, **options
        )
    for page, other in ((pages["alice"], "bob"), (pages["bob"], "alice")):
        await page.wait_for(sees_all_tracks(other, 2), timeout=30)
        await page.wait_for(receives_media(other), timeout=30)
    state = await pages["alice"].eval("atrium.state()")
    room_sid = state["sid"]
    sids = {
        i: (await p.eval("atrium.state()"))["localParticipant"]["sid"] for i, p in pages.items()
    }
    victim = str(await redis.get(f"atrium:room:{room_sid}:worker"))
    survivor = next(w for w in workers if w != victim)

    before = {
        identity: await page.eval(decoded_from(other))
        for identity, page, other in (
            ("alice", pages["alice"], "bob"),
            ("bob", pages["bob"], "alice"),
        )
    }
    workers[victim].kill9()
    killed_at = time.monotonic()
    resumed: dict[str, float] = {}
    for identity, other in (("alice", "bob"), ("bob", "alice")):
        page = pages[identity]
        await page.wait_for(f"{decoded_from(other)} > {before[identity] + 30}", timeout=40)
        resumed[identity] = round(time.monotonic() - killed_at, 2)
    print(f"\nbrowser: kill -9 -> 30 new decoded frames (s): {resumed}")

    assert str(await redis.get(f"atrium:room:{room_sid}:worker")) == survivor
    for identity, page in pages.items():
        now = await page.eval("atrium.state()")
        assert now["state"] == "connected"
        assert now["sid"] == room_sid and now["localParticipant"]["sid"] == sids[identity]
        events = [e["event"] for e in await page.eval("atrium.events")]
        # Nobody left or was unsubscribed: the same room, participants and tracks.
        assert "disconnected" not in events
        assert "participantDisconnected" not in events
        assert "trackUnsubscribed" not in events
    for page, other in ((pages["alice"], "bob"), (pages["bob"], "alice")):
        await page.wait_for(receives_media(other), timeout=20)
