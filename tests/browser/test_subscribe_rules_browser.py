"""The unmodified twilio-video.js follows SubscribeRules changes made over REST."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from tests.browser.harness import Browser, StaticServer
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.video_js import remote_event, sees_all_tracks, two_in_a_room

pytestmark = pytest.mark.stack(REALTIME)

NO_ALICE_VIDEO = [
    {"type": "include", "all": True},
    {"type": "exclude", "publisher": "alice", "kind": "video"},
]
INCLUDE_ALL = [{"type": "include", "all": True}]


def event_count(event: str, track_sid: str) -> str:
    return (
        f"atrium.events.filter(e => e.event === {json.dumps(event)}"
        f" && e.trackSid === {json.dumps(track_sid)}).length"
    )


def video_frames(key: str, at_least: int) -> str:
    """JS: the monitor of ``key`` decoded at least ``at_least`` distinct frames."""
    return (
        f"(() => {{ const m = atrium.media()[{json.dumps(key)}];"
        f" return !!(m && m.distinctFrames >= {at_least}); }})()"
    )


async def update_rules(
    stack: Stack, tenant: Tenant, room_sid: str, participant: str, rules: Any
) -> None:
    client = stack.rest(tenant)
    await asyncio.to_thread(
        lambda: (
            client.video.v1.rooms(room_sid)
            .participants(participant)
            .subscribe_rules.update(rules=rules)
        )
    )


async def test_a_browser_subscriber_follows_rule_changes(
    stack: Stack, tenant: Tenant, browser: Browser, web_server: StaticServer
) -> None:
    alice, bob = await two_in_a_room(
        browser, web_server, stack, tenant, "rules-browser", tracks=2, audio=True, video=True
    )
    alice_state = await alice.eval("atrium.state()")
    bob_state = await bob.eval("atrium.state()")
    room_sid = bob_state["sid"]
    bob_sid = bob_state["localParticipant"]["sid"]
    video_sid = next(
        t["trackSid"] for t in alice_state["localParticipant"]["tracks"] if t["kind"] == "video"
    )
    audio_sid = next(
        t["trackSid"] for t in alice_state["localParticipant"]["tracks"] if t["kind"] == "audio"
    )
    key = f"remote:alice:video:{video_sid}"
    await bob.wait_for(video_frames(key, 3), timeout=20)

    # Excluded: trackUnsubscribed for the video only; the audio stays.
    started = time.monotonic()
    await update_rules(stack, tenant, room_sid, bob_sid, NO_ALICE_VIDEO)
    await bob.wait_for(remote_event("trackUnsubscribed", video_sid), timeout=5)
    print(f"browser trackUnsubscribed after {time.monotonic() - started:.3f}s")
    state = await bob.eval("atrium.state()")
    (remote,) = [p for p in state["participants"] if p["identity"] == "alice"]
    subscribed = {t["trackSid"]: t["subscribed"] for t in remote["tracks"]}
    assert subscribed == {video_sid: False, audio_sid: True}
    assert await bob.eval(event_count("trackUnsubscribed", audio_sid)) == 0

    # Included again: trackSubscribed (a second time) and the video decodes again.
    started = time.monotonic()
    await update_rules(stack, tenant, room_sid, bob_sid, INCLUDE_ALL)
    await bob.wait_for(f"{event_count('trackSubscribed', video_sid)} === 2", timeout=5)
    print(f"browser trackSubscribed after {time.monotonic() - started:.3f}s")
    await bob.wait_for(video_frames(key, 3), timeout=20)
    await bob.wait_for(sees_all_tracks("alice", 2), timeout=5)
    events = [
        e["event"]
        for e in await bob.eval(
            f"atrium.events.filter(e => e.trackSid === {json.dumps(video_sid)})"
        )
    ]
    order = [e for e in events if e in ("trackSubscribed", "trackUnsubscribed")]
    assert order == ["trackSubscribed", "trackUnsubscribed", "trackSubscribed"], events
    # Alice's side is untouched.
    assert (
        await alice.eval("atrium.events.filter(e => e.event === 'trackUnsubscribed').length") == 0
    )
