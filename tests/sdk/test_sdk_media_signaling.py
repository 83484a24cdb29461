"""Media signaling extensions in the Python SDK against the real stack: dominant speaker, network
quality (with induced uplink loss), ``automatic_subscription=False`` and reconnecting
participants."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiortc.rtp import is_rtcp

import atrium_video.room
from atrium_video import (
    LocalDataTrack,
    NetworkQualityStats,
    Participant,
    RemoteAudioTrack,
    RemoteParticipant,
    Room,
    ToneSource,
    TwilioError,
    create_local_audio_track,
    create_local_video_track,
)
from atrium_video.transport import TcmpTransport
from tests.support.sdk import Events, Recorder, describe, full_tracks, join, publication
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.stack(REALTIME)]

LOUD = 0.5  # a tone at about -9 dBov
QUIET = 0.0005  # about -69 dBov: above digital silence, far below speech
SILENT = 0.0  # digital silence: RFC 6464 level 127


class Voice(ToneSource):
    """A tone whose loudness the test changes while it is being sent."""

    def __init__(self, amplitude: float) -> None:
        super().__init__(amplitude=amplitude)

    def set_amplitude(self, amplitude: float) -> None:
        self._pcm = ToneSource(amplitude=amplitude)._pcm


def until(condition: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def probe() -> Any:
        return condition()

    return probe


def identity_of(participant: Participant | None) -> str | None:
    return participant.identity if participant is not None else None


def dominant(room: Room, identity: str) -> Callable[[], Awaitable[bool]]:
    """A probe: ``room`` sees ``identity`` as the dominant speaker."""
    return until(lambda: identity_of(room.dominant_speaker) == identity)


def has_level(room: Room, identity: str | None = None) -> Callable[[], Awaitable[bool]]:
    """A probe: ``room`` knows a level 0..5 for ``identity`` (its own when None)."""

    def probe() -> bool:
        who = room.local_participant if identity is None else room.get_participant(identity)
        return who is not None and level_ok(who.network_quality_level)

    return until(probe)


@asynccontextmanager
async def rooms(
    *joining: Coroutine[Any, Any, tuple[Room, Recorder]],
    setup: Callable[[Room], None] | None = None,
) -> AsyncIterator[list[Room]]:
    """Join in order (``setup`` each room as soon as it joined, before any extension message
    can reach it); disconnect every room that joined, whatever happens."""
    joined: list[Room] = []
    try:
        for join_one in joining:
            room, _ = await join_one
            if setup is not None:
                setup(room)
            joined.append(room)
        yield joined
    finally:
        for pending in joining[len(joined) :]:
            pending.close()  # never awaited: a join before it failed
        for room in joined:
            await room.disconnect()


# Dominant speaker --------------------------------------------------------------------------------
async def test_the_loud_participant_is_the_dominant_speaker_and_a_hand_over_follows(
    stack: Stack, tenant: Tenant
) -> None:
    ann_voice, ben_voice = Voice(LOUD), Voice(QUIET)
    tracks = {
        "ann": [create_local_audio_track(name="mic", source=ann_voice)],
        "ben": [create_local_audio_track(name="mic", source=ben_voice)],
        "cat": [create_local_audio_track(name="mic", source=Voice(SILENT))],
    }
    joining = [
        join(stack, tenant, who, "speakers", tracks=tracks[who], dominant_speaker=True)
        for who in ("ann", "ben", "cat")
    ]
    seen: dict[Room, Events] = {}

    def watch(room: Room) -> None:
        seen[room] = Events(room, "dominant_speaker_changed")

    async with rooms(*joining, setup=watch) as (ann, ben, cat):
        ann_sid = ann.local_participant.sid
        for room in (ben, cat):
            await eventually(
                dominant(room, "ann"),
                timeout=20,
                message=f"{room.local_participant.identity} sees ann as the dominant speaker",
            )
            assert seen[room]["dominant_speaker_changed"][-1] == (room.get_participant("ann"),)
        # Ann herself: the server names her, and as in twilio-video.js room.dominant_speaker is a
        # RemoteParticipant, so it stays None (the event still fires, with None).
        await eventually(
            until(lambda: ann._dominant_speaker_sid == ann_sid),
            timeout=20,
            message="ann is told she is the dominant speaker",
        )
        assert ann.dominant_speaker is None
        assert (None,) in seen[ann]["dominant_speaker_changed"]
        # The extension's channel is its transport, never a remote data track.
        for room in (ann, ben, cat):
            signaling = room._dominant_speaker_signaling
            assert signaling is not None and signaling.transport is not None, describe(room)
            assert signaling.label not in room._remote_channels
            assert all(len(p.tracks) == 1 for p in room.participants.values()), describe(room)

        # Hand-over: ann stops talking and ben talks; the others follow with some hysteresis.
        ann_voice.set_amplitude(SILENT)
        ben_voice.set_amplitude(LOUD)
        for room in (ann, cat):
            await eventually(
                dominant(room, "ben"),
                timeout=20,
                message=f"{room.local_participant.identity} sees ben take over",
            )
        assert all(identity_of(args[0]) != "cat" for args in seen[ann]["dominant_speaker_changed"])

        # The dominant speaker leaves: there is none any more (dominant_speaker_changed, None).
        before = len(seen[cat]["dominant_speaker_changed"])
        await ben.disconnect()
        await eventually(
            until(lambda: len(seen[cat]["dominant_speaker_changed"]) > before),
            timeout=15,
            message="cat is told the dominant speaker left",
        )
        assert seen[cat]["dominant_speaker_changed"][before] == (None,)
        assert cat.dominant_speaker is None and cat.get_participant("ben") is None


async def test_without_dominant_speaker_nothing_is_asked_or_granted(
    stack: Stack, tenant: Tenant
) -> None:
    joining = [
        join(stack, tenant, "ann", "no-extensions", tracks=[create_local_audio_track()]),
        join(
            stack,
            tenant,
            "ben",
            "no-extensions",
            tracks=[create_local_audio_track(source=Voice(SILENT))],
            dominant_speaker=True,
        ),
    ]
    async with rooms(*joining) as (ann, ben):
        await eventually(
            until(lambda: identity_of(ben.dominant_speaker) == "ann"),
            timeout=20,
            message="ben (who asked) sees ann as the dominant speaker",
        )
        assert ann._dominant_speaker_signaling is None
        assert ann._network_quality_signaling is None and not ann._msp_by_label
        assert ann.local_participant.network_quality_level is None
        assert ann._remote_channels == {}, describe(ann)  # no channel opened for ann


# Network quality ---------------------------------------------------------------------------------
def level_ok(level: Any) -> bool:
    return isinstance(level, int) and 0 <= level <= 5


async def test_network_quality_levels_for_the_local_and_the_remote_participants(
    stack: Stack, tenant: Tenant
) -> None:
    joining = [
        join(
            stack,
            tenant,
            "ann",
            "quality",
            tracks=full_tracks(),
            network_quality={"local": 1, "remote": 1},
        ),
        join(
            stack,
            tenant,
            "ben",
            "quality",
            tracks=full_tracks(),
            network_quality={"local": 3, "remote": 2},
        ),
        join(stack, tenant, "cat", "quality", audio=True, network_quality=True),
    ]
    changed: dict[Room, Events] = {}

    def watch(room: Room) -> None:
        changed[room] = Events(room.local_participant, "network_quality_level_changed")

    async with rooms(*joining, setup=watch) as (ann, ben, cat):
        for room in (ann, ben, cat):
            me = room.local_participant
            await eventually(
                has_level(room),
                timeout=20,
                message=f"{me.identity}'s own network quality level",
            )
        # Remote levels: ann and ben asked for remote verbosity >= 1.
        for room, others in ((ann, ("ben", "cat")), (ben, ("ann", "cat"))):
            for identity in others:
                await eventually(
                    has_level(room, identity),
                    timeout=20,
                    message=f"{room.local_participant.identity} sees {identity}'s level",
                )
        # Events carry the level, and the stats of the verbosity asked for.
        for room in (ann, ben, cat):
            me = room.local_participant
            assert changed[room]["network_quality_level_changed"], me.identity
            level, stats = changed[room]["network_quality_level_changed"][-1]
            assert level == me.network_quality_level and stats is me.network_quality_stats
        # ann: verbosity 1, level only.
        assert ann.local_participant.network_quality_stats is None
        assert ann.get_participant("ben").network_quality_stats is None  # type: ignore[union-attr]
        # ben: local verbosity 3 (levels and their inputs), remote verbosity 2 (levels only).
        if ben.local_participant.network_quality_level:  # at level 0 the breakdown is left out
            mine = ben.local_participant.network_quality_stats
            assert isinstance(mine, NetworkQualityStats) and mine.audio and mine.video, mine
            assert level_ok(mine.audio.send) and level_ok(mine.video.recv), mine
            assert mine.audio.send_stats is not None, mine
        remote_ann = ben.get_participant("ann")
        assert remote_ann is not None
        if remote_ann.network_quality_level:
            theirs = remote_ann.network_quality_stats
            assert isinstance(theirs, NetworkQualityStats) and theirs.audio, theirs
            assert level_ok(theirs.audio.send) and theirs.audio.send_stats is None, theirs
        # cat asked for `True` (local 1, remote 0): no remote levels, even after several answers.
        nq = cat._network_quality_signaling
        assert nq is not None and (nq.local_verbosity, nq.remote_verbosity) == (1, 0)
        answered = nq.answers_received
        await eventually(
            until(lambda: nq.answers_received >= answered + 2),
            timeout=15,
            message="cat's requests are answered again (about one a second)",
        )
        assert all(p.network_quality_level is None for p in cat.participants.values())
        assert nq.requests_sent >= nq.answers_received >= 3


class LossyUplink:
    """Drops a share of a room's outgoing RTP (not RTCP) on the client side: a lossy uplink."""

    def __init__(self, room: Room, share: float, seed: int = 10) -> None:
        senders = room.peer_connection.getSenders()
        transports = {id(s.transport): s.transport for s in senders if s.transport is not None}
        assert len(transports) == 1, "one bundled transport"
        (self._transport,) = transports.values()
        self._original = self._transport._send_rtp
        self._random = random.Random(seed)
        self.share = share
        self.sent = self.dropped = 0

    async def _send_rtp(self, data: bytes) -> None:
        if not is_rtcp(data) and self._random.random() < self.share:
            self.dropped += 1
            return
        self.sent += 1
        await self._original(data)

    def start(self) -> None:
        self._transport._send_rtp = self._send_rtp  # type: ignore[method-assign]

    def stop(self) -> None:
        self._transport._send_rtp = self._original  # type: ignore[method-assign]


