"""The media worker's check of client RSP bodies (atrium_media.signaling.frames): what
twilio-video.js and the SDK send passes, a wrong type anywhere the worker reads is refused with
the place named, and whatever passes, the room host handles without failing (Hypothesis)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from atrium_media.signaling.frames import body_problem
from atrium_media.signaling.room_host import RoomHost
from atrium_media.signaling.session import ParticipantSession
from atrium_shared.errors import AtriumError
from atrium_shared.models import ParticipantInfo, RoomInfo, TrackInfo, TrackPriority
from atrium_shared.track_api import PublishedTrackOutcome, PublishTracksResult, TrackToPublish
from tests.support import rsp_fuzz

NOW = datetime(2026, 1, 2, tzinfo=UTC)
ACCOUNT = "AC" + "0" * 32
ROOM = "RM" + "1" * 32
ALICE = "PA" + "a" * 32

# A connect as twilio-video.js 2.x sends it (lib/signaling/v2/twilioconnectiontransport.js).
VIDEO_JS_CONNECT: dict[str, Any] = {
    "type": "connect",
    "version": 2,
    "name": "standup",
    "token": "x.y.z",
    "participant": {
        "revision": 1,
        "tracks": [
            {"enabled": True, "id": "t-1", "kind": "audio", "name": "mic", "priority": "standard"}
        ],
        "media_warnings": [],
    },
    "peer_connections": [
        {"id": "pc-1", "description": {"type": "offer", "revision": 1, "sdp": rsp_fuzz.SDP}}
    ],
    "ice_servers": "success",
    "publisher": {"name": "twilio-video.js", "sdk_version": "2.36.0", "user_agent": "x"},
    "media_signaling": {
        "active_speaker": {"transports": [{"type": "data-channel"}]},
        "network_quality": {"transports": [{"type": "data-channel"}]},
    },
    "subscribe": {"rules": [{"type": "include", "all": True}], "revision": 1},
    "format": "unified",
}
VIDEO_JS_ICE_UPDATE: dict[str, Any] = {
    "type": "update",
    "version": 2,
    "session": "media-1.abc",
    "participant": {"revision": 1, "tracks": []},
    "peer_connections": [
        {
            "id": "pc-1",
            "ice": {
                "candidates": [
                    {
                        "candidate": "candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host",
                        "sdpMid": "0",
                        "sdpMLineIndex": 0,
                        "usernameFragment": "abcd",
                    }
                ],
                "ufrag": "abcd",
                "revision": 1,
            },
        },
        {"id": "pc-1", "description": {"type": "close", "revision": 3}},
    ],
}


def test_what_clients_send_passes() -> None:
    for body in (
        VIDEO_JS_CONNECT,
        VIDEO_JS_ICE_UPDATE,
        {"type": "connect"},
        {"type": "update", "participant": {"revision": 2, "tracks": []}},
        {"type": "sync", "session": "media-1.abc", "token": "x", "participant": {}},
        {"type": "disconnect", "session": "media-1.abc", "version": 2},
    ):
        assert body_problem(body) is None, body


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"type": "connect", "participant": "alice"}, "participant"),
        ({"type": "connect", "participant": {"tracks": {"id": "a"}}}, "participant.tracks"),
        ({"type": "connect", "participant": {"revision": True}}, "participant.revision"),
        ({"type": "connect", "participant": {"revision": "1"}}, "participant.revision"),
        ({"type": "connect", "participant": {"revision": 2**60}}, "participant.revision"),
        ({"type": "connect", "peer_connections": [1]}, "peer_connections.0"),
        ({"type": "connect", "peer_connections": [{"description": []}]}, "description"),
        ({"type": "connect", "peer_connections": [{"description": {"sdp": 5}}]}, "type"),
        ({"type": "connect", "subscribe": {"rules": "all"}}, "subscribe.rules"),
        ({"type": "connect", "media_signaling": {"active_speaker": 1}}, "media_signaling"),
        ({"type": "update", "participant": {"tracks": [{"id": 7, "kind": "audio"}]}}, "id"),
        ({"type": "update", "participant": {"tracks": [{"id": "a"}]}}, "kind"),
        (
            {
                "type": "update",
                "participant": {"tracks": [{"id": "a", "kind": "audio", "enabled": 1}]},
            },
            "enabled",
        ),
        ({"type": "update", "peer_connections": [{"id": ["pc"]}]}, "peer_connections.0.id"),
        ({"type": "update", "peer_connections": [{"ice": {"candidates": [{}]}}]}, "candidate"),
        ({"type": "update", "peer_connections": [{"ice": {"ufrag": 1}}]}, "ice.ufrag"),
        ({"type": "update", "peer_connections": [{"ice": {"complete": "yes"}}]}, "ice.complete"),
        (
            {
                "type": "update",
                "peer_connections": [{"description": {"type": "offer", "revision": -1}}],
            },
            "revision",
        ),
        ({"type": "sync"}, "session"),
        ({"type": "sync", "session": {"id": 1}}, "session"),
        ({"type": "publish"}, "not a message"),
        ({"type": 7}, "not a message"),
        ({}, "not a message"),
    ],
)
def test_a_wrong_type_where_the_worker_reads_is_refused_by_name(
    body: dict[str, Any], where: str
) -> None:
    problem = body_problem(body)
    assert problem is not None and where in problem, (body, problem)


def test_the_reason_never_quotes_the_body() -> None:
    body = {"type": "sync", "session": ["secret-token-value"], "token": "secret-token-value"}
    problem = body_problem(body)
    assert problem is not None and "secret" not in problem


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        rsp_fuzz.json_values.map(lambda v: {"type": "update", "participant": v}),
        st.dictionaries(rsp_fuzz.text, rsp_fuzz.json_values).map(
            lambda d: {**d, "type": d.get("type", "connect")}
        ),
        rsp_fuzz.mutated(rsp_fuzz.connect_bodies("x.y.z", "r")),
        rsp_fuzz.mutated(rsp_fuzz.update_bodies()),
        rsp_fuzz.mutated(rsp_fuzz.sync_bodies("x.y.z", "w.s")),
    )
)
def test_any_json_gets_an_answer_never_an_exception(body: dict[str, Any]) -> None:
    assert body_problem(body) is None or isinstance(body_problem(body), str)


# Whatever the check lets through, the room host reads without failing --------------------------
class PublishingControl:
    """The track service's side of an update: publishes every track, refuses nothing."""

    async def publish(
        self,
        participant: ParticipantInfo,
        tracks: list[TrackToPublish],
        room: RoomInfo | None = None,
    ) -> PublishTracksResult:
        return PublishTracksResult(
            tracks=[
                PublishedTrackOutcome(
                    client_id=t.client_id,
                    track=TrackInfo(
                        sid="MT" + f"{abs(hash(t.client_id)):032d}"[:32],
                        room_sid=ROOM,
                        account_sid=ACCOUNT,
                        participant_sid=participant.sid,
                        name=t.name,
                        kind=t.kind,
                        enabled=t.enabled,
                        date_created=NOW,
                        date_updated=NOW,
                    ),
                    added=True,
                )
                for t in tracks
            ]
        )

    async def unpublish(self, participant: ParticipantInfo, track_sids: list[str]) -> None:
        return None

    async def set_enabled(self, account_sid: str, track_sid: str, enabled: bool) -> None:
        return None

    async def set_priority(self, account_sid: str, track_sid: str, priority: TrackPriority) -> None:
        return None

    async def subscription(self, subscriber: ParticipantInfo, track_sid: str, on: bool) -> None:
        return None


