"""Every private aiortc/aioice name the media worker relies on, checked in one place.

aiortc has no SFU API; forwarding encoded media needs a handful of private names (see
``docs``/reference "aiortc-forwarding"). They are checked when this module is imported, so an aiortc
upgrade that renames one fails at start-up with a clear message instead of silently forwarding
nothing. Instance attributes (name-mangled fields set in ``__init__``) can only be checked on a live
object: :func:`require_instance_attrs` does that the first time an object is hooked.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import aioice.ice
import aiortc
import aiortc.rtcrtpreceiver
import aiortc.rtp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender

TESTED_AIORTC_VERSION = "1.16.0"

# Instance attributes (mangled where aiortc uses double underscores).
RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
# Set by the receiver when it negotiated REMB (None otherwise), and once RTCP can be sent.
RECEIVER_BITRATE_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
RECEIVER_RTCP_SSRC = "_RTCRtpReceiver__rtcp_ssrc"
SENDER_RTP_HISTORY = "_RTCRtpSender__rtp_history"
SENDER_NTP_TIMESTAMP = "_RTCRtpSender__ntp_timestamp"
SENDER_RTP_TIMESTAMP = "_RTCRtpSender__rtp_timestamp"
SENDER_OCTET_COUNT = "_RTCRtpSender__octet_count"
SENDER_PACKET_COUNT = "_RTCRtpSender__packet_count"
SENDER_SSRC = "_ssrc"
SENDER_STARTED = "_RTCRtpSender__started"
SENDER_EXTENSIONS_MAP = "_RTCRtpSender__rtp_header_extensions_map"
TRANSCEIVER_CODECS = "_codecs"

RECEIVER_INSTANCE_ATTRS = (RECEIVER_DECODER_QUEUE,)
SENDER_INSTANCE_ATTRS = (
    SENDER_RTP_HISTORY,
    SENDER_NTP_TIMESTAMP,
    SENDER_RTP_TIMESTAMP,
    SENDER_OCTET_COUNT,
    SENDER_PACKET_COUNT,
    SENDER_SSRC,
    SENDER_STARTED,
    SENDER_EXTENSIONS_MAP,
)


class AiortcCompatError(RuntimeError):
    """aiortc/aioice no longer have a private name the media worker hooks into."""


def _fail(what: str) -> AiortcCompatError:
    return AiortcCompatError(
        f"atrium_media relies on aiortc internals that changed: {what}. "
        f"It was written against aiortc {TESTED_AIORTC_VERSION}; installed: {aiortc.__version__}. "
        "Pin aiortc or port atrium_media (see the aiortc-forwarding reference)."
    )


def _require_method(owner: type, name: str, params: tuple[str, ...], is_async: bool) -> None:
    func = getattr(owner, name, None)
    if func is None or not callable(func):
        raise _fail(f"{owner.__name__}.{name} is missing")
    if is_async and not inspect.iscoroutinefunction(func):
        raise _fail(f"{owner.__name__}.{name} is no longer a coroutine function")
    actual = tuple(inspect.signature(func).parameters)[1:]
    if actual != params:
        raise _fail(f"{owner.__name__}.{name}{actual} no longer takes {params}")


def check_static() -> None:
    """Check the class- and module-level names; raises AiortcCompatError."""
    _require_method(RTCRtpReceiver, "_handle_rtp_packet", ("packet", "arrival_time_ms"), True)
    _require_method(RTCRtpReceiver, "_send_rtcp_pli", ("media_ssrc",), True)
    _require_method(RTCRtpSender, "_send_keyframe", (), False)
    _require_method(RTCRtpSender, "_handle_rtcp_packet", ("packet",), True)
    _require_method(RTCRtpSender, "_retransmit", ("sequence_number",), True)
    _require_method(RTCDtlsTransport, "_send_rtp", ("data",), True)
    _require_method(RTCDtlsTransport, "_get_stats", (), False)
    if not hasattr(aioice.ice, "get_host_addresses"):
        raise _fail("aioice.ice.get_host_addresses is missing")
    sig = tuple(inspect.signature(aioice.ice.get_host_addresses).parameters)
    if sig != ("use_ipv4", "use_ipv6"):
        raise _fail(f"aioice.ice.get_host_addresses{sig} changed signature")
    _require_method(RTCRtpReceiver, "_send_rtcp", ("packet",), True)
    for name in (
        "RtpPacket",
        "RTP_HISTORY_SIZE",
        "unwrap_rtx",
        "HeaderExtensions",
        "RtcpPsfbPacket",
        "RTCP_PSFB_APP",
        "RTCP_RTPFB_NACK",
        "RtcpRtpfbPacket",
        "RtcpRrPacket",
        "RtcpSrPacket",
        "pack_remb_fci",
        "unpack_remb_fci",
    ):
        if not hasattr(aiortc.rtp, name):
            raise _fail(f"aiortc.rtp.{name} is missing")
    if not hasattr(aiortc.rtcrtpreceiver, "decoder_worker"):
        raise _fail("aiortc.rtcrtpreceiver.decoder_worker is missing")


def datagrams_received(transport: RTCDtlsTransport) -> int:
    """Every datagram the transport took in (RTP, RTCP, SCTP, DTLS): a cheap sign of life."""
    for stats in transport._get_stats().values():
        received = getattr(stats, "packetsReceived", None)
        if isinstance(received, int):
            return received
    return 0


def require_instance_attrs(obj: Any, names: Iterable[str]) -> None:
    missing = [name for name in names if not hasattr(obj, name)]
    if missing:
        raise _fail(f"{type(obj).__name__} instances lack {', '.join(missing)}")


check_static()
