"""Media signaling extensions (MSP): dominant speaker, network quality, track priority, track
switch-off and render hints, as twilio-video.js.

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
* ``track_priority`` (asked for with a bandwidth profile): the client sends ``{"type":
  "track_priority", "track": "MT...", "subscribe": "high"}`` (``null`` clears it) for each change,
  and every priority again whenever the channel is (re)bound.
* ``track_switch_off`` (with a bandwidth profile): the server sends ``{"type": "track_switch_off",
  "off": [sids], "on": [sids]}`` (either list may be missing) when it stops or resumes
  forwarding tracks to this client.
* ``render_hints`` (with a bandwidth profile, unless switch-off control and content preferences
  are both disabled): the client sends ``{"type": "render_hints", "subscriber": {"id": N,
  "hints": [{"track": "MT...", "enabled": false, "render_dimensions": {"height": h, "width":
  w}}]}}``, each hint with only what changed since it was last sent; then nothing more until
  the server answers that id (``{"type": "render_hints", "subscriber": {"id": N, "hints":
  [{"track", "result": "OK"}]}}``), or 2 s pass: then it sends every hint again and waits
  twice as long (twilio-video.js's RenderHintsSignaling). A rebound channel gets every hint.

twilio-video.js sends ``client_reset`` itself only on ``publisher_hints`` (a publisher replaced
a track's source), which this SDK does not ask for (it publishes one layer). Should a server send
``{"type": "client_reset"}`` on ``track_priority`` or ``render_hints``, the SDK takes it as "my
state is lost" and sends all its priorities or hints again.
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
TRACK_PRIORITY = "track_priority"
TRACK_SWITCH_OFF = "track_switch_off"
RENDER_HINTS = "render_hints"

# twilio-video.js's NETWORK_QUALITY_RESPONSE_TIME_MS, its resend backoff, and the pause between an
# answer and the next request.
RESPONSE_TIMEOUT_SECONDS = 5.0
RESPONSE_BACKOFF = 1.5
REQUEST_INTERVAL_SECONDS = 1.0
# twilio-video.js's RENDER_HINT_RESPONSE_TIME_MS: without an answer, every hint is sent again and
# the wait doubles.
RENDER_HINT_RESPONSE_SECONDS = 2.0

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


class TrackPrioritySignaling(MediaSignaling):
    """``track_priority``: the subscribe priority of each remote track this client set.

    A change is sent at once when the channel is bound, else kept; every priority set is sent
    again each time a channel is bound (the first time, and after a media worker failover)."""

    name = TRACK_PRIORITY

    def __init__(self) -> None:
        super().__init__()
        self.priorities: dict[str, str | None] = {}

    def set_priority(self, track_sid: str, priority: str | None) -> None:
        """Ask for ``priority`` (None: clear it, so the publish priority applies)."""
        self.priorities[track_sid] = priority
        self._publish(track_sid, priority)

    def forget(self, track_sid: str) -> None:
        """The track went away here: clear a priority the server still holds for it, so a
        later subscription starts from the publish priority, as its new track does."""
        if self.priorities.pop(track_sid, None) is not None:
            self._publish(track_sid, None)

    def _publish(self, track_sid: str, priority: str | None) -> None:
        if self.transport is not None:
            self.transport.publish(
                {"type": "track_priority", "track": track_sid, "subscribe": priority}
            )

    def _ready(self) -> None:
        for track_sid, priority in self.priorities.items():
            self._publish(track_sid, priority)

    def _message(self, message: dict[str, Any]) -> None:
        if message.get("type") == "client_reset":
            self._ready()


class TrackSwitchOffSignaling(MediaSignaling):
    """``track_switch_off``: ``on_update(off, on)`` with the track SIDs of each server message
    (a SID in both lists counts as off, as in twilio-video.js)."""

    name = TRACK_SWITCH_OFF

    def __init__(self, on_update: Callable[[list[str], list[str]], None]) -> None:
        super().__init__()
        self._on_update = on_update

    def _message(self, message: dict[str, Any]) -> None:
        if message.get("type") != "track_switch_off":
            return
        off = _sids(message.get("off"))
        on = [sid for sid in _sids(message.get("on")) if sid not in off]
        if off or on:
            self._on_update(off, on)


def _sids(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(sid for sid in value if isinstance(sid, str) and sid))


class _HintState:
    __slots__ = ("enabled", "enabled_dirty", "render_dimensions", "render_dimensions_dirty")

    def __init__(self) -> None:
        self.enabled: bool | None = None
        self.enabled_dirty = False
        self.render_dimensions: dict[str, float] | None = None
        self.render_dimensions_dirty = False


class RenderHintsSignaling(MediaSignaling):
    """``render_hints``: whether each remote video track should be on, and its render size.

    Each message carries, per track, only what changed since it was last sent. One message is
    in flight at a time: the next goes once the server answers its id, with whatever changed
    meanwhile. Without an answer within :data:`RENDER_HINT_RESPONSE_SECONDS` every hint is sent
    again and the wait doubles; an answer brings the wait back. ``results`` holds the server's
    last result per track (``"OK"``, or an error it names).
    """

    name = RENDER_HINTS

    def __init__(self, response_seconds: float = RENDER_HINT_RESPONSE_SECONDS) -> None:
        super().__init__()
        self.results: dict[str, str] = {}
        self.messages_sent = 0
        self._response_seconds = response_seconds
        self._wait = response_seconds
        self._hints: dict[str, _HintState] = {}
        self._next_id = 1
        self._in_flight: int | None = None
        self._timer: asyncio.TimerHandle | None = None

    def set_hint(
        self,
        track_sid: str,
        *,
        enabled: bool | None = None,
        render_dimensions: tuple[float, float] | None = None,
    ) -> None:
        """Change ``track_sid``'s hint (a None field stays as it is) and send what changed."""
        state = self._hints.setdefault(track_sid, _HintState())
        if enabled is not None and state.enabled != enabled:
            state.enabled = enabled
            state.enabled_dirty = True
        if render_dimensions is not None:
            width, height = render_dimensions
            size = {"height": height, "width": width}
            if state.render_dimensions != size:
                state.render_dimensions = size
                state.render_dimensions_dirty = True
        self._send()

    def clear_hint(self, track_sid: str) -> None:
        """Forget ``track_sid`` (it was unsubscribed)."""
        self._hints.pop(track_sid, None)
        self.results.pop(track_sid, None)

    def hint(self, track_sid: str) -> tuple[bool | None, dict[str, float] | None]:
        """The last ``enabled`` and ``render_dimensions`` set for a track (None: never set)."""
        state = self._hints.get(track_sid)
        return (None, None) if state is None else (state.enabled, state.render_dimensions)

    def _ready(self) -> None:
        # A new channel (the first, or a failed-over worker's) knows nothing: send everything.
        self._cancel_timer()
        self._in_flight = None
        self._wait = self._response_seconds
        self._send_all()

    def _stopped(self) -> None:
        self._cancel_timer()
        self._in_flight = None

    def _send_all(self) -> None:
        for state in self._hints.values():
            state.enabled_dirty = state.enabled is not None
            state.render_dimensions_dirty = state.render_dimensions is not None
        self._send()

    def _send(self) -> None:
        transport = self.transport
        if transport is None or self._in_flight is not None:
            return
        hints: list[dict[str, Any]] = []
        for track_sid, state in self._hints.items():
            if not (state.enabled_dirty or state.render_dimensions_dirty):
                continue
            hint: dict[str, Any] = {"track": track_sid}
            if state.enabled_dirty:
                hint["enabled"] = state.enabled
                state.enabled_dirty = False
            if state.render_dimensions_dirty:
                hint["render_dimensions"] = dict(state.render_dimensions or {})
                state.render_dimensions_dirty = False
            hints.append(hint)
        if not hints:
            return
        message_id, self._next_id = self._next_id, self._next_id + 1
        message = {"type": "render_hints", "subscriber": {"id": message_id, "hints": hints}}
        if not transport.publish(message):
            return
        self.messages_sent += 1
        self._in_flight = message_id
        self._timer = asyncio.get_running_loop().call_later(self._wait, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        self._in_flight = None
        log.debug("no answer to render hints within %.1f s: sending them all again", self._wait)
        self._wait *= 2
        self._send_all()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "client_reset":
            self._ready()
            return
        if kind != "render_hints":
            return
        subscriber = message.get("subscriber")
        if not isinstance(subscriber, dict):
            return
        answered = subscriber.get("id")
        if answered is not None and answered != self._in_flight:
            log.debug(
                "ignoring the answer to render hints %r (waiting for %r)", answered, self._in_flight
            )
            return
        for result in subscriber.get("hints") or []:
            if isinstance(result, dict) and isinstance(result.get("track"), str):
                outcome = str(result.get("result"))
                self.results[result["track"]] = outcome
                if outcome != "OK":
                    log.info("the server refused the render hint %s: %s", result["track"], outcome)
        self._cancel_timer()
        self._in_flight = None
        self._wait = self._response_seconds
        self._send()


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
