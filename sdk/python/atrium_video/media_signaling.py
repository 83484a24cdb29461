"""Media signaling extensions (MSP): dominant speaker and network quality, as twilio-video.js.

The client asks for extensions in ``connect.media_signaling`` (``{name: {"transports": [{"type":
"data-channel"}]}}``). The server grants some in ``connected.media_signaling`` (``{name:
{"transport": {"type": "data-channel", "label": L}}}``) and opens a data channel labelled ``L`` on
the client's peer connection. That channel is the extension's transport, not a remote data track:
the client says ``{"type": "ready"}`` on it, and both sides exchange JSON text messages.

* ``active_speaker``: the server sends ``{"type": "active_speaker", "participant": "PA..."}``
  whenever the dominant speaker changes.
* ``network_quality``: the client sends ``{"type": "network_quality", "reportLevel": L,
  "remoteReportLevel": R, ...its own statistics...}``; the server answers with ``{"type":
  "network_quality", "local": level or {"level", "audio", "video"}, "remotes": [{"sid", "level",
  ...}]}``. The client asks again 1 s after each answer; without an answer within 5 s it asks
  again, waiting 1.5 times longer each time (twilio-video.js's NetworkQualitySignaling).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiortc import RTCDataChannel, RTCPeerConnection

from atrium_video.network_quality import level_of

log = logging.getLogger("atrium_video.msp")

ACTIVE_SPEAKER = "active_speaker"
NETWORK_QUALITY = "network_quality"

# twilio-video.js's NETWORK_QUALITY_RESPONSE_TIME_MS, its resend backoff, and the pause between an
# answer and the next request.
RESPONSE_TIMEOUT_SECONDS = 5.0
RESPONSE_BACKOFF = 1.5
REQUEST_INTERVAL_SECONDS = 1.0

MessageHandler = Callable[[dict[str, Any]], None]


def media_signaling_request(names: list[str]) -> dict[str, Any]:
    """The ``media_signaling`` field of ``connect`` for extensions ``names``."""
    return {name: {"transports": [{"type": "data-channel"}]} for name in names}


def granted_label(granted: Any, name: str) -> str | None:
    """The data-channel label the server gave extension ``name`` in ``media_signaling``."""
    entry = granted.get(name) if isinstance(granted, Mapping) else None
    transport = entry.get("transport") if isinstance(entry, Mapping) else None
    if isinstance(transport, Mapping) and transport.get("type") == "data-channel":
        label = transport.get("label")
        if isinstance(label, str) and label:
            return label
    return None


class MspTransport:
    """One extension's data channel (twilio-video.js's DataTransport): JSON messages both ways.

    ``{"type": "ready"}`` is published at once; messages published before the channel is open
    are queued and sent, in order, when it opens.
    """

    def __init__(self, channel: RTCDataChannel, on_message: MessageHandler) -> None:
        self.channel = channel
        self._on_message = on_message
        self._queue: list[dict[str, Any]] = []
        channel.on("open", self._flush)
        channel.on("message", self._receive)
        self.publish({"type": "ready"})

    @property
    def is_closed(self) -> bool:
        return self.channel.readyState in ("closing", "closed")

    def publish(self, message: dict[str, Any]) -> bool:
        """Send (or queue until open) one message; False once the channel is closing or closed."""
        state = self.channel.readyState
        if state in ("closing", "closed"):
            return False
        if state == "connecting":
            self._queue.append(message)
            return True
        self._send(message)
        return True

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.channel.send(json.dumps(message, separators=(",", ":")))
        except Exception as exc:  # a channel closing under us: as twilio-video.js, drop it
            log.debug("MSP send on %s failed: %s", self.channel.label, exc)

    def _flush(self) -> None:
        queued, self._queue = self._queue, []
        for message in queued:
            self._send(message)

    def _receive(self, data: str | bytes) -> None:
        try:
            message = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return  # as twilio-video.js: an unreadable message is ignored
        if isinstance(message, dict):
            self._on_message(message)

    def detach(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.remove_listener("open", self._flush)
        with contextlib.suppress(Exception):
            self.channel.remove_listener("message", self._receive)


class MediaSignaling:
    """One extension on the client: set up with the label the server granted, bound to the
    server-opened channel of that label, torn down when the channel closes."""

    name = ""

    def __init__(self) -> None:
        self.label: str | None = None  # set once the server granted the extension
        self.transport: MspTransport | None = None

    @property
    def is_setup(self) -> bool:
        return self.label is not None

    def bind(self, channel: RTCDataChannel) -> None:
        """Take ``channel`` as this extension's transport (replacing any earlier one)."""
        self.teardown()
        self.transport = MspTransport(channel, self._message)
        channel.on("close", lambda: self._closed(channel))
        self._ready()

    def _closed(self, channel: RTCDataChannel) -> None:
        if self.transport is not None and self.transport.channel is channel:
            self.teardown()

    def teardown(self) -> None:
        if self.transport is not None:
            self.transport.detach()
            self.transport = None
        self._stopped()

    def _ready(self) -> None:
        """The transport is bound (subclasses start their work)."""

    def _stopped(self) -> None:
        """The transport went away (subclasses stop their work)."""

    def _message(self, message: dict[str, Any]) -> None:
        raise NotImplementedError