async def _nowhere(*args: Any) -> None:
    return None


async def _apply_updates(bodies: list[dict[str, Any]]) -> None:
    room = RoomInfo(
        sid=ROOM, account_sid=ACCOUNT, unique_name="r", date_created=NOW, date_updated=NOW
    )
    host = RoomHost(room, control=PublishingControl())  # type: ignore[arg-type]
    participant = ParticipantInfo(
        sid=ALICE,
        room_sid=ROOM,
        account_sid=ACCOUNT,
        identity="alice",
        status="connected",
        date_created=NOW,
        date_updated=NOW,
        start_time=NOW,
    )
    session = ParticipantSession(
        session_id="s",
        worker_id="w",
        participant=participant,
        connection_id="c",
        reply_subject="r",
        send_frame=_nowhere,
    )
    host.sessions[ALICE] = session
    try:
        for body in bodies:
            try:
                await host.update(session, body)
            except AtriumError:
                pass  # answered to the client as Twilio's error (53403 for SDP aiortc refuses)
    finally:
        await host.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        rsp_fuzz.update_bodies() | rsp_fuzz.mutated(rsp_fuzz.update_bodies()),
        min_size=1,
        max_size=4,
    )
)
def test_updates_the_check_passes_never_fail_in_the_room_host(
    bodies: list[dict[str, Any]],
) -> None:
    accepted = [b for b in bodies if body_problem(b) is None]
    asyncio.run(_apply_updates(accepted))
