"""Per-room routing table: published tracks, subscriptions and data tracks.

This is the API the signaling (RSP) layer calls. It never negotiates: it adds transceivers or
accepts the ones the signaling layer made, and the signaling layer renegotiates afterwards.

Threading/async: one :class:`MediaRouter` per room, used only from the asyncio loop thread that
owns that room's ``RTCPeerConnection`` objects. Methods are synchronous (they only rewire objects);
forwarding itself happens inside aiortc's receive coroutines. Nothing is thread-safe.

Typical use by the signaling layer::

    router = MediaRouter(room_sid)
    # publisher's offer applied; for each received m-line tied to a track id:
    router.add_published_track(participant_sid, track_id, transceiver)
    # data track: the publisher's channel (pc.on("datachannel"))
    router.add_data_track(participant_sid, track_id, channel)
    # the track service says subscriber S gets track T:
    transceiver = router.subscribe(subscriber_sid, subscriber_pc, track_id)
    ...renegotiate subscriber_pc (worker offers); forwarding starts once its DTLS is connected...
    router.subscribe_data(subscriber_sid, track_id, subscriber_pc.createDataChannel(...))
    router.set_enabled(track_id, False)  # publisher disabled the track
    router.record(track_id, recorder)  # a TrackRecorder (atrium_media.recording) taps its RTP
    router.stop_recording(track_id)  # -> the recorder, to finish
    router.remove_participant(participant_sid)  # left, kicked or its PC failed/closed
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpTransceiver

from atrium_media.forwarding.data import DEFAULT_HIGH_WATER, DataFanout, DataFanoutStats
from atrium_media.forwarding.link_stats import (
    LinkSample,
    OutboundStream,
    inbound_stream,
    outbound_stream,
)
from atrium_media.forwarding.track import (
    DEFAULT_PLI_INTERVAL,
    AudioLevelListener,
    ForwardingLeg,
    IdleTrack,
    PacketRecorder,
    TrackForwarder,
    TrackStats,
    codec_preferences,
    narrow_codecs,
)

logger = logging.getLogger(__name__)

# Hears (track_id, recorder) when a recorded track goes away; the recorder is its to finish.
RecordingStoppedListener = Callable[[str, PacketRecorder], None]


class UnknownTrack(KeyError):
    """No published (media or data) track with this id in the room."""


@dataclass
class RouterStats:
    """Load figures for the worker's registry entry and metrics."""

    published_tracks: int
    legs: int
    active_legs: int
    packets_received: int
    packets_forwarded: int
    bytes_forwarded: int
    data_tracks: int
    data_subscriptions: int
    data_messages_received: int
    data_messages_delivered: int
    data_messages_dropped: int
    tracks: list[TrackStats] = field(default_factory=list)
    data: list[DataFanoutStats] = field(default_factory=list)