class DominantSpeakerSignaling(MediaSignaling):
    """``active_speaker``: ``on_change(sid)`` whenever the loudest participant's SID changes."""

    name = ACTIVE_SPEAKER

    def __init__(self, on_change: Callable[[str | None], None]) -> None:
        super().__init__()
        self.loudest_participant_sid: str | None = None
        self._on_change = on_change

    def _message(self, message: dict[str, Any]) -> None:
        if message.get("type") != "active_speaker":
            return
        sid = message.get("participant")
        loudest = sid if isinstance(sid, str) and sid else None
        if loudest == self.loudest_participant_sid:
            return
        self.loudest_participant_sid = loudest
        self._on_change(loudest)


class NetworkQualitySignaling(MediaSignaling):
    """``network_quality``: periodic requests with this client's statistics; the answers give
    ``level`` / ``levels`` (this client) and ``remote_levels`` (by participant SID).

    ``on_update()`` is called when an answer changed this client's level or any remote level.
    """

    name = NETWORK_QUALITY

    def __init__(
        self, pc: RTCPeerConnection, verbosity: tuple[int, int], on_update: Callable[[], None]
    ) -> None:
        super().__init__()
        self.local_verbosity, self.remote_verbosity = verbosity
        self.level: int | None = None
        self.levels: dict[str, Any] | None = None  # the last ``local`` object (verbosity >= 2)
        self.remote_levels: dict[str, dict[str, Any]] = {}
        self.requests_sent = 0
        self.answers_received = 0
        self._pc = pc
        self._inputs = PeerConnectionSummary(pc)
        self._on_update = on_update
        self._answered = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    def use(self, pc: RTCPeerConnection) -> None:
        """Measure ``pc`` from now on (the room replaced its peer connection)."""
        self._pc = pc
        self._inputs = PeerConnectionSummary(pc)

    def _ready(self) -> None:
        if self._loop is None or self._loop.done():
            self._loop = asyncio.ensure_future(self._run())

    def _stopped(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop is not asyncio.current_task():
            loop.cancel()

    async def close(self) -> None:
        """Stop requesting (the room is leaving)."""
        loop, self._loop = self._loop, None
        self.teardown()
        if loop is not None and loop is not asyncio.current_task():
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop

    async def _run(self) -> None:
        wait = RESPONSE_TIMEOUT_SECONDS
        while True:
            transport = self.transport
            if transport is None or transport.is_closed:
                return
            try:
                inputs = await self._inputs.next()
            except Exception:  # statistics are optional: never let them stop the requests
                log.debug("network quality inputs failed", exc_info=True)
                inputs = {}
            self._answered.clear()
            message = {
                "type": "network_quality",
                **inputs,
                "reportLevel": self.local_verbosity,
                "remoteReportLevel": self.remote_verbosity,
            }
            if not transport.publish(message):
                return
            self.requests_sent += 1
            try:
                await asyncio.wait_for(self._answered.wait(), wait)
            except TimeoutError:
                wait *= RESPONSE_BACKOFF  # no answer: ask again, and wait longer next time
                continue
            wait = RESPONSE_TIMEOUT_SECONDS
            await asyncio.sleep(REQUEST_INTERVAL_SECONDS)

    def _message(self, message: dict[str, Any]) -> None:
        if message.get("type") != "network_quality":
            return
        self.answers_received += 1
        updated = False
        level: int | None = None
        local = message.get("local")
        if isinstance(local, int | float) and not isinstance(local, bool):
            level = int(local)
            self.levels = None
        elif isinstance(local, dict):
            self.levels = local
            level = level_of(local)
        if level is not None and level != self.level:
            self.level = level
            updated = True
        remotes = message.get("remotes")
        if isinstance(remotes, list):
            fresh: dict[str, dict[str, Any]] = {}
            for entry in remotes:
                if not isinstance(entry, dict) or not isinstance(entry.get("sid"), str):
                    continue
                if (self.remote_levels.get(entry["sid"]) or {}).get("level") != entry.get("level"):
                    updated = True
                fresh[entry["sid"]] = entry
            self.remote_levels = fresh
        if updated:
            self._on_update()
        self._answered.set()


class PeerConnectionSummary:
    """This client's view of its connection since the previous call, in the shape of
    twilio-video.js's ``PeerConnectionSummary`` (the inputs of a network quality request).

    From aiortc's statistics: ``ice.send`` / ``ice.recv`` (bits per second on the transport),
    ``ice.rtt`` (seconds, from RTCP receiver reports), ``send.bitrate`` (RTP payload sent),
    ``recv.fractionLost`` / ``recv.jitter`` (seconds), overall and per media kind. A figure that
    cannot be computed yet is left out.
    """

    CLOCK_RATES = {"audio": 48000.0, "video": 90000.0}

    def __init__(self, pc: RTCPeerConnection) -> None:
        self._pc = pc
        self._previous: dict[str, Any] = {}
        self._taken: float | None = None

    async def next(self) -> dict[str, Any]:
        reports = []
        for sender in self._pc.getSenders():
            if sender.transport is None:
                continue
            with contextlib.suppress(Exception):
                reports.append(await sender.getStats())
        for receiver in self._pc.getReceivers():
            if receiver.transport is None:
                continue
            with contextlib.suppress(Exception):
                reports.append(await receiver.getStats())
        stats: dict[str, Any] = {}
        for report in reports:
            stats.update(report)
        now = time.monotonic()
        seconds = now - self._taken if self._taken is not None else 0.0
        previous, self._previous, self._taken = self._previous, stats, now

        def delta(entry: Any, attribute: str) -> float:
            before = previous.get(entry.id)
            value = float(getattr(entry, attribute, 0) or 0)
            return value - float(getattr(before, attribute, 0) or 0) if before else 0.0

        def rate(octets: float) -> float | None:
            return octets * 8 / seconds if seconds > 0 else None

        sent: dict[str, float] = {"audio": 0.0, "video": 0.0}
        got: dict[str, float] = {"audio": 0.0, "video": 0.0}
        lost: dict[str, float] = {"audio": 0.0, "video": 0.0}
        jitter: dict[str, float | None] = {"audio": None, "video": None}
        rtts: list[float] = []
        ice_sent = ice_received = 0.0
        for entry in stats.values():
            kind = getattr(entry, "kind", None)
            if entry.type == "transport":
                ice_sent += delta(entry, "bytesSent")
                ice_received += delta(entry, "bytesReceived")
            elif kind not in sent:
                continue
            elif entry.type == "outbound-rtp":
                sent[kind] += delta(entry, "bytesSent")
            elif entry.type == "inbound-rtp":
                got[kind] += max(delta(entry, "packetsReceived"), 0.0)
                lost[kind] += max(delta(entry, "packetsLost"), 0.0)
                seconds_jitter = float(entry.jitter or 0) / self.CLOCK_RATES[kind]
                jitter[kind] = max(jitter[kind] or 0.0, seconds_jitter)
            elif entry.type == "remote-inbound-rtp" and entry.roundTripTime is not None:
                rtts.append(float(entry.roundTripTime))

        def send_summary(kinds: tuple[str, ...]) -> dict[str, Any]:
            bitrate = rate(sum(sent[k] for k in kinds))
            return {} if bitrate is None else {"bitrate": bitrate}

        def recv_summary(kinds: tuple[str, ...]) -> dict[str, Any]:
            summary: dict[str, Any] = {}
            expected = sum(got[k] + lost[k] for k in kinds)
            if seconds > 0 and expected > 0:
                summary["fractionLost"] = sum(lost[k] for k in kinds) / expected
            known = [j for k in kinds if (j := jitter[k]) is not None]
            if known:
                summary["jitter"] = max(known)
            return summary

        ice: dict[str, Any] = {}
        if seconds > 0:
            ice["send"] = rate(ice_sent)
            ice["recv"] = rate(ice_received)
        if rtts:
            ice["rtt"] = sorted(rtts)[len(rtts) // 2]
        both = ("audio", "video")
        return {
            "ice": ice,
            "send": send_summary(both),
            "recv": recv_summary(both),
            "audio": {"send": send_summary(("audio",)), "recv": recv_summary(("audio",))},
            "video": {"send": send_summary(("video",)), "recv": recv_summary(("video",))},
        }
