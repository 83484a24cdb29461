"""One participant's RSP session on this worker: its peer connection, negotiation and state.

Negotiation follows twilio-video.js's rules: the client makes the first offer (inside ``connect``);
afterwards either side may offer on the same peer connection, sharing one revision counter. The
worker is the impolite peer: a client offer that arrives while the worker's own offer is waiting
for its answer is dropped (the client rolls back, answers ours, and offers again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from atrium_media import aiortc_compat as compat
from atrium_media.extensions.allocation import Priority, RenderHint, VideoBandwidthProfile
from atrium_media.signaling.bandwidth import Downlink
from atrium_media.signaling.link_quality import LinkQuality
from atrium_media.signaling.media_signaling import MediaSignaling
from atrium_media.signaling.sdp import (
    announce,
    harmonize_offer,
    is_session_description,
    keep_video_codecs,
    sending_tracks,
)
from atrium_shared.errors import SERVER_REMOTE_DESCRIPTION_FAILED, AtriumError
from atrium_shared.models import TRACK_PRIORITIES, ParticipantInfo
from atrium_shared.signaling_api import session_token

log = logging.getLogger("atrium.media.session")

SESSION_TIMEOUT_SECONDS = 30
# Media loss: a client that publishes audio or video sends RTP every 20 ms (silence and black
# frames included); one that only receives sends RTCP receiver reports (browsers: every 1 s for
# video, up to 5 s for audio). Nothing for this long means its network is gone.
PUBLISHER_SILENCE_SECONDS = 3.0
SUBSCRIBER_SILENCE_SECONDS = 7.0

# How far a restart request's revision jumps ahead of an adopted session's recorded revision.
RESTART_LEAD = 10

REMOTE_DESCRIPTION_REFUSED = "Server is unable to apply a remote media description"


@contextlib.asynccontextmanager
async def _refused_as_53403(sdp: str) -> AsyncIterator[None]:
    """A client description that is not SDP, or that aiortc cannot apply (it refuses SDP with
    many kinds of exception), is Twilio's 53403 to the client rather than a failure of ours."""
    if not is_session_description(sdp):
        raise AtriumError(SERVER_REMOTE_DESCRIPTION_FAILED, REMOTE_DESCRIPTION_REFUSED, 400)
    try:
        yield
    except Exception as exc:
        raise AtriumError(
            SERVER_REMOTE_DESCRIPTION_FAILED, REMOTE_DESCRIPTION_REFUSED, 400
        ) from exc


Send = Callable[[str, str, list[dict[str, Any]], int | None], Awaitable[None]]


def signaled_priority(value: object, current: Priority = "standard") -> Priority:
    """A track's publish priority as its client signals it (``participant.tracks[].priority``):
    one of low, standard, high; anything else (absent, misspelt, a newer SDK's value) leaves it
    as it was, standard for a new track."""
    for priority in TRACK_PRIORITIES:
        if value == priority:
            return priority
    return current


@dataclass
class ClientTrack:
    """A track the client signals in its ``participant.tracks``."""

    client_id: str
    kind: str
    name: str
    enabled: bool
    sid: str | None = None  # MT SID once the track service registered it
    priority: Priority = "standard"  # its publish priority (RSP ``priority``)
    failed: dict[str, Any] | None = None  # {code, message} when the service refused it
    wired: bool = False  # its media (or data channel) is hooked into the room's router


@dataclass
class Subscription:
    """A remote track this client receives: ``client_id`` is the id its SDK sees (msid/label)."""

    track_sid: str
    kind: str
    transceiver: RTCRtpTransceiver | None = None
    channel: RTCDataChannel | None = None
    negotiated: bool = False


