"""Media signaling extensions (issue 10): pure, I/O-free building blocks.

* :mod:`.dominant_speaker` -- dominant speaker identification from RFC 6464 audio levels.
* :mod:`.network_quality` -- network quality levels 0..5 from observed link statistics.
* :mod:`.msp` -- the MSP messages of the ``active_speaker`` and ``network_quality`` channels.

The wire protocol they serve is described in ``docs/media-signaling.md``.
"""

from atrium_media.extensions.dominant_speaker import (
    DominantSpeakerConfig,
    DominantSpeakerDetector,
    parse_audio_level,
)
from atrium_media.extensions.msp import (
    ActiveSpeakerMessage,
    MspError,
    MspReady,
    NetworkQualityMessage,
    NetworkQualityRequest,
    parse_client_message,
    parse_server_message,
)
from atrium_media.extensions.network_quality import (
    DirectionStats,
    MediaStats,
    NetworkQualityEstimator,
    NetworkQualityReport,
    ParticipantStats,
    build_network_quality_message,
)

__all__ = [
    "ActiveSpeakerMessage",
    "DirectionStats",
    "DominantSpeakerConfig",
    "DominantSpeakerDetector",
    "MediaStats",
    "MspError",
    "MspReady",
    "NetworkQualityEstimator",
    "NetworkQualityMessage",
    "NetworkQualityReport",
    "NetworkQualityRequest",
    "ParticipantStats",
    "build_network_quality_message",
    "parse_audio_level",
    "parse_client_message",
    "parse_server_message",
]
