"""Recording: each recorded track's RTP, as forwarding receives it, into its own Matroska file.

The media worker hosting a room records it (docs/recordings.md says why): forwarding taps every
media packet of a recorded track into a :class:`TrackRecorder` (``MediaRouter.record``), which
queues it (O(1) on the event loop); a :class:`RecorderPool` thread depacketizes (never decodes)
and muxes with PyAV, and :func:`storage_for` says where the finished file goes (a local folder or
an S3-compatible bucket).

This package knows RTP, codecs, files and buckets; nothing of RSP, rooms or NATS. The signaling
side uses the names exported here.
"""

from atrium_media.recording.depacketize import (
    SUPPORTED_CODECS,
    MediaFrame,
    TrackDepacketizer,
)
from atrium_media.recording.recorder import RecorderPool, RecordingResult, TrackRecorder
from atrium_media.recording.storage import (
    LocalStorage,
    RecordingStorage,
    S3Storage,
    StorageError,
    StoredMedia,
    media_key,
    parse_s3_url,
    storage_for,
)
from atrium_media.recording.writer import Codec, Container, MatroskaWriter, recording_format

__all__ = [
    "SUPPORTED_CODECS",
    "Codec",
    "Container",
    "LocalStorage",
    "MatroskaWriter",
    "MediaFrame",
    "RecorderPool",
    "RecordingResult",
    "RecordingStorage",
    "S3Storage",
    "StorageError",
    "StoredMedia",
    "TrackDepacketizer",
    "TrackRecorder",
    "media_key",
    "parse_s3_url",
    "recording_format",
    "storage_for",
]
