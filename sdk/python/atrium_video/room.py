"""The Room: RSP v2 over TCMP, one aiortc peer connection, and twilio-video's events.

Negotiation follows twilio-video.js: the client's first offer travels inside ``connect``; after
that either side may offer on the one peer connection, sharing a revision counter. A worker offer
is answered with its own revision; this client's re-offers use revision + 1. The worker is the
impolite peer: when its offer arrives while ours is pending, ours is rolled back (aiortc has no
rollback, so :meth:`Room._rollback` undoes it by hand), the worker's offer is answered, and ours
is made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)

from atrium_video.bandwidth_profile import BandwidthProfile, ClientControl, bandwidth_profile_of
from atrium_video.errors import (
    MEDIA_CONNECTION_ERROR,
    ROOM_COMPLETED,
    SIGNALING_CONNECTION_ERROR,
    SIGNALING_DISCONNECTED,
    TwilioError,
)
from atrium_video.events import EventEmitter
from atrium_video.ice import (
    enable_loopback_candidates,
    is_loopback_url,
    prefer_turn_transport,
    rtc_ice_servers,
)
from atrium_video.media_signaling import (
    DominantSpeakerSignaling,
    MediaSignaling,
    NetworkQualitySignaling,
    RenderHintsSignaling,
    TrackPrioritySignaling,
    TrackSwitchOffSignaling,
    granted_label,
    media_signaling_request,
)
from atrium_video.network_quality import network_quality_verbosity
from atrium_video.participant import (
    LocalParticipant,
    LocalTrackPublication,
    RemoteParticipant,
    RemoteTrackPublication,
)
from atrium_video.sdp import track_ids_by_mid
from atrium_video.tracks import (
    AnyLocalTrack,
    AnyRemoteTrack,
    LocalDataTrack,
    LocalMediaTrack,
    LocalTrack,
    MessageData,
    RemoteAudioTrack,
    RemoteDataTrack,
    RemoteVideoTrack,
)
from atrium_video.transport import NORMAL_CLOSE, Event, TcmpTransport

log = logging.getLogger("atrium_video")

SDK_NAME = "atrium-video-python"
SDK_VERSION = "0.1.0"
DEFAULT_SESSION_TIMEOUT = 30

# Room events re-emitted from every RemoteParticipant (the participant is appended to the args).
PARTICIPANT_EVENTS = (
    "track_published",
    "track_unpublished",
    "track_subscribed",
    "track_unsubscribed",
    "track_enabled",
    "track_disabled",
    "track_message",
    "track_switched_off",
    "track_switched_on",
    "track_publish_priority_changed",
)
# RemoteParticipant events the Room re-emits under another name (as twilio-video.js).
RENAMED_PARTICIPANT_EVENTS = {
    "reconnecting": "participant_reconnecting",
    "reconnected": "participant_reconnected",
}


class Room(EventEmitter):
    """A connected room. Build it with :func:`atrium_video.connect`.

    Attributes: ``sid``, ``name``, ``state`` (``connecting``, ``connected``, ``reconnecting``,
    ``disconnected``), ``local_participant``, ``participants`` (RemoteParticipant by SID),
    ``dominant_speaker`` (with ``connect(dominant_speaker=True)``: the RemoteParticipant the
    server names as the dominant speaker, or None).

    Events (handler arguments in brackets): ``participant_connected`` [participant],
    ``participant_disconnected`` [participant], ``participant_reconnecting`` [participant],
    ``participant_reconnected`` [participant], ``track_published`` [publication, participant],
    ``track_unpublished`` [publication, participant], ``track_subscribed`` [track, publication,
    participant], ``track_unsubscribed`` [track, publication, participant], ``track_enabled`` /
    ``track_disabled`` [publication, participant], ``track_message`` [data, track, participant],
    ``track_switched_off`` / ``track_switched_on`` [track, publication, participant] (with
    ``connect(bandwidth_profile=...)``: the server stopped or resumed forwarding a track),
    ``dominant_speaker_changed`` [RemoteParticipant or None], ``reconnecting`` [error],
    ``reconnected`` [], ``disconnected`` [room, error or None].
    """

    def __init__(
        self,
        token: str,
        url: str | Sequence[str],
        name: str | None,
        *,
        frame_buffer: int = 60,
        dominant_speaker: bool = False,
        network_quality: bool | Mapping[str, int] = False,
        automatic_subscription: bool = True,
        ice_servers: Sequence[RTCIceServer] | None = None,
        turn_transport: Literal["udp", "tcp"] | None = None,
        bandwidth_profile: Mapping[str, Any] | BandwidthProfile | None = None,
    ) -> None:
        super().__init__()
        self.sid = ""
        self.name = name or ""
        self.state = "connecting"
        # Whether the room is being recorded (RSP `recording`), as twilio-video.js's
        # ``room.isRecording``; ``recording_started`` / ``recording_stopped`` follow it.
        self.is_recording = False
        self._recording_revision = 0
        self.participants: dict[str, RemoteParticipant] = {}
        self.local_participant = LocalParticipant("", "", self)
        self.session_timeout = DEFAULT_SESSION_TIMEOUT
        self._token = token
        self._urls = _url_list(url)
        self._url_index = 0  # the URL of the current (or last) signaling socket
        self._requested_name = name
        self._frame_buffer = frame_buffer
        self._session = ""
        self._inbox: asyncio.Queue[Event] = asyncio.Queue()
        self._transport: TcmpTransport | None = None
        self._processor: asyncio.Task[None] | None = None
        self._connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Peer connection and negotiation. ICE servers: the application's ("overrode"), or None
        # until the gateway's `iced` answer names them ("acquire", as twilio-video.js by default).
        self._acquire_ice_servers = ice_servers is None
        self._turn_transport = turn_transport
        self.ice_servers: list[RTCIceServer] = self._preferred(list(ice_servers or []))
        self._pc = self._new_peer_connection()
        self._pc_id = str(uuid.uuid4())
        self._lock = asyncio.Lock()  # every peer-connection operation runs under it
        self._revision = 0
        self._offer_pending = False
        self._want_offer = False
        self._offer_added: list[tuple[LocalMediaTrack, RTCRtpTransceiver]] = []
        self._offer_new_sctp = False
        self.glare_rollbacks = 0  # diagnostics: our offers rolled back for the worker's
        # The media worker hosting the room died and another adopted the session: a new peer
        # connection replaces ours (aiortc cannot restart ICE); True until it connects.
        self._restarting_media = False
        self.media_restarts = 0
        # Local state.
        self._participant_revision = 1
        self._local_tracks: dict[str, AnyLocalTrack] = {}  # by track id (msid / label)
        self._publish_priorities: dict[str, str] = {}  # by track id; "standard" if absent
        self._to_add: list[LocalMediaTrack] = []  # media tracks waiting for an m-line
        self._transceivers: dict[str, RTCRtpTransceiver] = {}
        self._local_channels: dict[str, RTCDataChannel] = {}
        self._published_revision = 0
        self._publish_waiters: dict[str, asyncio.Future[LocalTrackPublication]] = {}
        # Remote state.
        self._subscribed_revision = 0
        self._subscribed: dict[str, str] = {}  # track SID -> id (msid track id / channel label)
        self._receivers: dict[str, Any] = {}  # msid track id -> aiortc RemoteStreamTrack
        self._remote_channels: dict[str, RTCDataChannel] = {}  # by label
        self._remote_tracks: dict[str, AnyRemoteTrack] = {}  # by track SID
        # Media signaling extensions (asked for in `connect`, set up once the server grants them).
        self.automatic_subscription = automatic_subscription
        self._dominant_speaker_sid: str | None = None
        self._dominant_speaker_signaling = (
            DominantSpeakerSignaling(self._on_dominant_speaker) if dominant_speaker else None
        )
        self._network_quality_verbosity = network_quality_verbosity(network_quality)
        self._network_quality_signaling = self._new_network_quality_signaling()
        # Bandwidth profile: track priority, track switch-off and render hints (as twilio-video.js,
        # asked for only with a profile; render hints unless both client controls are disabled).
        self._bandwidth_profile = bandwidth_profile_of(bandwidth_profile)
        self._bandwidth_profile_unsent = False  # send it in the next `update`
        profile = self._bandwidth_profile
        self._track_priority_signaling = TrackPrioritySignaling() if profile is not None else None
        self._track_switch_off_signaling = (
            TrackSwitchOffSignaling(self._on_track_switch_off) if profile is not None else None
        )
        self._render_hints_signaling = (
            RenderHintsSignaling() if profile is not None and profile.wants_render_hints else None
        )
        self._switched_off: set[str] = set()  # track SIDs the server said it switched off
        self._track_controls = _TrackControls(self)
        self._msp_by_label: dict[str, MediaSignaling] = {}

    def _preferred(self, servers: list[RTCIceServer]) -> list[RTCIceServer]:
        if self._turn_transport is None:
            return servers
        return prefer_turn_transport(servers, self._turn_transport)

    def _new_peer_connection(self) -> RTCPeerConnection:
        """A peer connection using :attr:`ice_servers` (never aiortc's default public STUN)."""
        pc = RTCPeerConnection(
            RTCConfiguration(
                iceServers=list(self.ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
            )
        )
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        pc.on("iceconnectionstatechange", self._on_ice_connection_state)
        return pc

    def _new_network_quality_signaling(self) -> NetworkQualitySignaling | None:
        verbosity = self._network_quality_verbosity
        if verbosity is None:
            return None
        return NetworkQualitySignaling(self._pc, verbosity, self._on_network_quality)

    # ------------------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------------------
    async def disconnect(self) -> None:
        """Leave the room (``disconnected`` fires with no error)."""
        if self.state == "disconnected":
            return
        transport = self._transport
        if transport is not None and self._session:
            await transport.send({"type": "disconnect", "version": 2, "session": self._session})
        await self._teardown(None)

    async def __aenter__(self) -> Room:
        """``async with await connect(...) as room``: disconnects on leaving the block."""
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    @property
    def url(self) -> str:
        """The signaling URL of the current (or, while reconnecting, the last) socket."""
        return self._urls[self._url_index]

    @property
    def urls(self) -> list[str]:
        """Every signaling URL this room may use, in the order :func:`connect` was given them."""
        return list(self._urls)

    @property
    def peer_connection(self) -> RTCPeerConnection:
        """The underlying aiortc peer connection (for stats; do not renegotiate it)."""
        return self._pc

    @property
    def dominant_speaker(self) -> RemoteParticipant | None:
        """The dominant speaker (with ``connect(dominant_speaker=True)``), or None.

        As twilio-video.js's ``room.dominantSpeaker``: a RemoteParticipant, so None also while the
        server names this client itself (``dominant_speaker_changed`` still fires with None).
        """
        sid = self._dominant_speaker_sid
        return self.participants.get(sid) if sid is not None else None

    def get_participant(self, identity: str) -> RemoteParticipant | None:
        """The remote participant with ``identity``, or None if it is not in the room."""
        return next((p for p in self.participants.values() if p.identity == identity), None)

    @property
    def bandwidth_profile(self) -> BandwidthProfile | None:
        """The bandwidth profile in force (``connect(bandwidth_profile=...)``), or None."""
        return self._bandwidth_profile

    async def set_bandwidth_profile(self, bandwidth_profile: Mapping[str, Any]) -> None:
        """Replace the bandwidth profile (sent to the server in an RSP ``update``).

        The room must have joined with one: the extensions it needs are asked for only in
        ``connect``. The client control modes stay those of ``connect`` (an option left out
        keeps them); a profile that would change them (adding or dropping the deprecated
        ``max_tracks`` / ``render_dimensions``) is a ValueError. twilio-video.js has this
        internally (``LocalParticipantSignaling.setBandwidthProfile``), not as public API.
        """
        self._check_open()
        current = self._bandwidth_profile
        if current is None:
            raise RuntimeError("set_bandwidth_profile() needs connect(bandwidth_profile=...)")
        profile = bandwidth_profile_of(bandwidth_profile, defaults=current)
        assert profile is not None
        for mode in ("client_track_switch_off_control", "content_preferences_mode"):
            if getattr(profile, mode) != getattr(current, mode):
                raise ValueError(
                    f"{mode} would change from {getattr(current, mode)!r} to"
                    f" {getattr(profile, mode)!r}: it is fixed when connecting"
                )
        if profile == current:
            return
        self._bandwidth_profile = profile
        self._bandwidth_profile_unsent = True
        await self._send_update()

    def __repr__(self) -> str:
        return (
            f"<Room {self.name!r} sid={self.sid} {self.state} "
            f"participants={len(self.participants)}>"
        )

    # ------------------------------------------------------------------------------------------
    # Connecting
    # ------------------------------------------------------------------------------------------
    async def _connect(self, tracks: list[AnyLocalTrack], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        transport: TcmpTransport | None = None
        if self._acquire_ice_servers:
            # As twilio-video.js without `iceServers`: the hello carries `ice`, the gateway answers
            # `iced` (TURN credentials of this client's own) and `connect` follows on the socket.
            transport = await self._open_first(
                {"type": "ice", "version": 1, "edge": "roaming", "token": self._token}
            )
            self._transport = transport
            try:
                await self._use_ice_servers(await self._receive_iced(deadline))
            except BaseException:
                await self._teardown(None, emit=False)
                raise
        # Media first: aiortc (1.16) bundles everything on the first transport, and stops the
        # SCTP transport when the answer arrives if the data channel was created before any
        # transceiver, which would take the shared transport down with it.
        media = [t for t in tracks if isinstance(t, LocalMediaTrack)]
        async with self._lock:
            for track in media:
                self._add_local(track)
            self._add_media_transceivers(media)
            for other in tracks:
                if not isinstance(other, LocalMediaTrack):
                    self._add_local(other)
            offer = await self._pc.createOffer()
            await self._pc.setLocalDescription(offer)
            self._revision = 1
            self._offer_pending = True
        body = {
            "type": "connect",
            "version": 2,
            "name": self._requested_name,
            "participant": self._participant_state(),
            "peer_connections": [self._local_description_entry()],
            "ice_servers": "acquire" if self._acquire_ice_servers else "overrode",
            "publisher": {
                "name": SDK_NAME,
                "sdk_version": SDK_VERSION,
                "user_agent": f"Python/{platform.python_version()}",
            },
            "media_signaling": media_signaling_request([s.name for s in self._media_signalings()]),
            # twilio-video.js's automaticSubscription: an include-all or exclude-all rule, which
            # the server stores as this participant's SubscribeRules (REST may change them).
            "subscribe": {
                "rules": [
                    {"type": "include" if self.automatic_subscription else "exclude", "all": True}
                ],
                "revision": 1,
            },
            "format": "unified",
            "token": self._token,
        }
        if self._bandwidth_profile is not None:
            body["bandwidth_profile"] = self._bandwidth_profile.payload()
        if transport is None:
            transport = await self._open_first(body)
            self._transport = transport
        elif not await transport.send(body):
            await self._teardown(None, emit=False)
            raise TwilioError(SIGNALING_CONNECTION_ERROR, "Signaling connection error")
        self._processor = asyncio.ensure_future(self._process())
        try:
            remaining = max(0.0, deadline - time.monotonic())
            await asyncio.wait_for(asyncio.shield(self._connected), remaining)
        except TimeoutError as exc:
            await self._teardown(None, emit=False)
            raise TwilioError(SIGNALING_CONNECTION_ERROR, "Timed out connecting") from exc
        except BaseException:
            await self._teardown(None, emit=False)
            raise

    async def _receive_iced(self, deadline: float) -> list[RTCIceServer]:
        """The ``ice_servers`` of the gateway's ``iced`` answer; its ``error`` as a TwilioError."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TwilioError(SIGNALING_CONNECTION_ERROR, "Timed out acquiring ICE servers")
            try:
                kind, payload = await asyncio.wait_for(self._inbox.get(), remaining)
            except TimeoutError:
                continue
            if kind == "closed":
                raise TwilioError(SIGNALING_CONNECTION_ERROR, "Signaling connection error")
            if payload.get("type") == "iced":
                return rtc_ice_servers(payload.get("ice_servers"))
            if payload.get("type") == "error":
                raise TwilioError(
                    int(payload.get("code", SIGNALING_CONNECTION_ERROR)), payload.get("message")
                )
            log.debug("ignoring %s before iced", payload.get("type"))

    async def _use_ice_servers(self, servers: list[RTCIceServer]) -> None:
        """Rebuild the (still empty) peer connection with ``servers``: aiortc reads its ICE
        servers only when it creates a transport, and has no setConfiguration."""
        self.ice_servers = self._preferred(servers)
        if not servers:
            return
        unused = self._pc
        self._pc = self._new_peer_connection()
        self._network_quality_signaling = self._new_network_quality_signaling()
        await unused.close()

    async def _open_first(self, body: dict[str, Any]) -> TcmpTransport:
        """Open a socket to the first URL that answers (53000 from the last one otherwise)."""
        failure: TwilioError | None = None
        for index, url in enumerate(self._urls):
            transport = TcmpTransport(url, self._inbox)
            try:
                await transport.open(body)
            except TwilioError as exc:
                if exc.code != SIGNALING_CONNECTION_ERROR:
                    raise  # e.g. 53006 busy: another replica is no better placed to answer
                log.info("signaling %s unreachable: %s", url, exc.message)
                failure = exc
                continue
            self._url_index = index
            return transport
        assert failure is not None
        raise failure

    def _participant_state(self) -> dict[str, Any]:
        return {
            "revision": self._participant_revision,
            "tracks": [
                {
                    "id": t.id,
                    "kind": t.kind,
                    "name": t.name,
                    "enabled": t.is_enabled,
                    "priority": self._publish_priorities.get(t.id, "standard"),
                }
                for t in self._local_tracks.values()
            ],
        }

    def _local_description_entry(self) -> dict[str, Any]:
        description = self._pc.localDescription
        return {
            "id": self._pc_id,
            "description": {
                "type": description.type,
                "sdp": description.sdp,
                "revision": self._revision,
            },
        }

    def _add_local(self, track: AnyLocalTrack) -> None:
        self._local_tracks[track.id] = track
        track._on_state.append(self._local_track_changed)
        if isinstance(track, LocalMediaTrack):
            self._to_add.append(track)
        else:
            self._open_data_channel(track)

    def _open_data_channel(self, track: LocalDataTrack) -> None:
        channel = self._pc.createDataChannel(
            track.id,
            ordered=track.ordered,
            maxPacketLifeTime=track.max_packet_life_time,
            maxRetransmits=track.max_retransmits,
        )
        self._local_channels[track.id] = channel
        track._attach(channel)

    def _add_media_transceivers(self, media: Sequence[LocalMediaTrack]) -> None:
        """A sending m-line per local media track, and (as twilio-video.js) a receiving one for
        each kind it does not send."""
        for track in media:
            self._transceivers[track.id] = self._pc.addTransceiver(
                track.media_stream_track, direction="sendonly"
            )
        self._to_add = []
        sent = {t.kind for t in media}
        for kind in ("audio", "video"):
            if kind not in sent:
                self._pc.addTransceiver(kind, direction="recvonly")

    # ------------------------------------------------------------------------------------------
    # Inbound RSP
    # ------------------------------------------------------------------------------------------
    async def _process(self) -> None:
        while True:
            kind, payload = await self._inbox.get()
            try:
                if kind == "msg":
                    await self._handle(payload)
                elif kind == "closed":
                    await self._socket_closed(int(payload))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("handling %s failed", kind)
            if self.state == "disconnected":
                return

    async def _handle(self, body: dict[str, Any]) -> None:
        kind = body.get("type")
        if kind in ("connected", "synced", "update"):
            if kind == "connected":
                self._session = str(body.get("session", ""))
                self.session_timeout = int(
                    (body.get("options") or {}).get("session_timeout", DEFAULT_SESSION_TIMEOUT)
                )
                self.sid = str(body.get("sid") or self.sid)
                self.name = str(body.get("name") or self.name)
                me = body.get("participant") or {}
                self.local_participant.sid = str(me.get("sid", ""))
                self.local_participant.identity = str(me.get("identity", ""))
            await self._apply_state(body, full=kind == "synced")
            if kind == "connected" and not self._connected.done():
                self.state = "connected"
                self._connected.set_result(None)
            elif kind == "synced" and self.state == "reconnecting":
                self.state = "connected"
                self.local_participant._reconnected()
                self.emit("reconnected")
                if self._bandwidth_profile_unsent:  # changed while the socket was down
                    self._spawn(self._send_update())
        elif kind == "disconnected":
            status = body.get("status")
            error = TwilioError(ROOM_COMPLETED) if status == "completed" else None
            await self._server_ended(error)
        elif kind == "error":
            error = TwilioError(
                int(body.get("code", SIGNALING_CONNECTION_ERROR)), body.get("message")
            )
            await self._server_ended(error)

    async def _server_ended(self, error: TwilioError | None) -> None:
        if not self._connected.done():
            self._connected.set_exception(error or TwilioError(SIGNALING_CONNECTION_ERROR))
            return
        transport = self._transport
        if transport is not None and self._session:
            await transport.send({"type": "disconnect", "version": 2, "session": self._session})
        await self._teardown(error)

    async def _apply_state(self, body: dict[str, Any], *, full: bool) -> None:
        for entry in body.get("peer_connections") or []:
            if entry.get("id") not in (None, self._pc_id):
                continue
            description = entry.get("description")
            if isinstance(description, dict):
                await self._apply_description(description)
        participants = body.get("participants")
        if isinstance(participants, list):
            listed = set()
            for entry in participants:
                if isinstance(entry, dict) and entry.get("sid") != self.local_participant.sid:
                    listed.add(entry.get("sid"))
                    self._apply_participant(entry)
            if full:
                for sid in [s for s in self.participants if s not in listed]:
                    self._remove_participant(self.participants[sid])
        if isinstance(body.get("published"), dict):
            self._apply_published(body["published"])
        if isinstance(body.get("subscribed"), dict):
            self._apply_subscribed(body["subscribed"], force=full)
        self._resolve_subscriptions()
        if isinstance(body.get("media_signaling"), dict):
            self._setup_media_signaling(body["media_signaling"])
        if isinstance(body.get("recording"), dict):
            self._apply_recording(body["recording"])

    def _apply_recording(self, recording: dict[str, Any]) -> None:
        revision = recording.get("revision")
        if not isinstance(revision, int) or revision < self._recording_revision:
            return
        self._recording_revision = revision
        recording_now = bool(recording.get("is_recording"))
        if recording_now != self.is_recording:
            self.is_recording = recording_now
            self.emit("recording_started" if recording_now else "recording_stopped")

    # Descriptions --------------------------------------------------------------------------------
    async def _apply_description(self, description: dict[str, Any]) -> None:
        kind = description.get("type")
        revision = int(description.get("revision", 0))
        sdp = description.get("sdp")
        async with self._lock:
            if kind == "answer" and isinstance(sdp, str):
                if not self._offer_pending or revision != self._revision:
                    log.debug("ignoring answer r%s (at r%s)", revision, self._revision)
                    return
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
                self._offer_pending = False
                self._offer_added = []
                self._index_receivers(sdp)
            elif kind == "offer" and isinstance(sdp, str):
                stable = self._revision - 1 if self._offer_pending else self._revision
                if revision <= stable:
                    log.debug("ignoring stale offer r%s (stable r%s)", revision, stable)
                    return
                if self._offer_pending:
                    if self._revision == 1 and self._pc.remoteDescription is None:
                        return  # the first answer comes first (the worker never does this)
                    self._rollback()
                await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                answer = await self._pc.createAnswer()
                await self._pc.setLocalDescription(answer)
                self._revision = revision
                self._index_receivers(sdp)
                await self._send_update(with_description=True)
            elif kind == "create-offer":
                stable = self._revision - 1 if self._offer_pending else self._revision
                if revision <= stable:
                    return
                # Atrium asks for an offer only from a worker that adopted this session, with a
                # peer connection of its own: ours must start over (ICE, DTLS, SCTP).
                self._revision = max(self._revision, revision)
                await self._restart_media()
                return
            elif kind == "close":
                self._spawn(self._teardown(TwilioError(MEDIA_CONNECTION_ERROR)))
                return
            if self._want_offer and not self._offer_pending:
                await self._offer()

    async def _restart_media(self) -> None:
        """Replace the peer connection, keeping every track (caller holds the lock): the local
        ones are sent on the new one, the remote ones resume from its receivers, and the room
        is ``reconnecting`` until it connects."""
        log.info("media moved to another worker: negotiating a new peer connection")
        self.media_restarts += 1
        if self.state == "connected":
            self.state = "reconnecting"
            self.local_participant._reconnecting()
            self.emit("reconnecting", TwilioError(MEDIA_CONNECTION_ERROR))
        self._restarting_media = True
        for remote in self._remote_tracks.values():
            if isinstance(remote, RemoteAudioTrack | RemoteVideoTrack):
                remote._suspend()
        old, self._pc = self._pc, self._new_peer_connection()
        old.remove_all_listeners()
        self._spawn(old.close())
        self._offer_pending, self._offer_added, self._offer_new_sctp = False, [], False
        self._receivers, self._remote_channels = {}, {}
        media = [t for t in self._local_tracks.values() if isinstance(t, LocalMediaTrack)]
        for local in media:
            # A new sender view: the old peer connection's senders stop theirs when they stop.
            local._new_sending_track()
        self._transceivers = {}
        self._add_media_transceivers(media)
        for data in self._local_tracks.values():
            if isinstance(data, LocalDataTrack):
                previous = self._local_channels.pop(data.id, None)
                if previous is not None:
                    data._detach(previous)
                self._open_data_channel(data)
        if self._network_quality_signaling is not None:
            self._network_quality_signaling.use(self._pc)
        # The adopting worker may not have this client's profile: say it again (its MSP
        # channels get every priority and render hint when they are bound).
        self._bandwidth_profile_unsent = self._bandwidth_profile is not None
        await self._offer()

    def _rollback(self) -> None:
        """Undo our pending offer (glare), as RTCPeerConnection rollback would.

        The transceivers it added leave the peer connection (their tracks get new ones in the
        next offer), a data section it introduced is forgotten, and the state returns to stable.
        """
        log.info("glare at r%s: rolling back our offer", self._revision)
        self.glare_rollbacks += 1
        transceivers: list[RTCRtpTransceiver] = self._pc._RTCPeerConnection__transceivers  # type: ignore[attr-defined]
        for track, transceiver in self._offer_added:
            if transceiver in transceivers:
                transceivers.remove(transceiver)
            if self._transceivers.get(track.id) is transceiver:
                del self._transceivers[track.id]
            if track.id in self._local_tracks:
                self._to_add.append(track)
        self._offer_added = []
        sctp = self._pc.sctp
        if self._offer_new_sctp and sctp is not None:
            sctp.mid = None
        self._offer_new_sctp = False
        self._pc._RTCPeerConnection__pendingLocalDescription = None  # type: ignore[attr-defined]
        self._pc._RTCPeerConnection__setSignalingState("stable")  # type: ignore[attr-defined]
        self._revision -= 1
        self._offer_pending = False
        self._want_offer = True

    async def _offer(self) -> None:
        """Offer our current senders (caller holds the lock)."""
        if self._offer_pending:
            self._want_offer = True
            return
        if self.state == "disconnected":
            return
        self._want_offer = False
        added: list[tuple[LocalMediaTrack, RTCRtpTransceiver]] = []
        for track in self._to_add:
            transceiver = self._pc.addTransceiver(track.media_stream_track, direction="sendonly")
            self._transceivers[track.id] = transceiver
            added.append((track, transceiver))
        self._to_add = []
        sctp = self._pc.sctp
        self._offer_new_sctp = sctp is not None and sctp.mid is None
        offer = await self._pc.createOffer()
        await self._pc.setLocalDescription(offer)
        self._offer_added = added
        self._revision += 1
        self._offer_pending = True
        await self._send_update(with_description=True)

    async def _send_update(self, *, with_description: bool = False) -> None:
        body: dict[str, Any] = {
            "type": "update",
            "version": 2,
            "session": self._session,
            "participant": self._participant_state(),
        }
        if with_description:
            body["peer_connections"] = [self._local_description_entry()]
        profile = self._bandwidth_profile
        if self._bandwidth_profile_unsent and profile is not None:
            body["bandwidth_profile"] = profile.payload()
        if self._transport is not None and (self.state != "reconnecting" or self._restarting_media):
            if await self._transport.send(body) and "bandwidth_profile" in body:
                self._bandwidth_profile_unsent = False

    def _index_receivers(self, remote_sdp: str) -> None:
        """Map msid track ids (what ``subscribed`` lists) to aiortc's receiving tracks."""
        ids = track_ids_by_mid(remote_sdp)
        for transceiver in self._pc.getTransceivers():
            track_id = ids.get(transceiver.mid) if transceiver.mid is not None else None
            receiving = transceiver.receiver.track if transceiver.receiver else None
            if track_id and receiving is not None:
                self._receivers.setdefault(track_id, receiving)

    # Participants --------------------------------------------------------------------------------
    def _apply_participant(self, entry: dict[str, Any]) -> None:
        sid = str(entry.get("sid", ""))
        state = str(entry.get("state", "connected"))
        revision = int(entry.get("revision", 0))
        participant = self.participants.get(sid)
        if participant is None:
            if state == "disconnected" or not sid:
                return
            participant = RemoteParticipant(sid, str(entry.get("identity", "")))
            participant.revision = revision
            if state == "reconnecting":
                participant.state = state  # met while reconnecting: no event of its own
            participant._relay = self._relay(participant)
            self.participants[sid] = participant
            self.emit("participant_connected", participant)
            self._on_network_quality(participant)  # a level reported before it was known
        elif revision <= participant.revision:
            return
        else:
            participant.revision = revision
        if state == "disconnected":
            self._remove_participant(participant)
            return
        signaled = {str(t.get("sid")): t for t in entry.get("tracks") or [] if t.get("sid")}
        for track_sid, publication in participant.tracks.items():
            if track_sid not in signaled:
                self._unsubscribe(track_sid)
                del participant._publications[track_sid]
                participant.emit("track_unpublished", publication)
        for track_sid, info in signaled.items():
            enabled = bool(info.get("enabled", True))
            existing = participant._publications.get(track_sid)
            if existing is None:
                publication = RemoteTrackPublication(
                    track_sid,
                    str(info.get("name") or track_sid),
                    str(info.get("kind", "")),
                    enabled,
                    str(info.get("priority") or "standard"),
                )
                participant._publications[track_sid] = publication
                participant.emit("track_published", publication)
            elif existing.is_track_enabled != enabled:
                existing.is_track_enabled = enabled
                if existing.track is not None:
                    existing.track._set_enabled(enabled)
                existing.emit("track_enabled" if enabled else "track_disabled")
                participant.emit("track_enabled" if enabled else "track_disabled", existing)
            priority = str(info.get("priority") or "standard")
            if existing is not None and existing.publish_priority != priority:
                # setPriority() on the publisher's side (twilio-video's publishPriorityChanged).
                existing.publish_priority = priority
                existing.emit("publish_priority_changed", priority)
                participant.emit("track_publish_priority_changed", priority, existing)
        if state == "reconnecting":
            participant._reconnecting()
        elif state == "connected":
            participant._reconnected()

    def _relay(self, participant: RemoteParticipant) -> Any:
        def relay(event: str, *args: Any) -> None:
            if event in PARTICIPANT_EVENTS:
                self.emit(event, *args, participant)
            elif event in RENAMED_PARTICIPANT_EVENTS:
                self.emit(RENAMED_PARTICIPANT_EVENTS[event], *args, participant)

        return relay

    def _remove_participant(self, participant: RemoteParticipant) -> None:
        for track_sid, publication in participant.tracks.items():
            self._unsubscribe(track_sid)
            del participant._publications[track_sid]
            participant.emit("track_unpublished", publication)
        was_dominant = self.dominant_speaker is participant
        participant.state = "disconnected"
        self.participants.pop(participant.sid, None)
        participant.emit("disconnected", participant)
        participant._relay = None
        self.emit("participant_disconnected", participant)
        if was_dominant:  # as twilio-video.js: the dominant speaker left, so there is none
            self.emit("dominant_speaker_changed", self.dominant_speaker)

    # Publications --------------------------------------------------------------------------------
    def _apply_published(self, published: dict[str, Any]) -> None:
        revision = int(published.get("revision", 0))
        if revision <= self._published_revision:
            return
        self._published_revision = revision
        for entry in published.get("tracks") or []:
            track = self._local_tracks.get(str(entry.get("id")))
            if track is None:
                continue
            waiter = self._publish_waiters.get(track.id)
            state = entry.get("state")
            if state == "ready" and entry.get("sid"):
                if any(p.track is track for p in self.local_participant._publications.values()):
                    continue
                publication = LocalTrackPublication(
                    str(entry["sid"]),
                    track,
                    self._publish_priorities.get(track.id, "standard"),
                    self._set_publish_priority,
                )
                self.local_participant._add(publication)
                if waiter is not None and not waiter.done():
                    waiter.set_result(publication)
            elif state == "failed":
                error = entry.get("error") or {}
                exc = TwilioError(int(error.get("code", 53300)), error.get("message"))
                self._local_tracks.pop(track.id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_exception(exc)
                self.local_participant.emit("track_publication_failed", exc, track)

    async def _publish(
        self, track: AnyLocalTrack, priority: str = "standard"
    ) -> LocalTrackPublication:
        self._check_open()
        for publication in self.local_participant._publications.values():
            if publication.track is track:
                return publication
        waiter = self._publish_waiters.get(track.id)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._publish_waiters[track.id] = waiter
            async with self._lock:
                self._add_local(track)
                self._publish_priorities[track.id] = priority
                self._participant_revision += 1
                sctp = self._pc.sctp
                needs_offer = isinstance(track, LocalMediaTrack) or sctp is None or sctp.mid is None
                if needs_offer and not self._offer_pending:
                    await self._offer()
                else:
                    self._want_offer = self._want_offer or needs_offer
                    await self._send_update()
        try:
            return await asyncio.shield(waiter)
        finally:
            if waiter.done():
                self._publish_waiters.pop(track.id, None)

    async def _unpublish(self, track: AnyLocalTrack) -> LocalTrackPublication | None:
        self._check_open()
        async with self._lock:
            if self._local_tracks.pop(track.id, None) is None:
                return None
            with contextlib.suppress(ValueError):
                track._on_state.remove(self._local_track_changed)
            publication = self.local_participant._remove(track)
            self._participant_revision += 1
            needs_offer = False
            if isinstance(track, LocalMediaTrack):
                if track in self._to_add:
                    self._to_add.remove(track)
                transceiver = self._transceivers.pop(track.id, None)
                if transceiver is not None:
                    transceiver.direction = "inactive"
                    transceiver.sender.replaceTrack(None)
                    needs_offer = True
            else:
                channel = self._local_channels.pop(track.id, None)
                if channel is not None:
                    track._detach(channel)
                    channel.close()
            if needs_offer and not self._offer_pending:
                await self._offer()
            else:
                self._want_offer = self._want_offer or needs_offer
                await self._send_update()
            waiter = self._publish_waiters.pop(track.id, None)
            if waiter is not None and not waiter.done():
                waiter.cancel()
            return publication

    def _set_publish_priority(self, track: AnyLocalTrack, priority: str) -> None:
        """A publication's new priority goes to the server in the next participant state."""
        if track.id not in self._local_tracks:
            return
        self._publish_priorities[track.id] = priority
        self._local_track_changed(track)

    def _local_track_changed(self, track: LocalTrack) -> None:
        if self.state in ("disconnected", "connecting"):
            return
        self._participant_revision += 1
        self._spawn(self._send_update())

    # Subscriptions -------------------------------------------------------------------------------
    def _apply_subscribed(self, subscribed: dict[str, Any], *, force: bool = False) -> None:
        revision = int(subscribed.get("revision", 0))
        if revision <= self._subscribed_revision and not force:
            return
        self._subscribed_revision = max(revision, self._subscribed_revision)
        wanted = {
            str(e["sid"]): str(e["id"])
            for e in subscribed.get("tracks") or []
            if e.get("sid") and e.get("id")
        }
        for track_sid in list(self._remote_tracks):
            if track_sid not in wanted:
                self._unsubscribe(track_sid)
        self._subscribed = wanted

    def _find_publication(
        self, track_sid: str
    ) -> tuple[RemoteParticipant, RemoteTrackPublication] | None:
        for participant in self.participants.values():
            publication = participant._publications.get(track_sid)
            if publication is not None:
                return participant, publication
        return None

    def _resolve_subscriptions(self) -> None:
        for track_sid, track_id in self._subscribed.items():
            existing = self._remote_tracks.get(track_sid)
            if isinstance(existing, RemoteAudioTrack | RemoteVideoTrack) and existing.is_suspended:
                source = self._receivers.get(track_id)
                if source is not None:  # the same track, now on the new peer connection
                    existing._resume(source)
                continue
            if isinstance(existing, RemoteDataTrack):
                channel = self._remote_channels.get(track_id)
                if existing.channel is not channel and channel is not None:
                    if channel.readyState not in ("closing", "closed"):
                        existing._rebind(channel)  # the new peer connection's channel
                continue
            if existing is not None:
                continue
            found = self._find_publication(track_sid)
            if found is None:
                continue
            participant, publication = found
            track: AnyRemoteTrack
            if publication.kind == "data":
                channel = self._remote_channels.get(track_id)
                if channel is None or channel.readyState in ("closing", "closed"):
                    continue  # a re-subscription's new channel replaces a closed one
                track = RemoteDataTrack(track_sid, publication.track_name, channel)
                track.on("message", self._data_relay(participant))
            else:
                source = self._receivers.get(track_id)
                if source is None:
                    continue
                cls = RemoteAudioTrack if publication.kind == "audio" else RemoteVideoTrack
                track = cls(
                    track_sid,
                    publication.track_name,
                    publication.is_track_enabled,
                    source,
                    self._frame_buffer,
                    controls=self._track_controls,
                    # as twilio-video.js: a switch-off told before the track existed holds
                    switched_off=track_sid in self._switched_off,
                )
            self._remote_tracks[track_sid] = track
            publication.track = track
            publication.emit("subscribed", track)
            participant.emit("track_subscribed", track, publication)

    @staticmethod
    def _data_relay(participant: RemoteParticipant) -> Any:
        def relay(data: MessageData, track: RemoteDataTrack) -> None:
            participant.emit("track_message", data, track)

        return relay

    def _unsubscribe(self, track_sid: str) -> None:
        track = self._remote_tracks.pop(track_sid, None)
        self._subscribed.pop(track_sid, None)
        if track is None:
            return
        track._end()
        if self._render_hints_signaling is not None:
            self._render_hints_signaling.clear_hint(track_sid)
        if self._track_priority_signaling is not None:
            self._track_priority_signaling.forget(track_sid)
        found = self._find_publication(track_sid)
        if found is not None:
            participant, publication = found
            publication.track = None
            publication.emit("unsubscribed", track)
            participant.emit("track_unsubscribed", track, publication)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        signaling = self._msp_by_label.get(channel.label)
        if signaling is not None:  # a granted extension's transport, not a data track
            signaling.bind(channel)
            return
        self._remote_channels[channel.label] = channel
        self._resolve_subscriptions()

    def _on_connection_state(self) -> None:
        if self._pc.connectionState == "failed" and self.state != "disconnected":
            self._spawn(self._server_ended(TwilioError(MEDIA_CONNECTION_ERROR)))
        elif self._pc.connectionState == "connected" and self._restarting_media:
            self._restarting_media = False
            if self.state == "reconnecting" and self._transport is not None:
                self.state = "connected"
                self.local_participant._reconnected()
                self.emit("reconnected")

    def _on_ice_connection_state(self) -> None:
        # As twilio-video.js: with ICE failed, every known network quality level drops to 0.
        if self._pc.iceConnectionState != "failed":
            return
        for participant in [self.local_participant, *self.participants.values()]:
            if participant.network_quality_level is not None:
                participant._set_network_quality_level(0, None)

    # Media signaling extensions ------------------------------------------------------------------
    def _media_signalings(self) -> list[MediaSignaling]:
        found: list[MediaSignaling | None] = [
            self._dominant_speaker_signaling,
            self._network_quality_signaling,
            self._track_priority_signaling,
            self._track_switch_off_signaling,
            self._render_hints_signaling,
        ]
        return [s for s in found if s is not None]

    def _setup_media_signaling(self, granted: dict[str, Any]) -> None:
        """``media_signaling`` of a server message: bind each requested extension it grants to
        the server-opened channel with the granted label (now, or when that channel arrives)."""
        for signaling in self._media_signalings():
            if signaling.is_setup:
                continue
            label = granted_label(granted, signaling.name)
            if label is None:
                continue
            signaling.label = label
            self._msp_by_label[label] = signaling
            channel = self._remote_channels.pop(label, None)
            if channel is not None and channel.readyState not in ("closing", "closed"):
                signaling.bind(channel)

    def _on_track_switch_off(self, off: list[str], on: list[str]) -> None:
        """A ``track_switch_off`` message: update each track (or remember the state of a track
        not subscribed here yet) and emit ``switched_off`` / ``track_switched_off`` etc."""
        updates = {sid: False for sid in on}
        updates.update(dict.fromkeys(off, True))
        for track_sid, switched_off in updates.items():
            if switched_off:
                self._switched_off.add(track_sid)
            else:
                self._switched_off.discard(track_sid)
            track = self._remote_tracks.get(track_sid)
            if not isinstance(track, RemoteAudioTrack | RemoteVideoTrack):
                continue
            if not track._set_switched_off(switched_off):
                continue
            found = self._find_publication(track_sid)
            if found is None:
                continue
            participant, publication = found
            event = "track_switched_off" if switched_off else "track_switched_on"
            publication.emit(event, track)
            participant.emit(event, track, publication)

    def _on_dominant_speaker(self, sid: str | None) -> None:
        self._dominant_speaker_sid = sid
        self.emit("dominant_speaker_changed", self.dominant_speaker)

    def _on_network_quality(self, only: RemoteParticipant | None = None) -> None:
        """A network quality answer changed a level (or ``only`` joined): update participants."""
        signaling = self._network_quality_signaling
        if signaling is None or self._pc.iceConnectionState == "failed":
            return
        if signaling.level is not None and only is None:
            self.local_participant._set_network_quality_level(signaling.level, signaling.levels)
        for participant in [only] if only is not None else list(self.participants.values()):
            levels = signaling.remote_levels.get(participant.sid)
            level = levels.get("level") if levels is not None else None
            if isinstance(level, int) and not isinstance(level, bool):
                participant._set_network_quality_level(level, levels)

    # ------------------------------------------------------------------------------------------
    # Losing the signaling socket: `sync` within the session timeout
    # ------------------------------------------------------------------------------------------
    async def _socket_closed(self, code: int) -> None:
        if self.state == "disconnected":
            return
        if not self._connected.done():
            self._connected.set_exception(TwilioError(SIGNALING_CONNECTION_ERROR))
            return
        if code == NORMAL_CLOSE or self.session_timeout <= 0:
            await self._teardown(
                None if code == NORMAL_CLOSE else TwilioError(SIGNALING_DISCONNECTED)
            )
            return
        self.state = "reconnecting"
        self.local_participant._reconnecting()
        self.emit("reconnecting", TwilioError(SIGNALING_DISCONNECTED))
        deadline = time.monotonic() + self.session_timeout
        delay = 0.08
        attempt = 0
        while self.state == "reconnecting" and time.monotonic() < deadline:
            # With several URLs, start with the one after the replica that dropped us, and go
            # round them; the backoff only grows once every URL was tried.
            attempt += 1
            index = (self._url_index + attempt) % len(self._urls)
            transport = TcmpTransport(self._urls[index], self._inbox)
            body = {
                "type": "sync",
                "version": 2,
                "session": self._session,
                "token": self._token,
                "name": self.name or self._requested_name,
                "participant": self._participant_state(),
                "peer_connections": [self._local_description_entry()],
            }
            try:
                await transport.open(body)
            except TwilioError as exc:
                log.info("resync through %s failed: %s", transport.url, exc.message)
                if len(self._urls) == 1 or attempt % len(self._urls) == 0:
                    await asyncio.sleep(
                        min(delay * (0.5 + random.random()), max(0.0, deadline - time.monotonic()))
                    )
                    delay = min(delay * 1.5, 5.0)
                continue
            self._url_index = index
            self._transport = transport
            return  # `synced` (or an error) arrives through the inbox
        if self.state == "reconnecting":
            await self._teardown(TwilioError(SIGNALING_DISCONNECTED))

    # ------------------------------------------------------------------------------------------
    # Teardown
    # ------------------------------------------------------------------------------------------
    async def _teardown(self, error: TwilioError | None, *, emit: bool = True) -> None:
        if self.state == "disconnected":
            return
        self.state = "disconnected"
        self.local_participant.state = "disconnected"
        for track_sid in list(self._remote_tracks):
            track = self._remote_tracks.pop(track_sid)
            track._end()
            found = self._find_publication(track_sid)
            if found is not None:
                found[1].track = None
        for participant in self.participants.values():
            participant.state = "disconnected"
        for waiter in self._publish_waiters.values():
            if not waiter.done():
                waiter.set_exception(error or TwilioError(SIGNALING_DISCONNECTED))
        if emit:  # as twilio-video.js: the state and the event change together
            self.emit("disconnected", self, error)
        for signaling in (
            self._dominant_speaker_signaling,
            self._track_priority_signaling,
            self._track_switch_off_signaling,
            self._render_hints_signaling,
        ):
            if signaling is not None:
                signaling.teardown()
        if self._network_quality_signaling is not None:
            await self._network_quality_signaling.close()
        if self._transport is not None:
            await self._transport.close()
        with contextlib.suppress(Exception):
            await self._pc.close()
        processor = self._processor
        if processor is not None and processor is not asyncio.current_task():
            processor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await processor

    def _check_open(self) -> None:
        if self.state == "disconnected":
            raise TwilioError(SIGNALING_DISCONNECTED, "The room is disconnected")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _TrackControls:
    """What the room's remote media tracks call for priorities and render hints."""

    def __init__(self, room: Room) -> None:
        self._room = room

    @property
    def client_track_switch_off_control(self) -> ClientControl:
        profile = self._room._bandwidth_profile
        return profile.client_track_switch_off_control if profile is not None else "disabled"

    @property
    def content_preferences_mode(self) -> ClientControl:
        profile = self._room._bandwidth_profile
        return profile.content_preferences_mode if profile is not None else "disabled"

    def set_priority(self, track_sid: str, priority: str | None) -> None:
        signaling = self._room._track_priority_signaling
        if signaling is not None:
            signaling.set_priority(track_sid, priority)

    def set_render_hint(
        self,
        track_sid: str,
        *,
        enabled: bool | None = None,
        render_dimensions: tuple[float, float] | None = None,
    ) -> None:
        signaling = self._room._render_hints_signaling
        if signaling is not None:
            signaling.set_hint(track_sid, enabled=enabled, render_dimensions=render_dimensions)


def _url_list(url: str | Sequence[str]) -> list[str]:
    urls = [url] if isinstance(url, str) else [str(u) for u in url]
    if not urls or not all(urls):
        raise ValueError("connect() needs at least one signaling URL")
    return urls


async def connect(
    token: str,
    *,
    url: str | Sequence[str],
    name: str | None = None,
    tracks: list[AnyLocalTrack] | None = None,
    audio: bool = False,
    video: bool = False,
    loopback: bool | None = None,
    timeout: float = 30.0,
    frame_buffer: int = 60,
    dominant_speaker: bool = False,
    network_quality: bool | Mapping[str, int] = False,
    automatic_subscription: bool = True,
    ice_servers: Sequence[RTCIceServer | Mapping[str, Any]] | None = None,
    turn_transport: Literal["udp", "tcp"] | None = None,
    bandwidth_profile: Mapping[str, Any] | BandwidthProfile | None = None,
) -> Room:
    """Join a room, as twilio-video's ``connect(token, options)``; returns a connected
    :class:`Room`.

    Args:
        token: an Access Token with a Video grant (``twilio.jwt.access_token.AccessToken``).
        url: the signaling endpoint, ``ws://host:port/signaling`` (``wss://`` behind TLS), or a
            list of them: one per gateway replica when no load balancer stands in front of them.
            The first one that answers is used; when the signaling socket drops, the room
            reconnects through the next one (then round the list) within the session timeout,
            keeping its participant SID and its media.
        name: the room's unique name (default: the token's room grant). A room of that name
            is created if there is none in progress.
        tracks: local tracks to publish on joining (:func:`create_local_audio_track`,
            :func:`create_local_video_track`, :class:`LocalDataTrack`).
        audio: add a synthetic 440 Hz tone track when ``tracks`` has no audio track.
        video: add a synthetic moving test pattern when ``tracks`` has no video track.
        loopback: let ICE gather 127.0.0.1 (default: on when every URL is a loopback URL), so a
            client on the server's host reaches its media worker.
        timeout: seconds to wait for ``connected`` before giving up with 53000.
        frame_buffer: how many decoded frames each remote media track buffers (older frames are
            dropped when the reader falls behind).
        dominant_speaker: ask the server to name the dominant speaker (twilio-video's
            ``dominantSpeaker``): ``room.dominant_speaker`` and ``dominant_speaker_changed``.
        network_quality: ask for network quality levels (twilio-video's ``networkQuality``):
            ``True`` (this client's level only, i.e. ``{"local": 1, "remote": 0}``) or
            ``{"local": 1..3, "remote": 0..3}`` (verbosity; remote 1+ also reports the remote
            participants' levels). Sets ``network_quality_level`` / ``network_quality_stats``
            and emits ``network_quality_level_changed`` on the participants.
        automatic_subscription: False subscribes this client to nothing (twilio-video's
            ``automaticSubscription``): it still sees every publication, and REST SubscribeRules
            decide what it receives.
        ice_servers: STUN/TURN servers (``RTCIceServer`` objects or twilio-video.js's
            ``{"urls", "username", "credential"}`` mappings). None (the default), as
            twilio-video.js without ``iceServers``: ask the gateway (RSP ``ice`` / ``iced``),
            which hands out the deployment's servers with a short-lived TURN credential of this
            client's own. A list, even empty, is used as given. aiortc uses the first STUN and the
            first TURN URL it supports (``turn:`` over UDP or ``?transport=tcp``, ``turns:``);
            with a TURN server, a client whose UDP to the media worker is blocked still connects
            through the relay. ``room.ice_servers`` holds the servers in use.
        turn_transport: ``"tcp"`` relays through a TURN URL over TCP (``?transport=tcp`` or
            ``turns:``) when the servers list one, ``"udp"`` through one over UDP; None takes the
            first TURN URL listed. aiortc relays through one TURN URL only, and deployments list
            UDP first, so a client on a network that drops UDP asks for ``"tcp"``.
        bandwidth_profile: twilio-video's ``bandwidthProfile`` with Python names:
            ``{"video": {"mode", "max_subscription_bitrate", "dominant_speaker_priority",
            "track_switch_off_mode", "client_track_switch_off_control",
            "content_preferences_mode", "render_dimensions", "max_tracks"}}`` (see
            :mod:`atrium_video.bandwidth_profile`; ValueError for an unknown option or value).
            Sent in ``connect``; asks for the ``track_priority``, ``track_switch_off`` and
            ``render_hints`` extensions, which give ``RemoteVideoTrack.switch_off()`` /
            ``switch_on()`` / ``set_content_preferences()`` (``"manual"`` control),
            ``set_priority()``, ``is_switched_off`` and the ``track_switched_off`` /
            ``track_switched_on`` events. ``room.set_bandwidth_profile()`` replaces it.

    Raises:
        TwilioError: with Twilio's code: 20101-20107 for token defects, 53000 when no server
            can be reached, 53105 when the room is full, 53118 when it has completed...
    """
    from atrium_video.tracks import create_local_audio_track, create_local_video_track

    urls = _url_list(url)
    if loopback is None:
        loopback = all(is_loopback_url(u) for u in urls)
    if loopback:
        enable_loopback_candidates()
    local: list[AnyLocalTrack] = list(tracks or [])
    if audio and not any(t.kind == "audio" for t in local):
        local.append(create_local_audio_track())
    if video and not any(t.kind == "video" for t in local):
        local.append(create_local_video_track())
    room = Room(
        token,
        urls,
        name,
        frame_buffer=frame_buffer,
        dominant_speaker=dominant_speaker,
        network_quality=network_quality,
        automatic_subscription=automatic_subscription,
        ice_servers=None if ice_servers is None else rtc_ice_servers(ice_servers),
        turn_transport=turn_transport,
        bandwidth_profile=bandwidth_profile_of(bandwidth_profile),
    )
    try:
        await room._connect(local, timeout)
    except BaseException:
        await room._teardown(None, emit=False)
        raise
    # Tracks signaled in `connect` are published by now (the server lists them in `connected`).
    return room