async def test_uplink_loss_lowers_the_publishers_level_and_it_recovers(
    stack: Stack, tenant: Tenant
) -> None:
    levels = {"local": 1, "remote": 1}
    joining = [
        join(
            stack,
            tenant,
            "ann",
            "lossy",
            tracks=[create_local_audio_track(), create_local_video_track()],
            network_quality=levels,
        ),
        join(
            stack,
            tenant,
            "ben",
            "lossy",
            tracks=[create_local_audio_track()],
            network_quality=levels,
        ),
    ]
    async with rooms(*joining) as (ann, ben):
        ann_at_ben = ben.get_participant("ann")
        assert ann_at_ben is not None
        history: list[tuple[float, str, int]] = []
        started = time.monotonic()
        ann.local_participant.on(
            "network_quality_level_changed",
            lambda level, _: history.append((time.monotonic() - started, "ann", level)),
        )
        ann_at_ben.on(
            "network_quality_level_changed",
            lambda level, _: history.append((time.monotonic() - started, "ann@ben", level)),
        )

        def both(check: Callable[[int], bool]) -> Callable[[], Awaitable[bool]]:
            def probe() -> bool:
                mine, seen = (
                    ann.local_participant.network_quality_level,
                    ann_at_ben.network_quality_level,
                )
                return mine is not None and seen is not None and check(mine) and check(seen)

            return until(probe)

        await eventually(
            both(lambda level: level >= 4),
            timeout=30,
            message=f"a good level for ann before the loss; {history}",
        )
        uplink = LossyUplink(ann, 0.30)
        uplink.start()
        try:
            await eventually(
                both(lambda level: level <= 3),
                timeout=30,
                message=f"ann's level falls with 30% uplink loss; {history}",
            )
            lossy_at = time.monotonic() - started
        finally:
            uplink.stop()
        assert uplink.dropped > 0 and 0.2 < uplink.dropped / (uplink.dropped + uplink.sent) < 0.4
        await eventually(
            both(lambda level: level >= 4),
            timeout=30,
            message=f"ann's level recovers once the loss stops; {history}",
        )
        print(f"loss from {lossy_at:.1f}s, levels: {history}")


