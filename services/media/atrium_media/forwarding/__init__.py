"""Forwarding: RTP-level routing of a room's media and data between peer connections.

This package knows RTP, RTCP and data channels, and nothing of RSP, rooms or the control plane. The
signaling package (:mod:`atrium_media.signaling`) drives it only through the names exported here;
everything else in the package is internal to forwarding.
"""

from atrium_media.forwarding.link_stats import InboundStream, LinkSample, OutboundStream
from atrium_media.forwarding.router import (
    MediaRouter,
    RecordingStoppedListener,
    RouterStats,
    UnknownTrack,
)
from atrium_media.forwarding.simulcast import LayerState
from atrium_media.forwarding.track import (
    AUTO_LAYER,
    AudioLevelListener,
    ForwardingLeg,
    LayerSsrcPair,
    PacketRecorder,
    PacketTap,
    ReceiverEstimate,
    ReportedLoss,
    TrackForwarder,
)

__all__ = [
    "AUTO_LAYER",
    "AudioLevelListener",
    "ForwardingLeg",
    "InboundStream",
    "LayerSsrcPair",
    "LayerState",
    "LinkSample",
    "MediaRouter",
    "OutboundStream",
    "PacketRecorder",
    "PacketTap",
    "ReceiverEstimate",
    "RecordingStoppedListener",
    "ReportedLoss",
    "RouterStats",
    "TrackForwarder",
    "UnknownTrack",
]
