"""A session's media signaling (MSP) extensions: which the client asked for, and their channels.

twilio-video.js asks for an extension in ``connect.media_signaling`` (``{name: {transports:
[{type: "data-channel"}]}}``). The worker grants the ones it implements in ``connected``
(``{name: {transport: {type: "data-channel", label}}}``) and opens a data channel with that label
on the participant's peer connection; the client looks the channel up by label, says
``{"type": "ready"}`` on it, and from then on both sides exchange JSON messages. An extension the
worker does not grant stays inert on the client, which is why asking for one never fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from atrium_media.extensions.msp import (
    ClientMessage,
    MspError,
    MspMessage,
    MspReady,
    parse_client_message,
)
from atrium_media.extensions.track_msp import TrackClientMessage, parse_track_client_message

log = logging.getLogger("atrium.media.msp")

ACTIVE_SPEAKER = "active_speaker"
NETWORK_QUALITY = "network_quality"
PUBLISHER_HINTS = "publisher_hints"
RENDER_HINTS = "render_hints"
TRACK_PRIORITY = "track_priority"
TRACK_SWITCH_OFF = "track_switch_off"
# What this worker implements. Granting publisher_hints is what keeps twilio-video's adaptive
# simulcast (preferredVideoCodecs 'auto') sending its layers: without it the client falls back
# to one.
IMPLEMENTED = (
    ACTIVE_SPEAKER,
    NETWORK_QUALITY,
    PUBLISHER_HINTS,
    RENDER_HINTS,
    TRACK_PRIORITY,
    TRACK_SWITCH_OFF,
)
# The extensions whose messages are those of atrium_media.extensions.track_msp.
_TRACK_EXTENSIONS = frozenset({PUBLISHER_HINTS, RENDER_HINTS, TRACK_PRIORITY, TRACK_SWITCH_OFF})

MessageHandler = Callable[[str, ClientMessage | TrackClientMessage], None]


def requested_extensions(connect_body: dict[str, Any]) -> list[str]:
    """The extensions a ``connect`` asks for over a data channel, in our order."""
    asked = connect_body.get("media_signaling")
    if not isinstance(asked, dict):
        return []
    wanted: list[str] = []
    for name in IMPLEMENTED:
        entry = asked.get(name)
        transports = entry.get("transports") if isinstance(entry, dict) else None
        if isinstance(transports, list) and any(
            isinstance(t, dict) and t.get("type") == "data-channel" for t in transports
        ):
            wanted.append(name)
    return wanted


class MediaSignaling:
    """The granted extensions of one session and the worker-opened channel of each."""

    def __init__(self, granted: Iterable[str], on_message: MessageHandler) -> None:
        self.granted: tuple[str, ...] = tuple(granted)
        self._on_message = on_message
        self._channels: dict[str, RTCDataChannel] = {}
        # Channels whose client said `ready`: what is sent before that is lost on the client.
        self._ready: set[str] = set()
        self.on_ready: Callable[[str], None] = lambda name: None

    def grants(self, name: str) -> bool:
        return name in self.granted

    def advertisement(self) -> dict[str, Any]:
        """The ``media_signaling`` field of ``connected``."""
        return {
            name: {"transport": {"type": "data-channel", "label": name}} for name in self.granted
        }

    @property
    def opened(self) -> bool:
        return bool(self._channels)

    def open(self, pc: RTCPeerConnection) -> bool:
        """Open a channel per granted extension (once); True if any was opened now, in which
        case the peer connection must be renegotiated."""
        fresh = False
        for name in self.granted:
            if name in self._channels:
                continue
            channel = pc.createDataChannel(name, ordered=True)
            channel.on("message", lambda data, name=name: self._receive(name, data))
            channel.on("close", lambda name=name: self._ready.discard(name))
            self._channels[name] = channel
            fresh = True
        return fresh

    def is_ready(self, name: str) -> bool:
        channel = self._channels.get(name)
        return name in self._ready and channel is not None and channel.readyState == "open"

    def send(self, name: str, message: MspMessage) -> bool:
        """Send one message on ``name``'s channel once the client is listening; else False."""
        channel = self._channels.get(name)
        if channel is None or channel.readyState != "open" or name not in self._ready:
            return False
        channel.send(message.to_json())
        return True

    def _receive(self, name: str, data: str | bytes) -> None:
        parse = parse_track_client_message if name in _TRACK_EXTENSIONS else parse_client_message
        try:
            message = parse(data)
        except MspError as exc:
            log.debug("ignoring an unreadable %s message: %s", name, exc)
            return
        if isinstance(message, MspReady):
            self._ready.add(name)
            self.on_ready(name)
            return
        self._on_message(name, message)

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self._ready.clear()
