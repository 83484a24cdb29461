"""Atrium's Python client SDK: twilio-video's object model over TCMP v2 / RSP v2 and aiortc.

One process is one participant ("first person", as twilio-video.js)::

    import asyncio
    from atrium_video import connect, create_local_audio_track, create_local_video_track

    async def main(token: str) -> None:
        tracks = [create_local_audio_track(), create_local_video_track()]
        async with await connect(token, url="ws://127.0.0.1:8080/signaling", name="my-room",
                                 tracks=tracks) as room:
            room.on("participant_connected", lambda p: print("joined:", p.identity))
            room.on("track_subscribed", lambda track, publication, participant: ...)
            await asyncio.sleep(60)

* :func:`connect` returns a :class:`Room` (``sid``, ``name``, ``state``, ``local_participant``,
  ``participants``) or raises :class:`TwilioError` with Twilio's code.
* :class:`LocalParticipant` publishes and unpublishes :class:`LocalAudioTrack`,
  :class:`LocalVideoTrack` and :class:`LocalDataTrack`; a :class:`RemoteParticipant` lists its
  :class:`RemoteTrackPublication` objects, whose ``track`` is set once subscribed.
* Remote audio and video tracks yield decoded ``av`` frames (``await track.recv()``,
  ``async for frame in track``); remote data tracks emit ``message``.
* Events use twilio-video's names in snake case: ``room.on("track_subscribed", handler)``;
  handlers may be plain functions or coroutines.
* Media signaling extensions, asked for in :func:`connect`: ``dominant_speaker=True``
  (``room.dominant_speaker``, ``dominant_speaker_changed``), ``network_quality=True`` or
  ``{"local": 1..3, "remote": 0..3}`` (``participant.network_quality_level``,
  ``network_quality_level_changed``); ``automatic_subscription=False`` subscribes to nothing
  until REST SubscribeRules say otherwise. Remote participants whose signaling connection drops
  go ``reconnecting`` (``participant_reconnecting`` / ``participant_reconnected``).
* ``bandwidth_profile={"video": {...}}`` (twilio-video's ``bandwidthProfile``, Python names):
  track priority (``RemoteVideoTrack.set_priority``), track switch-off (``is_switched_off``,
  ``switched_off`` / ``switched_on``, ``track_switched_off`` / ``track_switched_on``) and render
  hints (``switch_off()`` / ``switch_on()`` / ``set_content_preferences()``).
"""

from atrium_video.bandwidth_profile import BandwidthProfile, VideoBandwidthProfile
from atrium_video.errors import TrackEnded, TwilioError
from atrium_video.events import EventEmitter
from atrium_video.ice import enable_loopback_candidates
from atrium_video.network_quality import (
    NetworkQualityBandwidthStats,
    NetworkQualityFractionLostStats,
    NetworkQualityLatencyStats,
    NetworkQualityMediaStats,
    NetworkQualitySendOrRecvStats,
    NetworkQualityStats,
)
from atrium_video.participant import (
    LocalParticipant,
    LocalTrackPublication,
    Participant,
    RemoteParticipant,
    RemoteTrackPublication,
)
from atrium_video.room import Room, connect
from atrium_video.tracks import (
    LocalAudioTrack,
    LocalDataTrack,
    LocalTrack,
    LocalVideoTrack,
    RemoteAudioTrack,
    RemoteDataTrack,
    RemoteMediaTrack,
    RemoteTrack,
    RemoteVideoTrack,
    TestPatternSource,
    ToneSource,
    create_local_audio_track,
    create_local_tracks,
    create_local_video_track,
)

__version__ = "0.1.0"

__all__ = [
    "BandwidthProfile",
    "EventEmitter",
    "LocalAudioTrack",
    "LocalDataTrack",
    "LocalParticipant",
    "LocalTrack",
    "LocalTrackPublication",
    "LocalVideoTrack",
    "NetworkQualityBandwidthStats",
    "NetworkQualityFractionLostStats",
    "NetworkQualityLatencyStats",
    "NetworkQualityMediaStats",
    "NetworkQualitySendOrRecvStats",
    "NetworkQualityStats",
    "Participant",
    "RemoteAudioTrack",
    "RemoteDataTrack",
    "RemoteMediaTrack",
    "RemoteParticipant",
    "RemoteTrack",
    "RemoteTrackPublication",
    "RemoteVideoTrack",
    "Room",
    "TestPatternSource",
    "ToneSource",
    "TrackEnded",
    "TwilioError",
    "VideoBandwidthProfile",
    "__version__",
    "connect",
    "create_local_audio_track",
    "create_local_tracks",
    "create_local_video_track",
    "enable_loopback_candidates",
]
