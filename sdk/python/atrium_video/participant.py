"""Participants and their track publications (twilio-video's object model, in snake case)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from atrium_video.bandwidth_profile import PRIORITIES
from atrium_video.events import EventEmitter
from atrium_video.network_quality import NetworkQualityStats
from atrium_video.tracks import (
    AnyLocalTrack,
    AnyRemoteTrack,
    LocalAudioTrack,
    LocalDataTrack,
    LocalVideoTrack,
)

if TYPE_CHECKING:
    from atrium_video.room import Room


def check_priority(priority: str) -> str:
    """A publish priority: ``low``, ``standard`` or ``high`` (ValueError otherwise)."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be 'low', 'standard' or 'high', not {priority!r}")
    return priority


class LocalTrackPublication:
    """A local track the server accepted: ``track_sid`` (``MT...``), ``track_name``, ``kind``,
    and its publish ``priority`` (``low``, ``standard``, ``high``)."""

    def __init__(
        self,
        track_sid: str,
        track: AnyLocalTrack,
        priority: str = "standard",
        on_priority: Callable[[AnyLocalTrack, str], None] | None = None,
    ) -> None:
        self.track_sid = track_sid
        self.track = track
        self._priority = priority
        self._on_priority = on_priority

    @property
    def priority(self) -> str:
        """The publish priority the other participants see (``publish_priority``)."""
        return self._priority

    def set_priority(self, priority: str) -> LocalTrackPublication:
        """Change the publish priority, as twilio-video's ``setPriority``: the others'
        SDKs see it (``publish_priority``), SubscribeRules with a ``priority`` filter and the
        server's bandwidth allocation follow it. ValueError for anything but ``"low"``,
        ``"standard"``, ``"high"``."""
        check_priority(priority)
        if priority != self._priority:
            self._priority = priority
            if self._on_priority is not None:
                self._on_priority(self.track, priority)
        return self

    @property
    def track_name(self) -> str:
        """The track's name (its ``name`` when created)."""
        return self.track.name

    @property
    def kind(self) -> str:
        """``audio``, ``video`` or ``data``."""
        return self.track.kind

    @property
    def is_track_enabled(self) -> bool:
        """False while the local track is disabled."""
        return self.track.is_enabled

    def __repr__(self) -> str:
        return f"<LocalTrackPublication {self.kind} {self.track_name!r} sid={self.track_sid}>"


class RemoteTrackPublication(EventEmitter):
    """A track another participant published. ``track`` is None until subscribed.

    Events: ``subscribed`` (track), ``unsubscribed`` (track), ``track_enabled``,
    ``track_disabled``, ``track_switched_off`` / ``track_switched_on`` (track; with a bandwidth
    profile, when the server stops or resumes forwarding it).
    """

    def __init__(
        self, track_sid: str, track_name: str, kind: str, enabled: bool, priority: str = "standard"
    ) -> None:
        super().__init__()
        self.track_sid = track_sid
        self.track_name = track_name
        self.kind = kind
        self.is_track_enabled = enabled
        self.publish_priority = priority
        self.track: AnyRemoteTrack | None = None

    @property
    def is_subscribed(self) -> bool:
        """True once ``track`` is set (``track_subscribed`` fired), until unsubscribed."""
        return self.track is not None

    def __repr__(self) -> str:
        state = "subscribed" if self.is_subscribed else "unsubscribed"
        return (
            f"<RemoteTrackPublication {self.kind} {self.track_name!r} sid={self.track_sid} {state}>"
        )