# automatic_subscription=False -------------------------------------------------------------------
async def test_without_automatic_subscription_nothing_is_subscribed_until_rest_rules_say_so(
    stack: Stack, tenant: Tenant
) -> None:
    client = stack.rest(tenant)
    joining = [
        join(stack, tenant, "ann", "manual", tracks=full_tracks()),
        join(stack, tenant, "ben", "manual", automatic_subscription=False),
    ]
    async with rooms(*joining) as (ann, ben):
        ben_seen = Recorder(ben)
        participant = client.video.v1.rooms(ben.sid).participants(ben.local_participant.sid)
        await eventually(
            until(lambda: len(getattr(ben.get_participant("ann"), "tracks", {})) == 3),
            timeout=20,
            message="ben sees ann's three publications",
        )
        # The connect's exclude-all rule is ben's SubscribeRules, and REST lists nothing.
        rules = await asyncio.to_thread(participant.subscribe_rules.fetch)
        assert [(r["type"], r["all"]) for r in rules.rules] == [("exclude", True)], rules.rules
        subscribed = await asyncio.to_thread(participant.subscribed_tracks.list)
        assert subscribed == []
        other = ben.get_participant("ann")
        assert other is not None
        assert not any(p.is_subscribed for p in other.tracks.values()), describe(ben)
        assert ben_seen.count("track_subscribed") == 0

        # A REST update subscribes ben to ann's audio, and only that.
        audio = publication(ben, "ann", "audio")
        await asyncio.to_thread(
            participant.subscribe_rules.update,
            rules=[{"type": "include", "publisher": "ann", "kind": "audio"}],
        )
        await eventually(
            until(lambda: audio.is_subscribed), timeout=15, message="ben gets ann's audio"
        )
        assert [e for e in ben_seen.events if e[0] == "track_subscribed"] == [
            ("track_subscribed", audio.track_sid)
        ]
        assert not publication(ben, "ann", "video").is_subscribed
        assert not publication(ben, "ann", "data").is_subscribed

        async def rest_lists_audio() -> bool:
            listed = await asyncio.to_thread(participant.subscribed_tracks.list)
            return {t.sid for t in listed} == {audio.track_sid}

        await eventually(rest_lists_audio, timeout=10, message="REST SubscribedTracks: the audio")
        # ann, with automatic subscription, gets nothing from ben (he publishes nothing) and her
        # rules were never changed: the default include-all.
        ann_rules = await asyncio.to_thread(
            client.video.v1.rooms(ann.sid)
            .participants(ann.local_participant.sid)
            .subscribe_rules.fetch
        )
        assert [(r["type"], r["all"]) for r in ann_rules.rules] == [("include", True)]


