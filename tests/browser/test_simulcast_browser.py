"""VP8 simulcast from twilio-video.js (issue 13): the worker forwards each subscriber one layer
of the publisher's three, the one its bandwidth profile's render dimensions call for, and tells
the publisher (publisher_hints) which layers anybody needs.

Alice publishes Chrome's fake camera at 1280x720 with the reference app's options and adaptive
simulcast (``preferredVideoCodecs: 'auto'``): granted publisher_hints, twilio-video sends three
layers, 320x180, 640x360 and 1280x720. (With ``[{codec: 'VP8', simulcast: true}]`` twilio-video
leaves the encodings' scaling to Chrome, and Chrome 156 sends every layer at the camera's size:
the worker forwards those too, but there is no smaller picture to pick.) Bob renders
standard-priority video at 320x180, Carol at 1280x720; each page decodes the resolution it
asked for, with moving pictures. When Carol leaves, nobody wants more than the lowest layer and
Alice stops sending the others.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.browser.harness import Browser, Page, StaticServer
from tests.browser.test_media_signaling_browser import SIMULCAST, reference_app_options
from tests.browser.test_media_signaling_browser import join as join_page
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = pytest.mark.stack(REALTIME)

CAMERA = {"width": 1280, "height": 720, "frameRate": 30}
LAYER_WAIT_SECONDS = 45.0  # Chrome's bandwidth estimate has to grow before it sends 1280x720


def subscriber_options(width: int, height: int) -> dict[str, Any]:
    """The reference app's options, with the render size of standard-priority video fixed
    (``renderDimensions``, which twilio-video accepts only without ``contentPreferencesMode``)."""
    options = reference_app_options(SIMULCAST)
    video = dict(options["bandwidthProfile"]["video"])
    video.pop("contentPreferencesMode")
    video["renderDimensions"] = {"standard": {"width": width, "height": height}}
    options["bandwidthProfile"] = {"video": video}
    return options


def decodes_video_of(identity: str, width: int) -> str:
    """JS: the page decodes ``identity``'s video at ``width`` pixels wide, and it moves."""
    prefix = json.dumps(f"remote:{identity}:")
    return (
        "(() => { const m = atrium.media();"
        f" const v = Object.entries(m).find(([k, s]) => k.startsWith({prefix})"
        " && s.kind === 'video');"
        f" return !!(v && v[1].width === {width} && v[1].changes >= 2) && v[1]; }})()"
    )


async def video_of(page: Page, identity: str) -> Any:
    prefix = json.dumps(f"remote:{identity}:")
    return await page.eval(
        "Object.entries(atrium.media()).filter(([k, s]) => "
        f"k.startsWith({prefix}) && s.kind === 'video').map(([k, s]) => s)"
    )


async def test_each_subscriber_decodes_the_layer_its_render_size_calls_for(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    async def joins(identity: str, **options: Any) -> Page:
        return await join_page(browser, web_server, stack, tenant, identity, "simulcast", **options)

    alice = await joins("alice", gain=0.3, **{**reference_app_options("auto"), "video": CAMERA})
    bob = await joins("bob", video=False, **subscriber_options(320, 180))
    carol = await joins("carol", video=False, **subscriber_options(1280, 720))
    for page, width in ((bob, 320), (carol, 1280)):
        try:
            await page.wait_for(decodes_video_of("alice", width), timeout=LAYER_WAIT_SECONDS)
        except Exception as exc:
            raise AssertionError(
                f"wanted {width} wide, got {await video_of(page, 'alice')}"
            ) from exc
    assert len(await sending_layers(alice)) >= 2

    await carol.eval("atrium.room.disconnect() && true")
    await eventually(
        lambda: _only_lowest(alice), timeout=20, message="alice sends only her lowest layer"
    )
    await bob.wait_for(decodes_video_of("alice", 320), timeout=10)


async def sending_layers(page: Page, seconds: float = 1.5) -> list[int]:
    """The widths of the publisher's encodings whose bytes grow over ``seconds``."""
    expression = (
        "atrium.room.getStats().then(r => r.flatMap(s => s.localVideoTrackStats)"
        ".map(v => [v.ssrc, v.bytesSent, v.dimensions ? v.dimensions.width : 0]))"
    )
    before = {ssrc: sent for ssrc, sent, _ in await page.eval(expression)}
    await asyncio.sleep(seconds)
    return [
        width for ssrc, sent, width in await page.eval(expression) if sent > before.get(ssrc, sent)
    ]


async def _only_lowest(page: Page) -> bool:
    return await sending_layers(page) == [320]


def remote_video_of(identity: str) -> str:
    """JS: the page's RemoteVideoTrack of ``identity`` (undefined until subscribed)."""
    return (
        "(() => { const p = [...atrium.room.participants.values()]"
        f".find(p => p.identity === {json.dumps(identity)});"
        " const pub = p && [...p.videoTracks.values()][0]; return pub && pub.track; })()"
    )


async def video_bytes_grow(page: Page, seconds: float = 1.0) -> bool:
    """Whether the page receives video bytes over ``seconds``."""
    expression = (
        "atrium.room.getStats().then(r => r.flatMap(s => s.remoteVideoTrackStats)"
        ".reduce((sum, v) => sum + (v.bytesReceived || 0), 0))"
    )
    before = await page.eval(expression)
    await asyncio.sleep(seconds)
    return bool(await page.eval(expression) > before)


async def test_switch_off_stops_the_video_and_switch_on_brings_it_back(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    """clientTrackSwitchOffControl 'manual': switchOff() is a render hint, the worker stops
    forwarding the track and says so (trackSwitchedOff, isSwitchedOff); switchOn() resumes it."""
    options = reference_app_options("auto")
    manual = {
        "video": {
            **options["bandwidthProfile"]["video"],
            "clientTrackSwitchOffControl": "manual",
            "contentPreferencesMode": "manual",
        }
    }
    alice = await join_page(
        browser, web_server, stack, tenant, "alice", "switch-off", gain=0.3, **options
    )
    bob = await join_page(
        browser,
        web_server,
        stack,
        tenant,
        "bob",
        "switch-off",
        video=False,
        **{**options, "bandwidthProfile": manual},
    )
    assert alice is not None
    await bob.wait_for(
        "(() => { const v = Object.entries(atrium.media()).find(([k, s]) =>"
        " k.startsWith('remote:alice:') && s.kind === 'video'); return v && v[1].changes >= 3 })()",
        timeout=30,
    )
    track = remote_video_of("alice")
    await bob.eval(f"{track}.switchOff() && true")
    await bob.wait_for(f"{track}.isSwitchedOff === true", timeout=10)
    await bob.wait_for("atrium.events.some(e => e.event === 'trackSwitchedOff')", timeout=10)

    async def stopped() -> bool:
        return not await video_bytes_grow(bob)

    await eventually(stopped, timeout=10, message="no video bytes while switched off")

    await bob.eval(f"{track}.switchOn() && true")
    await bob.wait_for(f"{track}.isSwitchedOff === false", timeout=10)
    await bob.wait_for("atrium.events.some(e => e.event === 'trackSwitchedOn')", timeout=10)

    await eventually(
        lambda: video_bytes_grow(bob), timeout=10, message="video bytes again after switchOn()"
    )