@dataclass
class ParticipantSession:
    session_id: str
    worker_id: str
    participant: ParticipantInfo
    connection_id: str | None
    reply_subject: str | None
    send_frame: Send
    pc_id: str = ""
    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
    )
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    revision: int = 0  # the peer connection's description revision
    offer_pending: bool = False
    renegotiate: bool = False
    client_revision: int = 0  # the client's participant.revision last applied
    tracks: dict[str, ClientTrack] = field(default_factory=dict)
    published_revision: int = 0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    subscribed_revision: int = 0
    # What the track service decided this participant receives (MT SIDs), and the version of
    # its SubscribeRules behind the newest decision applied: subscriptions follow ``wanted``.
    wanted: set[str] = field(default_factory=set)
    rules_version: int = 0
    # Sending transceivers of ended subscriptions (m-lines stay): reused when re-subscribed.
    parked: dict[str, RTCRtpTransceiver] = field(default_factory=dict)
    report_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state_revision: int = 1  # this participant's revision as the others see it
    ice_applied: dict[str, int] = field(default_factory=dict)
    incoming_channels: dict[str, RTCDataChannel] = field(default_factory=dict)
    sending_mids: dict[str, str] = field(default_factory=dict)  # client track id -> mid
    announced_address: str | None = None  # the worker's address as clients must reach it
    # The room's VideoCodecs: the only video codecs this client's offers are answered with.
    video_codecs: list[str] | None = None
    detached_timer: asyncio.TimerHandle | None = None
    # The signaling socket dropped and the client has not come back with `sync` yet, or its
    # media stopped arriving while it should flow: the others see it `reconnecting` meanwhile.
    signaling_lost: bool = False
    media_lost: bool = False
    datagrams_seen: int = -1  # what the DTLS transport had received at the last look
    datagrams_changed_at: float = 0.0
    closed: bool = False
    # Media signaling extensions (MSP) granted in `connected`, and what network quality needs.
    msp: MediaSignaling = field(default_factory=lambda: MediaSignaling((), lambda n, m: None))
    quality: LinkQuality = field(default_factory=LinkQuality)
    quality_verbosity: tuple[int, int] = (1, 0)  # the client's (reportLevel, remoteReportLevel)
    # The client's video bandwidth profile (None: it sent none, and gets every simulcast
    # track's highest layer that arrives).
    video_profile: VideoBandwidthProfile | None = None
    # The encodings last asked of this publisher per simulcast track (publisher_hints), and the
    # id of the last hint message (the client ignores an id of 0).
    hinted_encodings: dict[str, tuple[bool, ...]] = field(default_factory=dict)
    hint_id: int = 0
    # What this subscriber said per track (render_hints, track_priority), and the tracks it was
    # last told are switched off (track_switch_off).
    render_hints: dict[str, RenderHint] = field(default_factory=dict)
    subscribe_priorities: dict[str, Priority | None] = field(default_factory=dict)
    switched_off: frozenset[str] = frozenset()
    # What its link takes (from its RTCP): the budget of its layer allocation.
    downlink: Downlink = field(default_factory=Downlink)
    # When this client was first told about each remote participant (monotonic seconds). A
    # network quality answer names a remote only once the client surely knows it: twilio-video.js
    # applies a remote level only to participants it already has, and only when the level
    # changes, so a level that arrives first would never reach that participant.
    told_about: dict[str, float] = field(default_factory=dict)
    # Adopted from a worker that died (:mod:`atrium_media.signaling.handover`): the peer
    # connection is new, and until the client's first offer on it, ``resumable`` maps the m-lines
    # it received on before (mid) to the track SID each carried.
    adopted: bool = False
    resumable: dict[str, str] = field(default_factory=dict)
    # Subscriptions the client had on the old worker that are not rebuilt yet (their publisher
    # has not offered again): still listed in ``subscribed``, so the client keeps the tracks.
    carried: set[str] = field(default_factory=set)

    @property
    def session(self) -> str:
        return session_token(self.worker_id, self.session_id)

    @staticmethod
    def new_id() -> str:
        return uuid.uuid4().hex

    # Outbound ---------------------------------------------------------------------------------
    async def send(self, *bodies: dict[str, Any], close_code: int | None = None) -> None:
        if self.connection_id is None or self.reply_subject is None:
            return  # the socket is gone; a `sync` will get the full state
        await self.send_frame(self.connection_id, self.reply_subject, list(bodies), close_code)

    def published_body(self) -> dict[str, Any]:
        entries: list[dict[str, Any]] = []
        for track in self.tracks.values():
            if track.sid is not None:
                entries.append({"id": track.client_id, "sid": track.sid, "state": "ready"})
            elif track.failed is not None:
                entries.append({"id": track.client_id, "state": "failed", "error": track.failed})
        return {"revision": self.published_revision, "tracks": entries}

    def subscribed_body(self) -> dict[str, Any]:
        listed = [
            sub.track_sid
            for sub in self.subscriptions.values()
            if sub.negotiated or sub.channel is not None or sub.transceiver is not None
        ]
        self.carried.intersection_update(self.wanted)
        listed += sorted(sid for sid in self.carried if sid not in self.subscriptions)
        return {
            "revision": self.subscribed_revision,
            "tracks": [{"sid": sid, "id": sid} for sid in listed],
        }

    def tell_about(self, participant_sids: list[str], now: float) -> None:
        for sid in participant_sids:
            self.told_about.setdefault(sid, now)

    @property
    def reconnecting(self) -> bool:
        return self.signaling_lost or self.media_lost

    def datagrams_received(self) -> int | None:
        """What the client's DTLS transport has received so far; None before it is connected."""
        if self.pc.connectionState != "connected":
            return None
        for transceiver in self.pc.getTransceivers():
            transport = transceiver.receiver.transport
            if transport is not None and transport.state == "connected":
                return compat.datagrams_received(transport)
        sctp = self.pc.sctp
        if sctp is not None and sctp.transport.state == "connected":
            return compat.datagrams_received(sctp.transport)
        return None

    def expects_media_within(self) -> float | None:
        """How long this client can go without sending anything while its media is fine, or
        None when it need not send anything (it publishes and receives no media)."""
        if any(t.kind in ("audio", "video") and t.wired for t in self.tracks.values()):
            return PUBLISHER_SILENCE_SECONDS  # RTP every 20 ms while it publishes, even muted
        if any(
            sub.kind in ("audio", "video") and sub.negotiated for sub in self.subscriptions.values()
        ):
            return SUBSCRIBER_SILENCE_SECONDS  # receiver reports at least every 5 s
        return None

    @property
    def state(self) -> str:
        return "reconnecting" if self.reconnecting else "connected"

    def remote_state(self, state: str | None = None) -> dict[str, Any]:
        """This participant as the other clients see it (RSP participant entry)."""
        return {
            "sid": self.participant.sid,
            "identity": self.participant.identity,
            "state": state or self.state,
            "revision": self.state_revision,
            "tracks": [
                {
                    "sid": t.sid,
                    "kind": t.kind,
                    "name": t.name,
                    "enabled": t.enabled,
                    "priority": t.priority,
                }
                for t in self.tracks.values()
                if t.sid is not None
            ],
        }

    # Client descriptions ----------------------------------------------------------------------
    async def apply_client_offer(
        self, sdp: str, revision: int, prepare: Callable[[], None] | None = None
    ) -> dict[str, Any] | None:
        """Answer a client offer; returns the answer's peer_connections entry, or None (glare).
        ``prepare`` runs between applying the offer and answering it (to send on its m-lines)."""
        if self.offer_pending:
            log.info("glare on %s: dropping the client's offer r%s", self.session, revision)
            return None
        if self.revision and revision <= self.revision:
            log.info("stale client offer r%s on %s (at r%s)", revision, self.session, self.revision)
            return None
        if self.video_codecs:
            sdp = keep_video_codecs(sdp, self.video_codecs)
        async with _refused_as_53403(sdp):
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            self.revision = revision
            self.sending_mids = {
                track_id: section.mid
                for track_id, section in sending_tracks(sdp).items()
                if section.mid is not None
            }
            if prepare is not None:
                prepare()
            answer = await self.pc.createAnswer()
            await self.pc.setLocalDescription(answer)
        return self._description("answer")

    async def apply_client_answer(self, sdp: str, revision: int) -> bool:
        if not self.offer_pending or revision != self.revision:
            return False
        async with _refused_as_53403(sdp):
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        self.offer_pending = False
        for sub in self.subscriptions.values():
            sub.negotiated = True
        return True

    async def create_server_offer(self) -> dict[str, Any] | None:
        """A worker offer (new or removed subscriptions), or None when it must wait."""
        if self.offer_pending or self.pc.signalingState != "stable":
            self.renegotiate = True
            return None
        self.renegotiate = False
        # aiortc renumbers every transceiver's codecs when it offers; keep the negotiated ones
        # (the running senders and forwarding legs use them) and the client's numbering.
        negotiated = {
            t: (t._codecs, t._headerExtensions)
            for t in self.pc.getTransceivers()
            if t.mid is not None and t._codecs
        }
        offer = await self.pc.createOffer()
        for transceiver, (codecs, extensions) in negotiated.items():
            transceiver._codecs, transceiver._headerExtensions = codecs, extensions
        remote = self.pc.remoteDescription
        sdp = harmonize_offer(offer.sdp, remote.sdp) if remote is not None else offer.sdp
        await self.pc.setLocalDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        self.revision += 1
        self.offer_pending = True
        return self._description("offer")

    def restart_request(self) -> dict[str, Any]:
        """Ask the client for a fresh offer (RSP ``create-offer``): this worker's peer connection
        is new (the session was adopted), so the client must negotiate ICE and DTLS again. Its
        offer then carries the requested revision + 1, an ICE restart offer of its own at least
        ``revision + 1``: both are newer than this session's and applied.

        The request jumps ahead because the record this session was restored from may lag the
        client by a revision or two (frames the dead worker handled just before it died), and
        the client ignores a ``create-offer`` that is not newer than what it has."""
        return {
            "id": self.pc_id,
            "description": {"type": "create-offer", "revision": self.revision + RESTART_LEAD},
        }

    def pending_offer(self) -> dict[str, Any] | None:
        """The worker offer still waiting for its answer (resent in `synced`: the socket that
        carried it may have dropped before the client read it)."""
        if not self.offer_pending or self.pc.localDescription is None:
            return None
        return self._description("offer")

    def _description(self, kind: str) -> dict[str, Any]:
        sdp = self.pc.localDescription.sdp
        if self.announced_address:
            sdp = announce(sdp, self.announced_address)
        return {
            "id": self.pc_id,
            "description": {"type": kind, "sdp": sdp, "revision": self.revision},
        }

    async def add_ice(self, ice: dict[str, Any]) -> None:
        """Trickled client candidates: a cumulative list per ufrag; add only the new ones."""
        ufrag = str(ice.get("ufrag", ""))
        candidates = ice.get("candidates") or []
        done = self.ice_applied.get(ufrag, 0)
        for entry in candidates[done:]:
            text = str(entry.get("candidate", ""))
            if not text:
                continue
            try:
                # aiortc asserts the field count; int() of a field raises ValueError.
                candidate = candidate_from_sdp(text.split(":", 1)[1] if ":" in text else text)
            except (ValueError, IndexError, AssertionError):
                log.info("unparsable candidate from %s", self.session)
                continue
            candidate.sdpMid = entry.get("sdpMid")
            candidate.sdpMLineIndex = entry.get("sdpMLineIndex")
            if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
                candidate.sdpMLineIndex = 0
            try:
                await self.pc.addIceCandidate(candidate)
            except ValueError as exc:  # aioice: a candidate after end-of-candidates, for one
                log.info("candidate from %s not added: %s", self.session, exc)
        self.ice_applied[ufrag] = max(done, len(candidates))
        if ice.get("complete"):
            await self.pc.addIceCandidate(None)

    def receiving_transceiver(self, client_id: str) -> RTCRtpTransceiver | None:
        mid = self.sending_mids.get(client_id)
        if mid is None:
            return None
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == mid:
                return transceiver
        return None

    def published_codec(self, client_id: str) -> str | None:
        """The video codec negotiated for what the client sends on ``client_id`` (VP8, H264),
        None before negotiation and for audio."""
        transceiver = self.receiving_transceiver(client_id)
        codecs = transceiver._codecs if transceiver is not None else []
        if transceiver is None or transceiver.kind != "video" or not codecs:
            return None
        return codecs[0].mimeType.partition("/")[2].upper()

    async def close(self) -> None:
        self.closed = True
        if self.detached_timer is not None:
            self.detached_timer.cancel()
        self.msp.close()
        await self.pc.close()
