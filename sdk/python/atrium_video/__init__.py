"""Atrium's Python client SDK: twilio-video's object model over TCMP v2 / RSP v2 and aiortc.

    room = await connect(token, url="ws://127.0.0.1:8080/signaling", name="my-room",
                         tracks=[create_local_audio_track(), create_local_video_track()])
"""

from atrium_video.errors import TrackEnded, TwilioError
from atrium_video.events import EventEmitter
from atrium_video.ice import enable_loopback_candidates
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
    "EventEmitter",
    "LocalAudioTrack",
    "LocalDataTrack",
    "LocalParticipant",
    "LocalTrack",
    "LocalTrackPublication",
    "LocalVideoTrack",
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
    "__version__",
    "connect",
    "create_local_audio_track",
    "create_local_tracks",
    "create_local_video_track",
    "enable_loopback_candidates",
]
