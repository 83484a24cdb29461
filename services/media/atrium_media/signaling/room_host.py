"""A room hosted on this worker: its sessions, its media router, and the RSP flows between them.

Each session's own work (its descriptions, its state) runs under that session's lock. Effects on
other sessions (a new subscription, a participant update) are scheduled as their own tasks, so no
code path ever holds two sessions' locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCDataChannel
from opentelemetry import trace

from atrium_media.extensions import (
    ActiveSpeakerMessage,
    DominantSpeakerDetector,
    NetworkQualityRequest,
    build_network_quality_message,
)
from atrium_media.extensions.allocation import Dimensions, Priority, VideoBandwidthProfile
from atrium_media.extensions.msp import ClientMessage
from atrium_media.extensions.track_msp import (
    ClientResetRequest,
    RenderHintResult,
    RenderHintResults,
    RenderHintsReply,
    RenderHintsRequest,
    TrackClientMessage,
    TrackPriorityRequest,
    TrackSwitchOffMessage,
)
from atrium_media.forwarding import LayerSsrcPair, MediaRouter, UnknownTrack
from atrium_media.ports import ControlPlane
from atrium_media.signaling.bandwidth import (
    EVERY_LAYER,
    SubscriberView,
    allocate_layers,
    encodings_needed,
    layers_by_mid,
    merged_hint,
    publisher_hints_message,
    video_profile_of,
)
from atrium_media.signaling.media_signaling import (
    ACTIVE_SPEAKER,
    NETWORK_QUALITY,
    PUBLISHER_HINTS,
    RENDER_HINTS,
    TRACK_SWITCH_OFF,
    MediaSignaling,
    requested_extensions,
)
from atrium_media.signaling.sdp import is_session_description
from atrium_media.signaling.session import (
    SESSION_TIMEOUT_SECONDS,
    ClientTrack,
    ParticipantSession,
    Subscription,
    signaled_priority,
)
from atrium_shared.errors import SERVER_REMOTE_DESCRIPTION_FAILED, AtriumError
from atrium_shared.models import RoomInfo, TrackInfo
from atrium_shared.track_api import PublishedTrackOutcome, PublishTracksResult, TrackToPublish

log = logging.getLogger("atrium.media.room")
tracer = trace.get_tracer("atrium.media")

# How often the dominant speaker is reconsidered (the detector decides every 300 ms at most) and
# how often each participant's link is sampled for network quality (twilio-video.js asks about
# once a second).
SPEAKER_TICK_SECONDS = 0.1
QUALITY_SAMPLE_SECONDS = 1.0
MEDIA_WATCH_SECONDS = 1.0
# How often each subscriber's simulcast layers are reconsidered.
ALLOCATION_SECONDS = 0.5
# How long after a remote participant was announced to a client its network quality level may
# be sent to it (the signaling update and the MSP answer travel on different channels).
QUALITY_REMOTE_GRACE_SECONDS = 1.0
# Asking the track service for a newcomer's subscriptions again while it restarts.
JOIN_RETRY_FIRST_SECONDS = 0.25
JOIN_RETRY_MAX_SECONDS = 2.0
# twilio-video.js's connect() always sends an include-all rule unless automaticSubscription is
# false: that one is the default and needs no change at the track service.
DEFAULT_SUBSCRIBE_RULES = [{"type": "include", "all": True}]


class RoomHost:
    def __init__(self, room: RoomInfo, control: ControlPlane) -> None:
        self.room = room
        self.control = control
        self.router = MediaRouter(room.sid)
        self.sessions: dict[str, ParticipantSession] = {}  # by participant SID
        self._tasks: set[asyncio.Task[None]] = set()
        self.speakers = DominantSpeakerDetector()
        self._speaker_loop: asyncio.Task[None] | None = None
        self._quality_loop: asyncio.Task[None] | None = None
        self._media_watch: asyncio.Task[None] | None = None
        self._allocation_loop: asyncio.Task[None] | None = None
        # Called when a participant turns reconnecting or connected again (the worker tells
        # the participant service, for REST).
        self.on_state_changed: Callable[[ParticipantSession], None] | None = None
        # The RSP `recording` field of this room (the worker's recordings know it).
        self.recording_state: Callable[[], dict[str, object] | None] = lambda: None
        # Called when a session's signaling state changed outside a client frame (a worker
        # offer, a state announcement): the worker records it for a handover.
        self.on_session_changed: Callable[[ParticipantSession], None] = lambda session: None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    def others(self, session: ParticipantSession) -> list[ParticipantSession]:
        return [s for s in self.sessions.values() if s is not session and not s.closed]

    # Joining ----------------------------------------------------------------------------------
    async def connect(self, session: ParticipantSession, body: dict[str, Any]) -> None:
        """Answer the connect offer, register the signaled tracks, reply ``connected``."""
        with tracer.start_as_current_span(
            "rsp connect",
            attributes={
                "atrium.room_sid": self.room.sid,
                "atrium.participant_sid": session.participant.sid,
            },
        ):
            async with session.lock:
                self.sessions[session.participant.sid] = session
                session.pc.on("datachannel", lambda channel: self._on_datachannel(session, channel))
                pcs = body.get("peer_connections") or []
                offer = next(
                    (pc for pc in pcs if (pc.get("description") or {}).get("type") == "offer"), None
                )
                answer: dict[str, Any] | None = None
                # Publishers send only the room's VideoCodecs (their offers are answered so).
                session.video_codecs = list(self.room.video_codecs)
                if offer is not None:
                    session.pc_id = str(offer.get("id", ""))
                    description = offer["description"]
                    try:
                        sdp_text = str(description.get("sdp", ""))
                        if not is_session_description(sdp_text):
                            raise ValueError("not a session description")
                        answer = await session.apply_client_offer(
                            sdp_text, int(description.get("revision", 1))
                        )
                    except Exception as exc:  # aiortc refuses SDP with various exceptions
                        raise AtriumError(
                            SERVER_REMOTE_DESCRIPTION_FAILED,
                            "Server is unable to apply a remote media description",
                            400,
                        ) from exc
                await self._apply_participant_state(session, body.get("participant") or {})
                session.msp = MediaSignaling(
                    requested_extensions(body),
                    lambda name, message: self._on_msp_message(session, name, message),
                )
                session.msp.on_ready = lambda name: self._on_msp_ready(session, name)
                session.video_profile = self._video_profile(session, body)
                connected: dict[str, Any] = {
                    "type": "connected",
                    "session": session.session,
                    "options": {"session_timeout": SESSION_TIMEOUT_SECONDS},
                    "sid": self.room.sid,
                    "name": self.room.unique_name,
                    "participant": {
                        "sid": session.participant.sid,
                        "identity": session.participant.identity,
                    },
                    "participants": [o.remote_state() for o in self.others(session)],
                    "peer_connections": [answer] if answer else [],
                    "published": session.published_body(),
                    "subscribed": session.subscribed_body(),
                }
                if session.msp.granted:
                    connected["media_signaling"] = session.msp.advertisement()
                recording = self.recording_state()
                if recording is not None:
                    connected["recording"] = recording
                session.tell_about(
                    [o.participant.sid for o in self.others(session)], time.monotonic()
                )
                await session.send(connected)
                if session.msp.open(session.pc):
                    await self._offer(session)  # adds the channels' m=application if missing
                self._start_extensions(session)
            # The others learn about the newcomer; the newcomer receives what they publish.
            for other in self.others(session):
                other.tell_about([session.participant.sid], time.monotonic())
                self.spawn(other.send({"type": "update", "participants": [session.remote_state()]}))
            await self._apply_client_rules(session, body.get("subscribe"))
            self.spawn(self._join_tracks(session))

    async def _join_tracks(self, session: ParticipantSession) -> None:
        """What the newcomer receives, from the track service; while that service is away (a
        restart: 20503), asked again with backoff until it answers or the participant leaves,
        so a join during the restart gets its subscriptions once the service is back."""
        delay = JOIN_RETRY_FIRST_SECONDS
        while not session.closed:
            try:
                joined = await self.control.join_tracks(session.participant)
            except AtriumError as exc:
                if exc.status < 500:
                    log.info("no subscriptions for %s: %s", session.participant.sid, exc.message)
                    return  # the participant or room is gone
                log.warning(
                    "subscriptions of %s not set up yet (%s); asking again in %.2f s",
                    session.participant.sid,
                    exc.message,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, JOIN_RETRY_MAX_SECONDS)
                continue
            self.apply_decision(
                session, joined.rules_version, joined.considered, [t.sid for t in joined.tracks]
            )
            await self.reconcile(session)
            return

    # Adopting a dead worker's session ------------------------------------------------------------
    async def adopt(self, session: ParticipantSession, extensions: list[str]) -> None:
        """Host a session restored from another worker's record (its peer connection is new):
        the client is asked to offer again, and counts as reconnecting until media flows."""
        async with session.lock:
            self.sessions[session.participant.sid] = session
            session.pc.on("datachannel", lambda channel: self._on_datachannel(session, channel))
            session.msp = MediaSignaling(
                extensions, lambda name, message: self._on_msp_message(session, name, message)
            )
            session.msp.on_ready = lambda name: self._on_msp_ready(session, name)
            session.media_lost = True  # cleared by the media watch once the client's media flows
            session.tell_about([o.participant.sid for o in self.others(session)], time.monotonic())
            self._start_extensions(session)
            await session.send({"type": "update", "peer_connections": [session.restart_request()]})

    def _resume_subscriptions(self, session: ParticipantSession) -> None:
        """The adopted client's first offer is applied: send what it received before on the same
        m-lines (same mid, so its tracks stay the same); a track whose publisher has not offered
        yet waits parked on its m-line until its media is here."""
        resumable, session.resumable = session.resumable, {}
        for transceiver in session.pc.getTransceivers():
            track_sid = resumable.get(transceiver.mid or "")
            if track_sid is None or track_sid not in session.wanted:
                continue
            if transceiver.mid in session.sending_mids.values():
                continue  # the client now sends on this m-line
            if track_sid in session.subscriptions or track_sid in session.parked:
                continue
            self.router.reserve(transceiver, track_sid)
            try:
                self.router.attach(session.participant.sid, track_sid, transceiver)
            except UnknownTrack:
                session.parked[track_sid] = transceiver
                continue
            except ValueError:  # another kind of track now: it gets an m-line of its own
                continue
            transceiver.direction = "sendonly"
            session.subscriptions[track_sid] = Subscription(
                track_sid, transceiver.kind, transceiver=transceiver, negotiated=True
            )

    # Client updates ---------------------------------------------------------------------------
    async def update(self, session: ParticipantSession, body: dict[str, Any]) -> None:
        async with session.lock:
            replies: list[dict[str, Any]] = []
            for entry in body.get("peer_connections") or []:
                if session.pc_id and entry.get("id") not in (None, session.pc_id):
                    continue
                description = entry.get("description")
                if isinstance(description, dict):
                    reply = await self._apply_description(session, description)
                    if reply is not None:
                        replies.append(reply)
                if isinstance(entry.get("ice"), dict):
                    await session.add_ice(entry["ice"])
            if isinstance(body.get("participant"), dict):
                await self._apply_participant_state(session, body["participant"])
            if "bandwidth_profile" in body:
                session.video_profile = self._video_profile(session, body)
            message: dict[str, Any] = {"type": "update"}
            if replies:
                message["peer_connections"] = replies
            if session.published_revision and body.get("participant"):
                message["published"] = session.published_body()
            if len(message) > 1:
                await session.send(message)
            if session.renegotiate and not session.offer_pending:
                await self._offer(session)

    async def _apply_description(
        self, session: ParticipantSession, description: dict[str, Any]
    ) -> dict[str, Any] | None:
        kind = description.get("type")
        revision = int(description.get("revision", 0))
        sdp = str(description.get("sdp", ""))
        if kind == "offer":
            adopted = session.adopted
            prepare = (lambda: self._resume_subscriptions(session)) if adopted else None
            answer = await session.apply_client_offer(sdp, revision, prepare)
            if answer is not None:
                self._update_layers(session)
                self._wire_published(session)
                if adopted:
                    self._resumed(session)
            return answer
        if kind == "answer":
            if await session.apply_client_answer(sdp, revision):
                for sub in session.subscriptions.values():
                    self.spawn(self._report_subscription(session, sub.track_sid, True))
        return None

    def _resumed(self, session: ParticipantSession) -> None:
        """The adopted client negotiated its new peer connection: extensions reopen on it, its
        subscriptions that could not resume on old m-lines are added, and the others get the
        subscriptions waiting for its tracks (``_wire_published``)."""
        session.adopted = False
        if session.detached_timer is not None:
            session.detached_timer.cancel()
            session.detached_timer = None
        for sid in session.subscriptions:
            self.spawn(self._report_subscription(session, sid, True))
        if session.msp.open(session.pc):
            session.renegotiate = True
        self.spawn(self.reconcile(session))

    async def _apply_participant_state(
        self, session: ParticipantSession, state: dict[str, Any]
    ) -> None:
        """Diff the client's full track list: publish, unpublish, enable, disable, publish
        priority."""
        revision = int(state.get("revision", 0))
        if revision and revision <= session.client_revision:
            return
        session.client_revision = revision
        signaled = {str(t.get("id")): t for t in state.get("tracks") or [] if t.get("id")}
        added = [
            ClientTrack(
                client_id=tid,
                kind=str(t.get("kind")),
                name=str(t.get("name") or tid),
                enabled=bool(t.get("enabled", True)),
                priority=signaled_priority(t.get("priority")),
            )
            for tid, t in signaled.items()
            if tid not in session.tracks
        ]
        removed = [t for tid, t in session.tracks.items() if tid not in signaled]
        toggled = [
            t
            for tid, t in session.tracks.items()
            if tid in signaled and bool(signaled[tid].get("enabled", True)) != t.enabled
        ]
        reprioritized = [
            (t, priority)
            for tid, t in session.tracks.items()
            if tid in signaled
            and (priority := signaled_priority(signaled[tid].get("priority"), t.priority))
            != t.priority
        ]
        changed = False
        if added:
            for track in added:
                session.tracks[track.client_id] = track
            try:
                result = await self.control.publish(
                    session.participant,
                    [
                        TrackToPublish(
                            client_id=t.client_id,
                            name=t.name,
                            kind=t.kind,
                            enabled=t.enabled,
                            priority=t.priority,
                            codec=session.published_codec(t.client_id),
                        )
                        for t in added
                    ],
                    self.room,
                )
            except AtriumError as exc:
                # The client waits for a `published` entry per track: fail them, don't hang.
                for track in added:
                    track.failed = {"code": exc.code, "message": exc.message}
                result = PublishTracksResult(tracks=[])
            for outcome in result.tracks:
                track = session.tracks[outcome.client_id]
                if outcome.track is not None:
                    track.sid = outcome.track.sid
                    self._decide_track(session, outcome)
                elif outcome.error is not None:
                    track.failed = {"code": outcome.error.code, "message": outcome.error.message}
            session.published_revision += 1
            changed = True
            self._wire_published(session)
        if removed:
            sids = [t.sid for t in removed if t.sid]
            for track in removed:
                del session.tracks[track.client_id]
                if track.sid:
                    self.router.remove_published_track(track.sid)
            if sids:
                await self.control.unpublish(session.participant, sids)
                for other in self.others(session):
                    self.spawn(self.unsubscribe(other, sids))
            session.published_revision += 1
            changed = True
        for track in toggled:
            track.enabled = not track.enabled
            if track.sid:
                await self.control.set_enabled(
                    session.participant.account_sid, track.sid, track.enabled
                )
                if track.wired and track.kind != "data":
                    self.router.set_enabled(track.sid, track.enabled)
            changed = True
        for track, priority in reprioritized:
            track.priority = priority
            if track.sid:
                await self._reprioritize(session, track.sid, priority)
            changed = True
        if reprioritized:
            self._reallocate()  # the layers and switch-offs follow publish priorities
        if changed:
            session.state_revision += 1
            for other in self.others(session):
                self.spawn(other.send({"type": "update", "participants": [session.remote_state()]}))

    async def _reprioritize(
        self, publisher: ParticipantSession, track_sid: str, priority: Priority
    ) -> None:
        """Tell the track service a track's new publish priority. Who receives the track may
        change with it (SubscribeRules' ``priority`` filter): those decisions arrive as
        SubscriptionsChanged. A refusal (the track just went away) or an outage is logged, and
        the client's update goes on."""
        try:
            await self.control.set_priority(publisher.participant.account_sid, track_sid, priority)
        except AtriumError as exc:
            log.warning("priority of %s not recorded: %s", track_sid, exc.message)

    # Media wiring -----------------------------------------------------------------------------
    def _on_datachannel(self, session: ParticipantSession, channel: RTCDataChannel) -> None:
        session.incoming_channels[channel.label] = channel
        self._wire_published(session)

    def _wire_published(self, session: ParticipantSession) -> None:
        """Hook every registered track whose media has arrived into the router, once."""
        for track in session.tracks.values():
            if track.sid is None or track.wired:
                continue
            if track.kind == "data":
                channel = session.incoming_channels.get(track.client_id)
                if channel is None:
                    continue
                self.router.add_data_track(session.participant.sid, track.sid, channel)
            else:
                transceiver = session.receiving_transceiver(track.client_id)
                if transceiver is None:
                    continue
                forwarder = self.router.add_published_track(
                    session.participant.sid, track.sid, transceiver
                )
                if track.kind == "video" and transceiver.mid is not None:
                    forwarder.set_layers(self._offered_layers(session).get(transceiver.mid, ()))
                if not track.enabled:
                    self.router.set_enabled(track.sid, False)
            track.wired = True
            for other in self.others(session):
                if track.sid in other.wanted:
                    self.spawn(self.reconcile(other))

    @staticmethod
    def _offered_layers(session: ParticipantSession) -> dict[str, list[LayerSsrcPair]]:
        description = session.pc.remoteDescription
        return layers_by_mid(description.sdp) if description is not None else {}

    def _update_layers(self, session: ParticipantSession) -> None:
        """A new offer may add, drop or change a wired video track's simulcast layers."""
        offered = self._offered_layers(session)
        for track in session.tracks.values():
            if track.kind != "video" or not track.wired or track.sid is None:
                continue
            transceiver = session.receiving_transceiver(track.client_id)
            if transceiver is None or transceiver.mid is None:
                continue
            try:
                forwarder = self.router.published_track(track.sid)
            except UnknownTrack:
                continue
            forwarder.set_layers(offered.get(transceiver.mid, ()))

    def _reallocate(self) -> None:
        """Decide every subscriber's layers and switch-offs now (on each tick, and at once when
        a subscriber changes what it wants); a failure is logged, the next tick tries again."""
        try:
            self._allocate()
        except Exception:
            log.exception("layer allocation in %s failed", self.room.sid)

    async def _run_allocation(self) -> None:
        while True:
            await asyncio.sleep(ALLOCATION_SECONDS)
            self._reallocate()

    @staticmethod
    def _video_profile(
        session: ParticipantSession, body: dict[str, Any]
    ) -> VideoBandwidthProfile | None:
        return video_profile_of(
            body,
            render_hints=session.msp.grants(RENDER_HINTS),
            track_switch_off=session.msp.grants(TRACK_SWITCH_OFF),
        )

    def _allocate(self) -> None:
        """Each subscriber's layers, then each publisher's encodings (publisher_hints)."""
        dominant = self.speakers.dominant
        sessions = [s for s in self.sessions.values() if not s.closed]
        wanted_layers: dict[str, set[int]] = {}  # per simulcast track: what anybody wants
        now = time.monotonic()
        priorities = self._publish_priorities(sessions)
        for session in sessions:
            video = [s.track_sid for s in session.subscriptions.values() if s.kind == "video"]
            if session.video_profile is not None:
                view = SubscriberView(
                    session.video_profile, session.render_hints, session.subscribe_priorities
                )
                decided = allocate_layers(
                    self.router,
                    session.participant.sid,
                    video,
                    view,
                    dominant,
                    bandwidth_estimate=self._downlink_budget(session, video, now),
                    publish_priorities=priorities,
                )
                wanted = decided.wanted
                self._tell_switch_offs(session, decided.switched_off)
            else:  # no profile: the largest layer that arrives, so every layer is wanted
                wanted = dict.fromkeys(video, EVERY_LAYER)
            for sid, layer in wanted.items():
                wanted_layers.setdefault(sid, set()).add(layer)
        for sid in self.router.recorded_tracks():
            wanted_layers.setdefault(sid, set()).add(EVERY_LAYER)  # the best picture is kept
        for session in sessions:
            if session.msp.grants(PUBLISHER_HINTS) and session.msp.is_ready(PUBLISHER_HINTS):
                self._hint_publisher(session, wanted_layers)

    @staticmethod
    def _publish_priorities(sessions: list[ParticipantSession]) -> dict[str, Priority]:
        """The publish priority of every video track published in the room, by MT SID."""
        return {
            track.sid: track.priority
            for session in sessions
            for track in session.tracks.values()
            if track.sid is not None and track.kind == "video"
        }

    def _downlink_budget(
        self, session: ParticipantSession, video: list[str], now: float
    ) -> float | None:
        """What the subscriber's link takes for video now, from its legs' RTCP."""
        legs = []
        for sid in video:
            with contextlib.suppress(UnknownTrack):
                leg = self.router.published_track(sid).leg(session.participant.sid)
                if leg is not None:
                    legs.append(leg)
        audio = sum(1 for s in session.subscriptions.values() if s.kind == "audio")
        return session.downlink.update(now, legs, audio)

    @staticmethod
    def _tell_switch_offs(session: ParticipantSession, switched_off: frozenset[str]) -> None:
        """Tell the subscriber which of its tracks went off or came back on (twilio-video
        starts every track on)."""
        off = sorted(switched_off - session.switched_off)
        on = sorted(session.switched_off - switched_off)
        if not off and not on:
            return
        message = TrackSwitchOffMessage(off=off or None, on=on or None)
        if session.msp.send(TRACK_SWITCH_OFF, message):
            session.switched_off = switched_off

    def _hint_publisher(
        self, session: ParticipantSession, wanted_layers: dict[str, set[int]]
    ) -> None:
        changed: dict[str, tuple[bool, ...]] = {}
        for track in session.tracks.values():
            if track.kind != "video" or not track.wired or track.sid is None:
                continue
            try:
                forwarder = self.router.published_track(track.sid)
            except UnknownTrack:
                continue
            layers = forwarder.layer_states()
            if len(layers) < 2:
                continue
            needed = encodings_needed(layers, wanted_layers.get(track.sid, set()))
            if session.hinted_encodings.get(track.sid) != needed:
                changed[track.sid] = needed
        if not changed:
            return
        session.hint_id += 1
        if session.msp.send(PUBLISHER_HINTS, publisher_hints_message(session.hint_id, changed)):
            session.hinted_encodings.update(changed)

    def _track_info(self, session: ParticipantSession, track: ClientTrack) -> TrackInfo:
        now = session.participant.date_created
        assert track.sid is not None
        return TrackInfo(
            sid=track.sid,
            room_sid=self.room.sid,
            account_sid=self.room.account_sid,
            participant_sid=session.participant.sid,
            name=track.name,
            kind=track.kind,
            enabled=track.enabled,
            priority=track.priority,
            date_created=now,
            date_updated=now,
        )

    # Subscriptions ----------------------------------------------------------------------------
    # The track service decides who receives what (SubscribeRules): ``publish`` names a new
    # track's subscribers, ``join`` a newcomer's tracks, a rules change arrives as
    # SubscriptionsChanged. Each decision updates the subscriber's ``wanted`` set (unless a newer
    # rules version already did); ``reconcile`` then makes its forwarding legs match ``wanted`` for
    # the tracks whose media is here, and renegotiates. Both are idempotent.
    def apply_decision(
        self,
        subscriber: ParticipantSession,
        version: int,
        considered: list[str],
        desired: list[str],
    ) -> bool:
        """Take a decision about ``considered`` tracks (``desired`` of them are wanted), made
        with the subscriber's rules ``version``; False when a newer one was already applied."""
        if version < subscriber.rules_version:
            return False
        subscriber.rules_version = version
        chosen = set(desired)
        for sid in {*considered, *chosen}:
            if sid in chosen:
                subscriber.wanted.add(sid)
            else:
                subscriber.wanted.discard(sid)
        return True

    def _decide_track(self, publisher: ParticipantSession, outcome: PublishedTrackOutcome) -> None:
        """A newly registered track: who of the others wants it, as ``publish`` decided."""
        assert outcome.track is not None
        track_sid = outcome.track.sid
        chosen = set(outcome.subscribers)
        decided = dict(outcome.decided) or dict.fromkeys(chosen, 0)
        for sid, version in decided.items():
            other = self.sessions.get(sid)
            if other is None or other is publisher or version < other.rules_version:
                continue
            if sid in chosen:
                other.wanted.add(track_sid)
            else:
                other.wanted.discard(track_sid)

    def _wired_tracks(self) -> dict[str, TrackInfo]:
        """Every track whose media (or data channel) is here, in publication order."""
        wired: dict[str, TrackInfo] = {}
        for session in self.sessions.values():
            if session.closed:
                continue
            for track in session.tracks.values():
                if track.sid is not None and track.wired:
                    wired[track.sid] = self._track_info(session, track)
        return wired

    async def reconcile(self, subscriber: ParticipantSession) -> None:
        """Subscribe to the wanted tracks that are here, unsubscribe from the unwanted ones."""
        async with subscriber.lock:
            if subscriber.closed or subscriber.adopted:
                return  # an adopted session reconciles once its client offered (``_resumed``)
            stale = [sid for sid in subscriber.subscriptions if sid not in subscriber.wanted]
            fresh = [
                info
                for sid, info in self._wired_tracks().items()
                if sid in subscriber.wanted and sid not in subscriber.subscriptions
            ]
            changed = self._drop_subscriptions(subscriber, stale)
            changed = self._add_subscriptions(subscriber, fresh) or changed
            if changed:
                subscriber.subscribed_revision += 1
                await self._offer(subscriber)

    def _add_subscriptions(self, subscriber: ParticipantSession, tracks: list[TrackInfo]) -> bool:
        """Add forwarding legs (caller holds the lock and renegotiates); True if any."""
        added = False
        for info in tracks:
            if subscriber.closed or info.sid in subscriber.subscriptions:
                continue
            if info.participant_sid == subscriber.participant.sid:
                continue
            try:
                if info.kind == "data":
                    source = self._data_source(info.sid)
                    if source is None:
                        continue
                    channel = subscriber.pc.createDataChannel(
                        info.sid,
                        ordered=source.ordered,
                        maxPacketLifeTime=source.maxPacketLifeTime,
                        maxRetransmits=source.maxRetransmits,
                    )
                    self.router.subscribe_data(subscriber.participant.sid, info.sid, channel)
                    subscriber.subscriptions[info.sid] = Subscription(
                        info.sid, "data", channel=channel
                    )
                else:
                    parked = subscriber.parked.pop(info.sid, None)
                    if parked is not None and not parked.stopped:
                        # Its m-line is still there (inactive): send on it again.
                        self.router.attach(subscriber.participant.sid, info.sid, parked)
                        parked.direction = "sendonly"
                        transceiver = parked
                    else:
                        transceiver = self.router.subscribe(
                            subscriber.participant.sid, subscriber.pc, info.sid
                        )
                    subscriber.subscriptions[info.sid] = Subscription(
                        info.sid, info.kind, transceiver=transceiver
                    )
                added = True
            except UnknownTrack:
                # Not wired yet: it is subscribed when its media arrives.
                continue
        return added

    def _data_source(self, track_sid: str) -> RTCDataChannel | None:
        for session in self.sessions.values():
            for track in session.tracks.values():
                if track.sid == track_sid and track.wired:
                    return session.incoming_channels.get(track.client_id)
        return None

    async def unsubscribe(self, subscriber: ParticipantSession, track_sids: list[str]) -> None:
        """The tracks are gone (unpublished, publisher left): drop them for good."""
        async with subscriber.lock:
            subscriber.wanted.difference_update(track_sids)
            changed = self._drop_subscriptions(subscriber, track_sids)
            for sid in track_sids:
                subscriber.parked.pop(sid, None)
            if changed and not subscriber.closed:
                subscriber.subscribed_revision += 1
                await self._offer(subscriber)

    def _drop_subscriptions(self, subscriber: ParticipantSession, track_sids: list[str]) -> bool:
        """Remove forwarding legs (caller holds the lock and renegotiates); True if any."""
        changed = False
        for sid in track_sids:
            subscriber.carried.discard(sid)
            sub = subscriber.subscriptions.pop(sid, None)
            if sub is None:
                continue
            self.router.unsubscribe(subscriber.participant.sid, sid)
            if sub.transceiver is not None and not subscriber.closed:
                sub.transceiver.direction = "inactive"
                subscriber.parked[sid] = sub.transceiver
            if sub.channel is not None:
                sub.channel.close()
            if not subscriber.closed:
                self.spawn(self._report_subscription(subscriber, sid, False))
            changed = True
        return changed

    async def _report_subscription(
        self, subscriber: ParticipantSession, track_sid: str, subscribed: bool
    ) -> None:
        """Tell the track service what the subscriber really receives. Reports of one subscriber
        go one at a time and say the state at the time they are sent (``subscribed`` is what
        prompted it), so the last one is right however fast subscriptions come and go. A
        participant or track that left meanwhile makes this moot (20404/53204), not an error."""
        async with subscriber.report_lock:
            sub = subscriber.subscriptions.get(track_sid)
            receiving = sub is not None and sub.negotiated and not subscriber.closed
            try:
                await self.control.subscription(subscriber.participant, track_sid, receiving)
            except AtriumError as exc:
                log.debug("subscription report for %s skipped: %s", track_sid, exc.message)

    async def _offer(self, session: ParticipantSession) -> None:
        """Send a worker offer with the current subscribed list (caller holds the lock)."""
        if session.closed or session.adopted:
            return  # the client offers first on an adopted session's new peer connection
        offer = await session.create_server_offer()
        if offer is None:
            return
        self.on_session_changed(session)
        await session.send(
            {"type": "update", "peer_connections": [offer], "subscribed": session.subscribed_body()}
        )

    # Leaving ----------------------------------------------------------------------------------
    async def leave(self, session: ParticipantSession, reason: str, *, tell_service: bool) -> None:
        if session.closed or self.sessions.get(session.participant.sid) is not session:
            return
        with tracer.start_as_current_span("rsp leave", attributes={"atrium.reason": reason}):
            del self.sessions[session.participant.sid]
            published = [t.sid for t in session.tracks.values() if t.sid]
            if tell_service:
                try:
                    await self.control.leave(session.participant, reason)
                except AtriumError as exc:
                    log.warning("participant service refused leave: %s", exc.message)
            self.router.remove_participant(session.participant.sid)
            self.speakers.remove(session.participant.sid)
            await session.close()
            session.state_revision += 1
            gone = session.remote_state("disconnected")
            for other in self.others(session):
                self.spawn(other.send({"type": "update", "participants": [gone]}))
                if published:
                    self.spawn(self.unsubscribe(other, published))

    # Reconnecting ------------------------------------------------------------------------------
    def set_signaling_lost(self, session: ParticipantSession, lost: bool) -> bool:
        """The participant's signaling dropped (or came back): the others see it at once.
        True if what they see changed."""
        if session.closed:
            return False
        before = session.reconnecting
        session.signaling_lost = lost
        return self._announce_state(session, before)

    def set_media_lost(self, session: ParticipantSession, lost: bool) -> bool:
        if session.closed:
            return False
        before = session.reconnecting
        session.media_lost = lost
        return self._announce_state(session, before)

    def _announce_state(self, session: ParticipantSession, before: bool) -> bool:
        if session.reconnecting == before:
            return False
        session.state_revision += 1
        self.on_session_changed(session)
        for other in self.others(session):
            self.spawn(other.send({"type": "update", "participants": [session.remote_state()]}))
        if self.on_state_changed is not None:
            self.on_state_changed(session)
        return True

    def check_media(self, session: ParticipantSession, now: float) -> None:
        """Media loss: nothing arrived from a client that should be sending for longer than it
        ever goes quiet. Marks it reconnecting (and connected again once traffic is back)."""
        received = session.datagrams_received()
        if received is None:
            return
        if received != session.datagrams_seen:
            session.datagrams_seen, session.datagrams_changed_at = received, now
            if session.media_lost:
                self.set_media_lost(session, False)
            return
        allowed = session.expects_media_within()
        if allowed is not None and now - session.datagrams_changed_at > allowed:
            self.set_media_lost(session, True)

    async def _run_media_watch(self) -> None:
        while True:
            await asyncio.sleep(MEDIA_WATCH_SECONDS)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if not session.closed:
                    self.check_media(session, now)

    # Subscriptions the client asks for in `connect` ---------------------------------------------
    async def _apply_client_rules(self, session: ParticipantSession, subscribe: Any) -> None:
        """``connect.subscribe.rules``: what twilio-video.js's ``automaticSubscription`` says
        (false is an exclude-all rule). Stored as the participant's SubscribeRules, so REST shows
        them and changes them afterwards, exactly as Twilio documents."""
        rules = subscribe.get("rules") if isinstance(subscribe, dict) else None
        if not isinstance(rules, list) or not rules or rules == DEFAULT_SUBSCRIBE_RULES:
            return
        try:
            await self.control.set_subscribe_rules(session.participant, rules)
        except AtriumError as exc:
            # Invalid rules from a client leave the default (include all) in force.
            log.info(
                "client subscribe rules of %s refused: %s", session.participant.sid, exc.message
            )

    # Media signaling extensions -------------------------------------------------------------------
    def _start_extensions(self, session: ParticipantSession) -> None:
        if self._media_watch is None:
            self._media_watch = asyncio.create_task(self._run_media_watch())
        needs_allocation = session.video_profile is not None or session.msp.grants(PUBLISHER_HINTS)
        if needs_allocation and self._allocation_loop is None:
            self._allocation_loop = asyncio.create_task(self._run_allocation())
        if session.msp.grants(ACTIVE_SPEAKER) and self._speaker_loop is None:
            self.router.on_audio_level(self._on_audio_level)
            self._speaker_loop = asyncio.create_task(self._run_speaker_detection())
        if session.msp.grants(NETWORK_QUALITY) and self._quality_loop is None:
            self._quality_loop = asyncio.create_task(self._run_quality_sampling())

    def _on_audio_level(self, participant_sid: str, level: int, voice: bool) -> None:
        self.speakers.observe(participant_sid, level, time.monotonic(), voice or None)

    async def _run_speaker_detection(self) -> None:
        while True:
            await asyncio.sleep(SPEAKER_TICK_SECONDS)
            speaker = self.speakers.tick(time.monotonic())
            if speaker is not None:
                message = ActiveSpeakerMessage(participant=speaker)
                for session in list(self.sessions.values()):
                    if not session.closed:
                        session.msp.send(ACTIVE_SPEAKER, message)

    async def _run_quality_sampling(self) -> None:
        while True:
            await asyncio.sleep(QUALITY_SAMPLE_SECONDS)
            for session in list(self.sessions.values()):
                if session.closed:
                    continue
                try:
                    await session.quality.observe(
                        self.router,
                        session.participant.sid,
                        time.monotonic(),
                        broken=session.reconnecting,
                    )
                except Exception:
                    log.exception("link sample of %s failed", session.participant.sid)

    def _on_msp_ready(self, session: ParticipantSession, name: str) -> None:
        """A channel opened: catch the client up (the current dominant speaker)."""
        speaker = self.speakers.dominant
        if name == ACTIVE_SPEAKER and speaker is not None:
            session.msp.send(ACTIVE_SPEAKER, ActiveSpeakerMessage(participant=speaker))

    def _on_msp_message(
        self, session: ParticipantSession, name: str, message: ClientMessage | TrackClientMessage
    ) -> None:
        if isinstance(message, ClientResetRequest):
            # The publisher went back to its default encodings: hint that track again.
            session.hinted_encodings.pop(message.track, None)
            return
        if isinstance(message, RenderHintsRequest):
            for hint in message.subscriber.hints:
                size = hint.render_dimensions
                session.render_hints[hint.track] = merged_hint(
                    session.render_hints.get(hint.track),
                    hint.enabled,
                    None if size is None else Dimensions.from_body(size),
                )
            # Every message is answered: it releases the client's next batch of hints.
            reply = RenderHintsReply(
                subscriber=RenderHintResults(
                    id=message.subscriber.id,
                    hints=[RenderHintResult(track=h.track) for h in message.subscriber.hints],
                )
            )
            session.msp.send(RENDER_HINTS, reply)
            self._reallocate()
            return
        if isinstance(message, TrackPriorityRequest):
            session.subscribe_priorities[message.track] = message.subscribe
            self._reallocate()
            return
        if name != NETWORK_QUALITY or not isinstance(message, NetworkQualityRequest):
            return
        session.quality_verbosity = (message.reportLevel, message.remoteReportLevel)
        known_before = time.monotonic() - QUALITY_REMOTE_GRACE_SECONDS
        answer = build_network_quality_message(
            session.quality.report,
            [
                (o.participant.sid, o.quality.report)
                for o in self.others(session)
                if session.told_about.get(o.participant.sid, known_before + 1) <= known_before
            ],
            local_verbosity=message.reportLevel,
            remote_verbosity=message.remoteReportLevel,
        )
        session.msp.send(NETWORK_QUALITY, answer)

    async def close(self) -> None:
        for loop in (
            self._speaker_loop,
            self._quality_loop,
            self._media_watch,
            self._allocation_loop,
        ):
            if loop is not None:
                loop.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loop
        self._speaker_loop = self._quality_loop = self._media_watch = None
        self._allocation_loop = None
        for session in list(self.sessions.values()):
            await session.close()
        self.sessions.clear()
        self.router.close()
        for task in list(self._tasks):
            task.cancel()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("room task failed", exc_info=task.exception())