# Reconnecting participants -----------------------------------------------------------------------
class HeldResync:
    """Holds a room's RSP ``sync`` back (each attempt fails as an unreachable server would) until
    released, so the others have a reconnecting participant to look at."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.released = asyncio.Event()
        self.attempts = 0
        held = self

        class Transport(TcmpTransport):
            async def open(self, hello_body: dict[str, Any]) -> None:
                if hello_body.get("type") == "sync" and not held.released.is_set():
                    held.attempts += 1
                    raise TwilioError(53000, "held by the test")
                await super().open(hello_body)

        monkeypatch.setattr(atrium_video.room, "TcmpTransport", Transport)


async def _drop_and_hold(
    stack: Stack,
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    room_name: str,
    during: Callable[[Room, Room, RemoteParticipant], Awaitable[None]],
    after: Callable[[Room, Room, RemoteParticipant], Awaitable[None]] | None = None,
) -> tuple[Events, Events, list[str]]:
    joining = [
        join(stack, tenant, "ann", room_name, tracks=full_tracks()),
        join(
            stack, tenant, "ben", room_name, tracks=[create_local_audio_track(), LocalDataTrack()]
        ),
    ]
    async with rooms(*joining) as (ann, ben):
        await eventually(
            until(lambda: len(getattr(ann.get_participant("ben"), "tracks", {})) == 2),
            timeout=20,
            message="ann sees ben's tracks",
        )
        ben_at_ann = ann.get_participant("ben")
        assert ben_at_ann is not None and ben_at_ann.state == "connected"
        at_room = Events(
            ann, "participant_reconnecting", "participant_reconnected", "participant_disconnected"
        )
        at_participant = Events(ben_at_ann, "reconnecting", "reconnected")
        order: list[str] = []
        for name in ("participant_reconnecting", "participant_reconnected"):
            ann.on(name, lambda *_, name=name: order.append(name))
        ben_self = Events(ben.local_participant, "reconnecting", "reconnected")

        held = HeldResync(monkeypatch)
        transport = ben._transport
        assert transport is not None
        transport.drop()
        await eventually(
            until(lambda: ben_at_ann.state == "reconnecting"),
            timeout=10,
            message=f"ann sees ben reconnecting; {describe(ann)}",
        )
        assert at_room["participant_reconnecting"] == [(ben_at_ann,)]
        assert at_participant["reconnecting"] == [()]
        assert ben.state == "reconnecting" and ben.local_participant.state == "reconnecting"
        assert ben_self["reconnecting"] == [()]
        assert held.attempts >= 1
        await during(ann, ben, ben_at_ann)

        held.released.set()
        await eventually(
            until(lambda: ben_at_ann.state == "connected"),
            timeout=20,
            message="ann sees ben reconnected",
        )
        assert at_room["participant_reconnected"] == [(ben_at_ann,)]
        assert at_participant["reconnected"] == [()]
        await eventually(
            until(lambda: ben.state == "connected"), timeout=10, message="ben resynced"
        )
        assert ben.local_participant.state == "connected" and ben_self["reconnected"] == [()]
        # Still the same participant, with the same publications; nobody left.
        assert ann.get_participant("ben") is ben_at_ann and len(ben_at_ann.tracks) == 2
        assert at_room["participant_disconnected"] == []
        if after is not None:
            await after(ann, ben, ben_at_ann)
        return at_room, at_participant, order


async def test_a_participant_whose_socket_drops_is_seen_reconnecting_then_reconnected(
    stack: Stack, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def meanwhile(ann: Room, ben: Room, ben_at_ann: RemoteParticipant) -> None:
        # ben's media keeps flowing while his signaling is away: ann keeps receiving his audio.
        audio = publication(ann, "ben", "audio")
        assert audio.track is not None
        frames = audio.track.frames_received
        await eventually(
            until(lambda: audio.track is not None and audio.track.frames_received > frames + 25),
            timeout=10,
            message="ben's audio still reaches ann",
        )

    _, _, order = await _drop_and_hold(stack, tenant, monkeypatch, "reconnecting", meanwhile)
    assert order == ["participant_reconnecting", "participant_reconnected"]


async def test_rest_shows_a_reconnecting_participant(
    stack: Stack, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = stack.rest(tenant)

    async def status(room: Room, sid: str) -> str:
        fetched = await asyncio.to_thread(client.video.v1.rooms(room.sid).participants(sid).fetch)
        return str(fetched.status)

    async def meanwhile(ann: Room, ben: Room, ben_at_ann: RemoteParticipant) -> None:
        async def reconnecting() -> bool:
            return await status(ann, ben_at_ann.sid) == "reconnecting"

        await eventually(reconnecting, timeout=10, message="REST status reconnecting")

    async def afterwards(ann: Room, ben: Room, ben_at_ann: RemoteParticipant) -> None:
        async def connected() -> bool:
            return await status(ann, ben_at_ann.sid) == "connected"

        await eventually(connected, timeout=10, message="REST status connected again")

    await _drop_and_hold(stack, tenant, monkeypatch, "rest-reconnecting", meanwhile, afterwards)


class DeadUplink:
    """Everything the client sends over its media transport (RTP, RTCP, SCTP) is dropped, while
    ICE and the signaling socket stay up: its media is lost, nothing else."""

    def __init__(self, room: Room) -> None:
        senders = room.peer_connection.getSenders()
        transports = {id(s.transport): s.transport for s in senders if s.transport is not None}
        (dtls,) = transports.values()
        self._ice = dtls.transport
        self._original = self._ice._send

    async def _drop(self, data: bytes) -> None:
        return None

    def start(self) -> None:
        self._ice._send = self._drop

    def stop(self) -> None:
        self._ice._send = self._original


async def test_a_participant_whose_media_is_lost_is_seen_reconnecting_then_reconnected(
    stack: Stack, tenant: Tenant
) -> None:
    client = stack.rest(tenant)
    joining = [
        join(stack, tenant, "ann", "media-loss", tracks=full_tracks()),
        join(stack, tenant, "ben", "media-loss", tracks=[create_local_audio_track()]),
    ]
    async with rooms(*joining) as (ann, ben):
        await eventually(
            until(lambda: getattr(ann.get_participant("ben"), "state", None) == "connected"),
            timeout=20,
            message="ann sees ben",
        )
        ben_at_ann = ann.get_participant("ben")
        assert ben_at_ann is not None

        def hears_ben() -> bool:
            audio = [p for p in ben_at_ann.tracks.values() if p.kind == "audio"]
            track = audio[0].track if audio else None
            return isinstance(track, RemoteAudioTrack) and track.frames_received > 10

        await eventually(until(hears_ben), timeout=20, message="ben's audio reaches ann")
        order: list[str] = []
        for name in ("participant_reconnecting", "participant_reconnected"):
            ann.on(name, lambda *_, name=name: order.append(name))
        uplink = DeadUplink(ben)
        cut_at = time.monotonic()
        uplink.start()
        await eventually(
            until(lambda: ben_at_ann.state == "reconnecting"),
            timeout=10,
            message="ann sees ben reconnecting once his media stops",
        )
        noticed_after = time.monotonic() - cut_at
        participant = client.video.v1.rooms(ann.sid).participants(ben_at_ann.sid)

        async def rest_status(expected: str) -> bool:
            return str((await asyncio.to_thread(participant.fetch)).status) == expected

        await eventually(
            lambda: rest_status("reconnecting"), timeout=10, message="REST shows ben reconnecting"
        )
        assert ben.state == "connected"  # his signaling never dropped
        uplink.stop()
        await eventually(
            until(lambda: ben_at_ann.state == "connected"),
            timeout=10,
            message="ann sees ben connected again once his media is back",
        )
        await eventually(
            lambda: rest_status("connected"), timeout=10, message="REST shows ben connected again"
        )
        assert order == ["participant_reconnecting", "participant_reconnected"]
        assert noticed_after < 6, noticed_after  # 3 s of silence + the once-a-second look