class Participant(EventEmitter):
    """What local and remote participants share: ``sid``, ``identity``, ``state``
    (``connected``, ``reconnecting``, ``disconnected``), publications by track SID in ``tracks``
    / ``audio_tracks`` / ``video_tracks`` / ``data_tracks``, and the network quality.

    ``network_quality_level`` is 0 (network broken) .. 5 (excellent), or None until the server
    reported one (only with ``connect(network_quality=...)``; remote participants' levels need
    remote verbosity >= 1). ``network_quality_stats`` is the :class:`NetworkQualityStats`
    reported with the level at verbosity 2 or 3 (None at verbosity 1); as in twilio-video.js it
    is updated together with the level, when the level changes.

    Events: ``network_quality_level_changed`` (level, stats or None), ``reconnecting``,
    ``reconnected`` (no arguments).
    """

    def __init__(self, sid: str, identity: str) -> None:
        super().__init__()
        self.sid = sid
        self.identity = identity
        self.state = "connected"
        self.network_quality_level: int | None = None
        self.network_quality_stats: NetworkQualityStats | None = None

    def _set_network_quality_level(self, level: int, levels: dict[str, Any] | None) -> None:
        """As twilio-video.js: only a new level changes the stats and emits the event."""
        if level == self.network_quality_level:
            return
        self.network_quality_level = level
        self.network_quality_stats = NetworkQualityStats._parse(levels)
        self.emit("network_quality_level_changed", level, self.network_quality_stats)

    def _reconnecting(self) -> None:
        if self.state == "connected":
            self.state = "reconnecting"
            self.emit("reconnecting")

    def _reconnected(self) -> None:
        if self.state == "reconnecting":
            self.state = "connected"
            self.emit("reconnected")

    def _by_kind(self, kind: str) -> dict[str, Any]:
        return {sid: p for sid, p in self.tracks.items() if p.kind == kind}

    @property
    def tracks(self) -> dict[str, Any]:
        """Every publication, by track SID (``MT...``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.identity!r} sid={self.sid} {self.state}>"


class LocalParticipant(Participant):
    """This client. Events: ``track_published`` (publication), ``track_publication_failed``
    (error, track), ``network_quality_level_changed`` (level, stats or None), ``reconnecting`` /
    ``reconnected`` (while the room resyncs its signaling)."""

    def __init__(self, sid: str, identity: str, room: Room) -> None:
        super().__init__(sid, identity)
        self._room = room
        self._publications: dict[str, LocalTrackPublication] = {}

    @property
    def tracks(self) -> dict[str, LocalTrackPublication]:
        """Every publication of this client, by track SID."""
        return dict(self._publications)

    @property
    def audio_tracks(self) -> dict[str, LocalTrackPublication]:
        """The audio publications, by track SID."""
        return self._by_kind("audio")

    @property
    def video_tracks(self) -> dict[str, LocalTrackPublication]:
        """The video publications, by track SID."""
        return self._by_kind("video")

    @property
    def data_tracks(self) -> dict[str, LocalTrackPublication]:
        """The data publications, by track SID."""
        return self._by_kind("data")

    async def publish_track(
        self,
        track: LocalAudioTrack | LocalVideoTrack | LocalDataTrack,
        priority: str = "standard",
    ) -> LocalTrackPublication:
        """Publish ``track`` with the publish ``priority`` (``low``, ``standard``, ``high``);
        returns once the server assigned its SID (raises TwilioError)."""
        return await self._room._publish(track, check_priority(priority))

    async def publish_tracks(self, tracks: list[AnyLocalTrack]) -> list[LocalTrackPublication]:
        """Publish several tracks, one after the other; returns their publications in order."""
        return [await self.publish_track(track) for track in tracks]

    async def unpublish_track(
        self, track: LocalAudioTrack | LocalVideoTrack | LocalDataTrack
    ) -> LocalTrackPublication | None:
        """Stop publishing ``track``; returns its former publication (None if not published)."""
        return await self._room._unpublish(track)

    def _add(self, publication: LocalTrackPublication) -> None:
        self._publications[publication.track_sid] = publication
        self.emit("track_published", publication)

    def _remove(self, track: AnyLocalTrack) -> LocalTrackPublication | None:
        for sid, publication in list(self._publications.items()):
            if publication.track is track:
                return self._publications.pop(sid)
        return None


class RemoteParticipant(Participant):
    """Another participant. Events (re-emitted by the Room with the participant appended):
    ``track_published`` (publication), ``track_unpublished`` (publication), ``track_subscribed``
    (track, publication), ``track_unsubscribed`` (track, publication), ``track_enabled``
    (publication), ``track_disabled`` (publication), ``track_message`` (data, track),
    ``track_switched_off`` / ``track_switched_on`` (track, publication; with a bandwidth profile);
    ``reconnecting`` and ``reconnected`` (no arguments; the Room re-emits them as
    ``participant_reconnecting`` / ``participant_reconnected``) while its signaling connection
    is lost and after it came back. Not re-emitted: ``disconnected`` (participant),
    ``network_quality_level_changed`` (level, stats or None).

    ``state`` is ``connected``, ``reconnecting`` (the server lost this participant's signaling
    connection and awaits its return) or ``disconnected``."""

    def __init__(self, sid: str, identity: str) -> None:
        super().__init__(sid, identity)
        self.revision = 0
        self._publications: dict[str, RemoteTrackPublication] = {}
        self._relay: Callable[..., None] | None = None

    @property
    def tracks(self) -> dict[str, RemoteTrackPublication]:
        """Every publication of this participant, by track SID."""
        return dict(self._publications)

    @property
    def audio_tracks(self) -> dict[str, RemoteTrackPublication]:
        """The audio publications, by track SID."""
        return self._by_kind("audio")

    @property
    def video_tracks(self) -> dict[str, RemoteTrackPublication]:
        """The video publications, by track SID."""
        return self._by_kind("video")

    @property
    def data_tracks(self) -> dict[str, RemoteTrackPublication]:
        """The data publications, by track SID."""
        return self._by_kind("data")

    def emit(self, event: str, *args: Any) -> None:
        """Emit on this participant, and on its Room with the participant appended."""
        super().emit(event, *args)
        if self._relay is not None:
            self._relay(event, *args)
