"""The unmodified twilio-video.js and a track's publish priority: a participant publishes a video
track with ``publishTrack(track, {priority: 'high'})``, the other sees ``publishPriority``
``'high'``; ``setPriority('low')`` fires ``publishPriorityChanged('low')`` on the other side, and
SubscribeRules with a ``priority`` filter (REST, twilio-python) follow the change."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.browser.harness import Browser, Page, StaticServer
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.video_js import join, remote_event

pytestmark = pytest.mark.stack(REALTIME)

# Bob's page: the publication of alice's camera, and what it emitted (RemoteTrackPublication
# events, listened to on the publication itself once it is there).
PUBLICATION = (
    "(() => { const a = Array.from(atrium.room.participants.values())"
    ".find(p => p.identity === 'alice');"
    " return a && Array.from(a.videoTracks.values()).find(t => t.trackName === 'cam'); })()"
)
LISTEN = (
    f"(() => {{ const p = {PUBLICATION}; if (!p) return false;"
    " if (!window.priorityEvents) { window.priorityEvents = [];"
    " p.on('publishPriorityChanged', (priority) => window.priorityEvents.push(priority)); }"
    " return true; })()"
)


async def publication_state(page: Page) -> Any:
    return await page.eval(
        f"(() => {{ const p = {PUBLICATION}; return p && {{trackSid: p.trackSid,"
        " publishPriority: p.publishPriority, subscribed: p.isSubscribed}; })()"
    )


def priority_is(priority: str) -> str:
    return (
        f"(() => {{ const p = {PUBLICATION};"
        f" return !!p && p.publishPriority === {json.dumps(priority)}; }})()"
    )


async def test_the_other_participant_sees_the_publish_priority_and_its_changes(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    alice = await join(browser, web_server, stack, tenant.token("alice"), "priority-browser")
    bob = await join(browser, web_server, stack, tenant.token("bob"), "priority-browser")
    await alice.eval("atrium.createLocalTracks({video: {name: 'cam'}})")
    published = await alice.eval(
        "atrium.room.localParticipant.publishTrack("
        "atrium.localTracks.find(t => t.kind === 'video'), {priority: 'high'})"
        ".then(p => ({trackSid: p.trackSid, priority: p.priority}))",
        timeout=30,
    )
    track_sid = published["trackSid"]
    assert published["priority"] == "high"

    # Bob: the publication carries the publish priority it was published with.
    await bob.wait_for(priority_is("high"), timeout=20)
    assert await bob.eval(LISTEN)
    await bob.wait_for(remote_event("trackSubscribed", track_sid), timeout=20)
    assert (await publication_state(bob))["trackSid"] == track_sid

    # Alice lowers it: Bob's publication emits publishPriorityChanged('low'), and the room
    # trackPublishPriorityChanged('low', publication, participant).
    await alice.eval(
        "Array.from(atrium.room.localParticipant.videoTracks.values())[0].setPriority('low')"
        ".priority"
    )
    await bob.wait_for("(window.priorityEvents || []).includes('low')", timeout=10)
    assert (await publication_state(bob))["publishPriority"] == "low"
    room_events = await bob.eval(
        "atrium.events.filter(e => e.event === 'trackPublishPriorityChanged')"
        ".map(e => [e.trackSid, e.priority])"
    )
    assert room_events == [[track_sid, "low"]]
    assert await bob.eval("window.priorityEvents") == ["low"]

    # REST SubscribeRules with a priority filter see the real publish priority.
    room_sid = (await bob.eval("atrium.state()"))["sid"]
    bob_sid = (await bob.eval("atrium.state()"))["localParticipant"]["sid"]
    participant = stack.rest(tenant).video.v1.rooms(room_sid).participants(bob_sid)
    rules = [{"type": "include", "kind": "video", "priority": "high"}]
    await asyncio.to_thread(lambda: participant.subscribe_rules.update(rules=rules))
    await bob.wait_for(remote_event("trackUnsubscribed", track_sid), timeout=10)
    await alice.eval(
        "Array.from(atrium.room.localParticipant.videoTracks.values())[0].setPriority('high')"
        ".priority"
    )
    await bob.wait_for("(window.priorityEvents || []).join() === 'low,high'", timeout=10)
    await bob.wait_for(
        f"atrium.events.filter(e => e.event === 'trackSubscribed'"
        f" && e.trackSid === {json.dumps(track_sid)}).length === 2",
        timeout=10,
    )
    subscribed = await asyncio.to_thread(lambda: participant.subscribed_tracks.list())
    assert [t.sid for t in subscribed] == [track_sid]