class MediaRouter:
    """Forwarding state of one room."""

    def __init__(
        self,
        room_id: str = "",
        *,
        pli_interval: float = DEFAULT_PLI_INTERVAL,
        data_high_water: int = DEFAULT_HIGH_WATER,
    ) -> None:
        self.room_id = room_id
        self._pli_interval = pli_interval
        self._data_high_water = data_high_water
        self._tracks: dict[str, TrackForwarder] = {}
        self._data: dict[str, DataFanout] = {}
        self._data_publishers: dict[str, str] = {}
        self._audio_level_listener: AudioLevelListener | None = None
        self._recorders: dict[str, PacketRecorder] = {}
        self._recording_stopped: RecordingStoppedListener | None = None

    def on_audio_level(self, listener: AudioLevelListener | None) -> None:
        """Hear (publisher_id, level -dBov, voice) for every audio packet with a level, from
        every audio track of the room, now and later (None: stop)."""
        self._audio_level_listener = listener
        for forwarder in self._tracks.values():
            if forwarder.kind == "audio":
                forwarder.on_audio_level = listener

    # ------------------------------------------------------------------ publishing
    def add_published_track(
        self, publisher_id: str, track_id: str, transceiver: RTCRtpTransceiver
    ) -> TrackForwarder:
        """Start forwarding the media received on ``transceiver`` (the publisher's m-line).

        Call it once the publisher's offer is applied (e.g. from the PC's ``track`` event). The
        receiver is hooked immediately: its frames are never decoded, even with no subscriber.
        """
        if track_id in self._tracks or track_id in self._data:
            raise ValueError(f"track {track_id} is already published")
        forwarder = TrackForwarder(
            publisher_id,
            track_id,
            transceiver,
            pli_interval=self._pli_interval,
            on_leg_removed=self._on_leg_removed,
        )
        if forwarder.kind == "audio":
            forwarder.on_audio_level = self._audio_level_listener
        self._tracks[track_id] = forwarder
        return forwarder

    def remove_published_track(self, track_id: str) -> None:
        forwarder = self._tracks.pop(track_id, None)
        if forwarder is not None:
            recorder = self._recorders.pop(track_id, None)
            forwarder.close()
            if recorder is not None:
                recorder.set_keyframe_requester(None)
                if self._recording_stopped is not None:
                    self._recording_stopped(track_id, recorder)
        fanout = self._data.pop(track_id, None)
        if fanout is not None:
            fanout.close()
            self._data_publishers.pop(track_id, None)

    def set_enabled(self, track_id: str, enabled: bool) -> None:
        """Publisher-side enable/disable: pause forwarding, or resume it with a keyframe request."""
        self._forwarder(track_id).set_enabled(enabled)

    def request_keyframe(self, track_id: str) -> None:
        self._forwarder(track_id).request_keyframe()

    def published_track(self, track_id: str) -> TrackForwarder:
        return self._forwarder(track_id)

    # ------------------------------------------------------------------ recording
    def record(self, track_id: str, recorder: PacketRecorder) -> None:
        """Tap every media packet of ``track_id`` into ``recorder`` (from now on, whether or not
        anyone subscribes). For video a keyframe is requested at once, and the recorder may ask
        for more (from its own thread) while it waits for one."""
        forwarder = self._forwarder(track_id)
        if track_id in self._recorders:
            raise ValueError(f"track {track_id} is already recorded")
        if forwarder.kind == "video":
            recorder.set_keyframe_requester(_threadsafe_keyframe_requester(forwarder))
        forwarder.add_tap(recorder.feed)
        self._recorders[track_id] = recorder
        if forwarder.kind == "video":
            forwarder.request_keyframe()

    def stop_recording(self, track_id: str) -> PacketRecorder | None:
        """Stop tapping ``track_id``; returns its recorder (the caller finishes it)."""
        recorder = self._recorders.pop(track_id, None)
        if recorder is None:
            return None
        forwarder = self._tracks.get(track_id)
        if forwarder is not None:
            forwarder.remove_tap(recorder.feed)
        recorder.set_keyframe_requester(None)
        return recorder

    def recorder(self, track_id: str) -> PacketRecorder | None:
        return self._recorders.get(track_id)

    def recorded_tracks(self) -> list[str]:
        return list(self._recorders)

    def on_recording_stopped(self, listener: RecordingStoppedListener | None) -> None:
        """Hear (track_id, recorder) when a recorded track goes away (unpublished, its publisher
        left, the room closed): the tap is gone, the recorder is the listener's to finish."""
        self._recording_stopped = listener

    # ------------------------------------------------------------------ subscribing
    def subscribe(
        self, subscriber_id: str, pc: RTCPeerConnection, track_id: str
    ) -> RTCRtpTransceiver:
        """Add a sendonly transceiver to ``pc`` that will carry ``track_id``; returns it.

        The transceiver's codec preferences are set to the publisher's codec, and its sender
        track id (``a=msid``) is ``track_id``. The caller must renegotiate ``pc``; forwarding
        starts (with a keyframe request) once the transceiver is negotiated and the transport
        connected. Its ``mid`` is known after ``setLocalDescription``.
        """
        forwarder = self._forwarder(track_id)
        transceiver = pc.addTransceiver(IdleTrack(forwarder.kind, track_id), direction="sendonly")
        codec = forwarder.codec
        if codec is not None:
            transceiver.setCodecPreferences(codec_preferences(codec, forwarder.kind))
        forwarder.add_leg(subscriber_id, transceiver)
        return transceiver

    def attach(self, subscriber_id: str, track_id: str, transceiver: RTCRtpTransceiver) -> None:
        """Forward ``track_id`` on an existing transceiver (e.g. a pre-negotiated slot).

        The transceiver must send (``sendonly``/``sendrecv``) and should carry no real track
        (:meth:`reserve` gives it one that never yields, or aiortc polls the empty sender every
        20 ms). Its codecs are narrowed to the publisher's (one negotiated from a client's offer
        lists every codec in common). Sequence numbers and timestamps continue across
        re-attachments of the same transceiver. UnknownTrack: ``track_id`` is not here;
        ValueError: it is of another kind.
        """
        forwarder = self._forwarder(track_id)
        if transceiver.kind != forwarder.kind:
            raise ValueError(f"cannot forward {forwarder.kind} on a {transceiver.kind} transceiver")
        narrow_codecs(transceiver, forwarder.codec)
        forwarder.add_leg(subscriber_id, transceiver)

    @staticmethod
    def reserve(transceiver: RTCRtpTransceiver, track_id: str) -> None:
        """Make ``transceiver``'s sender announce ``track_id`` (its ``a=msid``) without sending."""
        transceiver.sender.replaceTrack(IdleTrack(transceiver.kind, track_id))

    def unsubscribe(self, subscriber_id: str, track_id: str) -> RTCRtpTransceiver | None:
        """Stop forwarding ``track_id`` to the subscriber; returns the leg's transceiver.

        The transceiver stays in the subscriber's PC (aiortc cannot remove m-lines): set its
        direction to ``inactive`` and renegotiate, or reuse it with :meth:`attach`.
        """
        forwarder = self._tracks.get(track_id)
        if forwarder is not None:
            leg = forwarder.remove_leg(subscriber_id)
            return leg.transceiver if leg is not None else None
        fanout = self._data.get(track_id)
        if fanout is not None:
            fanout.remove_subscriber(subscriber_id)
        return None

    def set_subscription_enabled(self, subscriber_id: str, track_id: str, enabled: bool) -> None:
        """Pause/resume one leg only (e.g. a subscriber switched the track off)."""
        self._forwarder(track_id).set_leg_enabled(subscriber_id, enabled)

    # ------------------------------------------------------------------ data tracks
    def add_data_track(
        self, publisher_id: str, track_id: str, channel: RTCDataChannel | None = None
    ) -> DataFanout:
        """Register a data track; ``channel`` is the publisher's channel (may be attached later)."""
        if track_id in self._tracks or track_id in self._data:
            raise ValueError(f"track {track_id} is already published")
        fanout = DataFanout(track_id, channel, high_water=self._data_high_water)
        self._data[track_id] = fanout
        self._data_publishers[track_id] = publisher_id
        return fanout

    def subscribe_data(self, subscriber_id: str, track_id: str, channel: RTCDataChannel) -> None:
        """Deliver the data track's messages on ``channel`` (made by the signaling layer)."""
        fanout = self._data.get(track_id)
        if fanout is None:
            raise UnknownTrack(track_id)
        fanout.add_subscriber(subscriber_id, channel)

    # ------------------------------------------------------------------ participants
    def remove_participant(self, participant_id: str) -> None:
        """Drop everything a participant published and every subscription it had."""
        for track_id, forwarder in list(self._tracks.items()):
            if forwarder.publisher_id == participant_id:
                self.remove_published_track(track_id)
            else:
                forwarder.remove_leg(participant_id)
        for track_id, fanout in list(self._data.items()):
            if self._data_publishers.get(track_id) == participant_id:
                self.remove_published_track(track_id)
            else:
                fanout.remove_subscriber(participant_id)

    def close(self) -> None:
        for track_id in list(self._tracks) + list(self._data):
            self.remove_published_track(track_id)

    # ------------------------------------------------------------------ stats
    def leg_count(self) -> int:
        return sum(len(f.legs) for f in self._tracks.values())

    def stats(self) -> RouterStats:
        tracks = [f.stats() for f in self._tracks.values()]
        data = [d.stats() for d in self._data.values()]
        legs = [leg for t in tracks for leg in t.legs]
        return RouterStats(
            published_tracks=len(tracks) + len(data),
            legs=len(legs),
            active_legs=sum(1 for leg in legs if leg.state == ForwardingLeg.FORWARDING),
            packets_received=sum(t.packets_received for t in tracks),
            packets_forwarded=sum(t.packets_forwarded for t in tracks),
            bytes_forwarded=sum(t.bytes_forwarded for t in tracks),
            data_tracks=len(data),
            data_subscriptions=sum(len(d.subscribers) for d in data),
            data_messages_received=sum(d.received for d in data),
            data_messages_delivered=sum(d.delivered for d in data),
            data_messages_dropped=sum(d.dropped for d in data),
            tracks=tracks,
            data=data,
        )

    async def link_sample(self, participant_id: str, now: float) -> LinkSample:
        """Cumulative counters of what ``participant_id`` sends here and receives from here."""
        sample = LinkSample(participant_id, now)
        for forwarder in list(self._tracks.values()):
            codec = forwarder.codec
            clock_rate = codec.clockRate if codec is not None else 90000
            if forwarder.publisher_id == participant_id:
                sample.inbound.append(
                    await inbound_stream(
                        forwarder.receiver,
                        forwarder.track_id,
                        forwarder.kind,
                        clock_rate,
                        forwarder.bytes_received,
                    )
                )
                continue
            leg = forwarder.legs.get(participant_id)
            if leg is None or leg.state != ForwardingLeg.FORWARDING:
                continue
            stream: OutboundStream = await outbound_stream(
                leg.sender,
                forwarder.track_id,
                forwarder.kind,
                clock_rate,
                leg.packets_sent,
                leg.bytes_sent,
            )
            sample.outbound.append(stream)
        return sample

    # ------------------------------------------------------------------ internals
    def _forwarder(self, track_id: str) -> TrackForwarder:
        forwarder = self._tracks.get(track_id)
        if forwarder is None:
            raise UnknownTrack(track_id)
        return forwarder

    def _on_leg_removed(self, leg: ForwardingLeg) -> None:
        logger.info(
            "room %s: dropped leg to %s (transport %s)",
            self.room_id,
            leg.subscriber_id,
            leg.sender.transport.state,
        )


def _threadsafe_keyframe_requester(forwarder: TrackForwarder) -> Callable[[], None]:
    """``forwarder.request_keyframe`` callable from any thread (it runs on the router's loop)."""
    loop = asyncio.get_running_loop()

    def request() -> None:
        try:
            loop.call_soon_threadsafe(forwarder.request_keyframe)
        except RuntimeError:
            pass  # the loop is closed: nothing to ask any more

    return request
