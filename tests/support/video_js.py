"""The unmodified twilio-video.js in a test page (web/test/room.html, driven through
tests/browser/harness.py): joining a room, and JS conditions for ``page.wait_for``."""

from __future__ import annotations

import json
from typing import Any

from tests.browser.harness import Browser, Page, StaticServer
from tests.support.stack import Stack
from tests.support.tenants import Tenant


async def connect_result(
    browser: Browser, web: StaticServer, stack: Stack, token: str, room: str, **options: Any
) -> tuple[Page, dict[str, Any]]:
    """A new page's ``atrium.connect`` to ``room``, settled: ``{"ok": ..., "error": ...}``."""
    page = await browser.new_page(web.url())
    options = {"wsServer": stack.signaling_url, "name": room, **options}
    result = await page.eval(
        f"atrium.settle(atrium.connect({json.dumps(token)}, {json.dumps(options)}))", timeout=30
    )
    return page, result


async def join(
    browser: Browser, web: StaticServer, stack: Stack, token: str, room: str, **media: bool
) -> Page:
    """A new page connected to ``room`` (SDK debug logs in its console)."""
    page, result = await connect_result(browser, web, stack, token, room, logLevel="debug", **media)
    assert result["ok"], (result, page.console_text()[-3000:])
    return page


async def two_in_a_room(
    browser: Browser,
    web: StaticServer,
    stack: Stack,
    tenant: Tenant,
    room: str,
    *,
    tracks: int,
    **media: bool,
) -> tuple[Page, Page]:
    """alice, then bob, join ``room`` publishing ``media``; returned once each is subscribed to
    the other's ``tracks`` tracks."""
    alice = await join(browser, web, stack, tenant.token("alice"), room, **media)
    bob = await join(browser, web, stack, tenant.token("bob"), room, **media)
    for page, other in ((alice, "bob"), (bob, "alice")):
        await page.wait_for(sees_all_tracks(other, tracks), timeout=20)
    return alice, bob


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


def remote_event(event: str, track_sid: str) -> str:
    """JS: the page recorded ``event`` for the track ``track_sid``."""
    return (
        f"atrium.events.some(e => e.event === {json.dumps(event)}"
        f" && e.trackSid === {json.dumps(track_sid)})"
    )
