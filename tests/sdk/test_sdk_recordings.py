"""Recordings end to end: two SDK participants in a recorded room, the media worker writes a file
per track, REST lists them as Twilio does, the media downloads through the signed redirect and
decodes with PyAV, the recording callbacks are signed, and another account sees none of it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from twilio.base.exceptions import TwilioRestException

from atrium_video import create_local_audio_track, create_local_video_track
from tests.support.rtp_media import decode_file
from tests.support.sdk import join, sees
from tests.support.stack import RECORDED, Stack
from tests.support.tenants import Tenant, make_tenant
from tests.support.waiting import eventually
from tests.support.webhook import Webhook

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.stack(RECORDED)]

SECONDS = 4.0  # how long both participants publish
EXPECTED = {"audio": ("audio", "mka", "OPUS"), "video": ("video", "mkv", "VP8")}


def mic_and_cam() -> list[Any]:
    return [create_local_audio_track(name="mic"), create_local_video_track(name="cam")]


async def test_a_recorded_room_gives_four_playable_files_and_twilios_resources(
    stack: Stack, tenant: Tenant, webhook: Webhook, redis: Redis, tmp_path: Path
) -> None:
    client = stack.rest(tenant)
    room = await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(
            unique_name="recorded",
            record_participants_on_connect=True,
            status_callback=webhook.url("/events"),
        )
    )
    alice, _ = await join(stack, tenant, "alice", "recorded", tracks=mic_and_cam())
    bob, _ = await join(stack, tenant, "bob", "recorded", tracks=mic_and_cam())
    try:
        await eventually(sees(alice, "bob", 2), timeout=20, message="alice receives bob")
        await eventually(sees(bob, "alice", 2), timeout=20, message="bob receives alice")

        async def four_processing() -> bool:
            found = await asyncio.to_thread(lambda: client.video.v1.recordings.list())
            return len(found) == 4

        await eventually(four_processing, timeout=20, message="four recordings started")
        await eventually(lambda: alice.is_recording, timeout=10, message="the SDK sees recording")
        published_at = time.monotonic()
        await asyncio.sleep(SECONDS)  # the media being recorded: real time passing is the point
    finally:
        await alice.disconnect()
        await bob.disconnect()
    published_for = time.monotonic() - published_at

    async def all_completed() -> list[Any]:
        found = await asyncio.to_thread(lambda: client.video.v1.recordings.list())
        return found if found and all(r.status == "completed" for r in found) else []

    recordings = await eventually(all_completed, timeout=30, message="four recordings completed")
    assert len(recordings) == 4
    identities = {alice.local_participant.sid: "alice", bob.local_participant.sid: "bob"}
    seen: set[tuple[str, str]] = set()
    for recording in recordings:
        participant = recording.grouping_sids["participant_sid"]
        assert recording.grouping_sids["room_sid"] == room.sid
        assert participant in identities
        assert recording.sid.startswith("RT") and recording.source_sid.startswith("MT")
        assert recording.account_sid == tenant.account.sid
        expected = (
            ("audio", "mka", "OPUS") if recording.type == "audio" else ("video", "mkv", "VP8")
        )
        assert (recording.type, recording.container_format, recording.codec) == expected
        assert recording.track_name == ("mic" if recording.type == "audio" else "cam")
        assert recording.size > 0 and recording.duration >= 1
        seen.add((identities[participant], recording.type))

        # The media: a redirect to a signed URL, then the file itself, decoded with PyAV.
        media = f"{stack.base_url}/v1/Recordings/{recording.sid}/Media"
        auth = (tenant.api_key.sid, tenant.key_secret)
        async with httpx.AsyncClient() as http:
            redirect = await http.get(media, auth=auth)
            assert redirect.status_code == 302, redirect.text
            download = await http.get(redirect.headers["location"])
            assert download.status_code == 200
        path = tmp_path / f"{recording.sid}.{recording.container_format}"
        path.write_bytes(download.content)
        assert len(download.content) == recording.size
        decoded = decode_file(str(path))
        if recording.type == "audio":
            assert decoded.codec == "opus" and decoded.rms > 0.01
        else:
            assert decoded.codec == "vp8" and decoded.distinct_pictures >= 10
        # True to the wall clock: the file lasts as long as the track was published (it was
        # published a little before the timed window and stopped just after it).
        assert published_for - 1.0 <= decoded.duration <= published_for + 6.0, decoded
    assert seen == {("alice", "audio"), ("alice", "video"), ("bob", "audio"), ("bob", "video")}
    # Offsets from the room's creation to each file's first sample align one participant's
    # tracks (video starts at its first keyframe, a little after audio).
    for participant in identities:
        offsets = {
            r.type: r.offset
            for r in recordings
            if r.grouping_sids["participant_sid"] == participant
        }
        assert offsets["audio"] > 0 and offsets["video"] > 0, offsets
        assert abs(offsets["video"] - offsets["audio"]) < 1500, offsets

    # The room-scoped list and its filters agree.
    room_list = await asyncio.to_thread(lambda: client.video.v1.rooms(room.sid).recordings.list())
    assert {r.sid for r in room_list} == {r.sid for r in recordings}
    audio_only = await asyncio.to_thread(
        lambda: client.video.v1.recordings.list(media_type="audio")
    )
    assert {r.type for r in audio_only} == {"audio"} and len(audio_only) == 2

    # Signed callbacks (the webhook checks every signature with twilio's RequestValidator).
    async def callbacks() -> dict[str, int]:
        events = [r.params.get("StatusCallbackEvent", "") for r in webhook.for_room(room.sid)]
        counts = {e: events.count(e) for e in ("recording-started", "recording-completed")}
        return counts if counts == {"recording-started": 4, "recording-completed": 4} else {}

    await eventually(callbacks, timeout=20, message="4 recording-started and -completed")
    assert all(r.valid_signature for r in webhook.for_room(room.sid))
    completed = [
        r.params
        for r in webhook.for_room(room.sid)
        if r.params.get("StatusCallbackEvent") == "recording-completed"
    ]
    for params in completed:
        assert params["MediaUri"] == f"/v1/Recordings/{params['RecordingSid']}/Media"
        assert params["Container"] in ("mka", "mkv") and int(params["Size"]) > 0

    # Another account sees none of it.
    other = await make_tenant(redis, "tenant-b")
    stranger = stack.rest(other)
    assert await asyncio.to_thread(lambda: stranger.video.v1.recordings.list()) == []
    with pytest.raises(TwilioRestException) as caught:
        await asyncio.to_thread(lambda: stranger.video.v1.recordings(recordings[0].sid).fetch())
    assert caught.value.status == 404
    async with httpx.AsyncClient() as http:
        refused = await http.get(
            f"{stack.base_url}/v1/Recordings/{recordings[0].sid}/Media",
            auth=(other.api_key.sid, other.key_secret),
        )
    assert refused.status_code == 404

    # Deleting removes the media.
    gone = recordings[0]
    await asyncio.to_thread(lambda: client.video.v1.recordings(gone.sid).delete())
    fetched = await asyncio.to_thread(lambda: client.video.v1.recordings(gone.sid).fetch())
    assert fetched.status == "deleted"
