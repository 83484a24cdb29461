"""Simulcast through the real stack (issue 13): worker CPU per forwarded leg with a 3-layer
publisher, layer switch latency, and what a switched-off track still costs the subscriber.

The only client that really encodes VP8 simulcast is twilio-video.js in Chromium with adaptive
simulcast (``preferredVideoCodecs: 'auto'``, granted ``publisher_hints``): a 1280x720 camera
gives three layers, 320x180, 640x360 and 1280x720 (aiortc, hence the Python SDK, encodes one).
Every figure sits beside a baseline measured in the same run:

* **CPU.** One Chromium page publishes Chrome's fake camera at 1280x720 with the reference app's
  options; Python SDK participants (no bandwidth profile: they get the largest layer that
  arrives) receive it, their frames dropped before the decoder (counted, sized from the key
  frames' headers) so the bench process stays light. Once the first subscriber receives the
  camera's full size (and a simulcast publisher sends 3 layers), or ``layer_wait`` ran out, the
  media worker's CPU (``/proc/<pid>/stat`` utime + stime: every thread of the service process)
  is read over ``seconds``; then ``subscribers - 1`` more join and it is read again. Figures:
  CPU / forwarded video legs, and (CPU at N - CPU at 1) / (N - 1) per extra leg. Baseline: the
  same with ``preferredVideoCodecs: [{codec: 'VP8'}]`` (one layer), measured after the
  simulcast room closed, with the warm-up the simulcast publisher needed.
* **Layer switch.** A Chromium subscriber with ``contentPreferencesMode: 'manual'`` alternates
  ``setContentPreferences({renderDimensions})`` between 320x180 and 1280x720 on the simulcast
  publisher's track (one SDK subscriber stays, so the publisher keeps encoding every layer);
  each sample runs from the call to the first decoded frame of another width in the page (the
  earliest of ``requestVideoFrameCallback``'s metadata and a 5 ms poll of ``videoWidth``): the
  render hint, the worker's allocation, its PLI for the target layer, that key frame, decode.
  Baseline: ``switchOff()`` then ``switchOn()`` (``clientTrackSwitchOffControl: 'manual'``), from
  the ``switchOn()`` call to the first new decoded frame (the same hint -> allocation -> PLI ->
  key frame path, without a change of layer).
* **Switched off.** The same subscriber's video ``bytesReceived`` (twilio-video getStats) per
  second while the track is switched off, beside its rate while on (at the large size).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.report import MediaFigure
from bench.stats import Distribution, distribution

CAMERA = {"width": 1280, "height": 720, "frameRate": 30}
SMALL = {"width": 320, "height": 180}
LARGE = {"width": 1280, "height": 720}
MODES = {"simulcast": "auto", "single": [{"codec": "VP8"}]}
PUBLISHER = "bench-sim-pub"
_VP8_START_CODE = b"\x9d\x01\x2a"
SIMULCAST_NOTE = (
    "simulcast: twilio-video.js 2.36.0 in headless Chromium publishes the fake camera at "
    "1280x720 with the reference app's options, preferredVideoCodecs 'auto' (adaptive "
    "simulcast, 3 layers) or, as the baseline, [{codec: 'VP8'}] (1 layer), each in its own "
    "room; Python SDK subscribers (no bandwidth profile: the largest layer) drop frames before "
    "the decoder; CPU = the media worker service process's /proc utime+stime over the window. "
    "Layer switch: a Chromium subscriber with contentPreferencesMode 'manual' alternates "
    "setContentPreferences() between 320x180 and 1280x720 (one SDK subscriber stays, so every "
    "layer is encoded); baseline = switchOff() then switchOn() -> first decoded frame. "
    "Switched off: that page's getStats video bytesReceived per second."
)


@dataclass(frozen=True)
class SimulcastConfig:
    subscribers: int = 4  # Python SDK subscribers of the CPU measurement
    seconds: float = 4.0  # CPU window (one with 1 subscriber, one with all)
    layer_wait: float = 25.0  # longest wait for the simulcast publisher's full size
    min_warmup: float = 8.0  # the single-layer publisher's warm-up: the simulcast's, at least this
    settle: float = 1.0  # after that, before the window
    switches: int = 10  # render-size changes (half up, half down)
    switch_ons: int = 5  # switchOff()/switchOn() cycles (the baseline)
    rate_seconds: float = 3.0  # bytes/s window, track on and switched off
    pause: float = 0.8  # between samples (beyond the worker's 0.3 s PLI interval)
    frame_timeout: float = 8.0  # per switch sample


# ------------------------------------------------------------------------------ pure helpers


def vp8_frame_size(frame: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(width, height) of a depacketized VP8 frame if it is a key frame, else None (RFC 6386
    §9.1: the frame tag's bit 0 is 0 on key frames, then the start code, then 14-bit sizes)."""
    if len(frame) < 10 or frame[0] & 0x01 or bytes(frame[3:6]) != _VP8_START_CODE:
        return None
    width = (frame[6] | (frame[7] << 8)) & 0x3FFF
    height = (frame[8] | (frame[9] << 8)) & 0x3FFF
    return width, height


def proc_cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """utime + stime (every thread) from the text of ``/proc/<pid>/stat``, in seconds."""
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; utime and stime are
    # fields 14 and 15, i.e. the 12th and 13th after the comm's closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / ticks_per_second


def machine_busy(before: Sequence[int], after: Sequence[int]) -> float | None:
    """Share (0..1) of every core that was busy between two samples of ``/proc/stat``'s first
    line (user nice system idle iowait irq softirq steal ...); None if no time passed."""
    total = sum(after) - sum(before)
    idle = (after[3] + after[4]) - (before[3] + before[4])
    if total <= 0:
        return None
    return (total - idle) / total


def parse_proc_stat_cpu(text: str) -> list[int]:
    """The aggregate ``cpu`` line of ``/proc/stat`` as integers."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            return [int(value) for value in line.split()[1:]]
    raise ValueError("no aggregate cpu line in /proc/stat")


@dataclass(frozen=True)
class Layer:
    """One encoding a publisher sent over a sample window."""

    width: int
    height: int
    kbps: float


def sending_layers(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]], seconds: float
) -> list[Layer]:
    """The publisher's encodings whose bytes grew between two getStats samples
    (``{ssrc, bytes, width, height}`` each), smallest first."""
    if seconds <= 0:
        raise ValueError("the window must be positive")
    sent = {entry["ssrc"]: entry["bytes"] for entry in before}
    layers = [
        Layer(
            int(entry["width"]),
            int(entry["height"]),
            round(8 * (entry["bytes"] - sent[entry["ssrc"]]) / 1000 / seconds, 1),
        )
        for entry in after
        if entry["ssrc"] in sent and entry["bytes"] > sent[entry["ssrc"]]
    ]
    return sorted(layers, key=lambda layer: (layer.width * layer.height, layer.kbps))


def describe_layers(layers: Sequence[Layer]) -> str:
    """``320x180 110k + 1280x720 1,900k`` (kbit/s), or ``none``."""
    if not layers:
        return "none"
    return " + ".join(f"{la.width}x{la.height} {la.kbps:,.0f}k" for la in layers)


def describe_publisher_state(state: Mapping[str, Any] | None) -> str:
    """`` (Chrome estimate 1,450k, limited by bandwidth)`` from PUBLISHER_STATE_JS's answer,
    or an empty string when it says nothing."""
    if not state or "error" in state:
        return ""
    parts = []
    if state.get("estimate"):
        parts.append(f"Chrome estimate {state['estimate'] / 1000:,.0f}k")
    limits = sorted(
        {str(s["limitedBy"]) for s in state.get("streams", []) if s.get("limitedBy")} - {"none"}
    )
    if limits:
        parts.append("limited by " + "/".join(limits))
    return f" ({', '.join(parts)})" if parts else ""


# ------------------------------------------------------------------------------ results


@dataclass
class CpuSample:
    """Worker CPU while one publisher's video goes to N subscribers (one video leg each)."""

    mode: str  # "simulcast" or "single"
    subscribers: int
    legs: int
    seconds: float
    cpu_percent: float  # the media worker process, % of one core, N subscribers
    cpu_percent_per_leg: float  # cpu_percent / legs
    cpu_percent_per_extra_leg: float | None  # (cpu_percent - one's) / (legs - 1)
    kbps_per_leg: float  # VP8 frame bytes the subscribers received, mean per subscriber
    fps_per_leg: float
    received_sizes: list[str]  # what the subscribers decode (from key frame headers)
    publisher_layers: list[Layer]
    reached_full_size: bool  # the first subscriber got the camera's size before the windows
    waited_s: float
    machine_busy_percent: float | None  # every core of the machine, 100 = all busy
    one: dict[str, Any] = field(default_factory=dict)  # the same window with one subscriber
    publisher_state: dict[str, Any] | None = None  # encodings, limits, Chrome's estimate
    sizes_matched: bool = True  # every subscriber got the size the first one had alone

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SimulcastResult:
    cpu: dict[str, CpuSample] = field(default_factory=dict)
    switch: Distribution = field(default_factory=lambda: distribution([]))
    switch_up: Distribution = field(default_factory=lambda: distribution([]))
    switch_down: Distribution = field(default_factory=lambda: distribution([]))
    switch_on: Distribution = field(default_factory=lambda: distribution([]))  # baseline
    # When the last packet of that first frame arrived (rVFC receiveTime), from the same call.
    switch_arrival: Distribution = field(default_factory=lambda: distribution([]))
    switch_on_arrival: Distribution = field(default_factory=lambda: distribution([]))
    switch_failures: int = 0
    switch_on_failures: int = 0
    widths: list[int] = field(default_factory=list)  # the widths the switches went between
    off_bytes_per_s: float | None = None
    on_bytes_per_s: float | None = None
    on_width: int | None = None
    switch_on_after_rate_ms: float | None = None  # switchOn() after the longer off window
    rate_off_seconds: float | None = None  # how long that window kept the track off
    unavailable: str | None = None  # why nothing could be measured
    cpu_unavailable: str | None = None
    switch_unavailable: str | None = None
    errors: list[str] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float | None = None  # the whole phase, browser start to cleanup

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.unavailable or "ok",
            "elapsed_s": self.elapsed_s,
            "cpu": {mode: sample.as_dict() for mode, sample in self.cpu.items()},
            "cpu_status": self.cpu_unavailable or self.unavailable or "ok",
            "switch": self.switch.as_dict(),
            "switch_up": self.switch_up.as_dict(),
            "switch_down": self.switch_down.as_dict(),
            "switch_on": self.switch_on.as_dict(),
            "switch_arrival": self.switch_arrival.as_dict(),
            "switch_on_arrival": self.switch_on_arrival.as_dict(),
            "switch_failures": self.switch_failures,
            "switch_on_failures": self.switch_on_failures,
            "switch_status": self.switch_unavailable or self.unavailable or "ok",
            "widths": self.widths,
            "off_bytes_per_s": self.off_bytes_per_s,
            "on_bytes_per_s": self.on_bytes_per_s,
            "on_width": self.on_width,
            "switch_on_after_rate_ms": self.switch_on_after_rate_ms,
            "rate_off_seconds": self.rate_off_seconds,
            "errors": self.errors,
            "samples": self.samples,
        }


def unavailable(reason: str) -> SimulcastResult:
    return SimulcastResult(unavailable=reason)


# ------------------------------------------------------------------------------ figures


def simulcast_figures(result: SimulcastResult, subscribers: int = 4) -> list[MediaFigure]:
    """The simulcast rows of the media table: Atrium = simulcast, baseline = same run's
    single-layer publisher (CPU), switchOn() (switch latency), the track on (bytes/s)."""
    figures: list[MediaFigure] = []
    sim, single = result.cpu.get("simulcast"), result.cpu.get("single")
    measured = sim or single
    n = measured.subscribers if measured is not None else subscribers
    cpu_missing = result.unavailable or result.cpu_unavailable
    phase = f"simulcast CPU: Chromium 1280x720 -> {n} SDK subs, 3 layers / 1 layer"

    def sample_missing(sample: CpuSample | None) -> str | None:
        return None if sample is not None else "n/a"

    def busy(sample: CpuSample | None) -> str:
        if sample is None or sample.machine_busy_percent is None:
            return "?"
        return f"{sample.machine_busy_percent:.0f}%"

    def sizes(sample: CpuSample | None) -> str:
        if sample is None:
            return "-"
        got = "/".join(sorted(set(sample.received_sizes))) or "nothing"
        if not sample.reached_full_size:
            got += f" (not yet when the {sample.waited_s:.0f} s warm-up ended)"
        if not sample.sizes_matched:
            alone = "/".join(sorted(set(sample.one.get("received_sizes", [])))) or "?"
            got += f" (the first alone: {alone})"
        return got

    def value(sample: CpuSample | None, name: str) -> float | None:
        got = None if sample is None else getattr(sample, name)
        return None if got is None else float(got)

    def fps(sample: CpuSample | None) -> str:
        return "-" if sample is None else f"{sample.fps_per_leg:.0f}"

    rows: tuple[tuple[str, str, str, str], ...] = (
        (
            "CPU/video leg (% core)",
            "cpu_percent_per_leg",
            "%",
            "media worker process CPU / forwarded video legs; baseline: preferredVideoCodecs "
            "[{codec: 'VP8'}], same run",
        ),
        (
            f"CPU/extra leg, 1 -> {n} subs",
            "cpu_percent_per_extra_leg",
            "%",
            "(CPU with N - CPU with 1) / (N - 1): without the publisher's ingest",
        ),
        (
            "CPU total (% core)",
            "cpu_percent",
            "%",
            f"machine busy {busy(sim)} / {busy(single)} of {os.cpu_count()} cores",
        ),
        (
            "received per leg",
            "kbps_per_leg",
            "kbit/s",
            f"subscribers get {sizes(sim)} / {sizes(single)} at {fps(sim)} / {fps(single)} fps",
        ),
    )
    for index, (metric, name, unit, note) in enumerate(rows):
        a, b = value(sim, name), value(single, name)
        if index == 0 and cpu_missing:  # the reason, where the notes wrap (never in a figure)
            note = f"n/a: {cpu_missing}; {note}"
        figures.append(
            MediaFigure(
                phase,
                metric,
                unit,
                a,
                b,
                note,
                sample_missing(sim) or (None if a is not None else "n/a"),
                sample_missing(single) or (None if b is not None else "n/a"),
            )
        )
    figures.append(
        MediaFigure(
            phase,
            "publisher sends",
            "kbit/s",
            sum(la.kbps for la in sim.publisher_layers) if sim else None,
            sum(la.kbps for la in single.publisher_layers) if single else None,
            f"{describe_layers(sim.publisher_layers) if sim else '-'}"
            f"{describe_publisher_state(sim.publisher_state) if sim else ''} / "
            f"{describe_layers(single.publisher_layers) if single else '-'}"
            f"{describe_publisher_state(single.publisher_state) if single else ''}",
            sample_missing(sim),
            sample_missing(single),
        )
    )

    switch_missing = result.unavailable or result.switch_unavailable
    missing = None if switch_missing is None else "n/a"
    phase = "simulcast layer switch (Chromium sub, manual render size)"
    widths = " <-> ".join(str(w) for w in sorted(set(result.widths))) or "?"
    ok = result.switch.count
    switch_note = (
        f"{ok} switches between {widths} wide"
        + (f", {result.switch_failures} timed out" if result.switch_failures else "")
        + "; setContentPreferences() -> 1st decoded frame of the new width"
    )
    if switch_missing:
        switch_note = f"n/a: {switch_missing}; {switch_note}"
    up_down = (
        f"up p50 {_ms(result.switch_up.p50_ms)}, down p50 {_ms(result.switch_down.p50_ms)}; "
        f"that frame's last packet arrived at p50 {_ms(result.switch_arrival.p50_ms)} "
        f"(baseline {_ms(result.switch_on_arrival.p50_ms)}); "
        f"baseline: switchOn() -> 1st decoded frame ({result.switch_on.count} cycles"
        + (f", {result.switch_on_failures} timed out" if result.switch_on_failures else "")
        + ")"
    )
    for metric, a, b, note in (
        ("to new layer p50", result.switch.p50_ms, result.switch_on.p50_ms, switch_note),
        ("to new layer p95", result.switch.p95_ms, result.switch_on.p95_ms, up_down),
    ):
        figures.append(
            MediaFigure(
                phase,
                metric,
                "ms",
                a,
                b,
                note,
                missing or (None if a is not None else "n/a"),
                missing or (None if b is not None else "n/a"),
            )
        )
    on = f" at {result.on_width} wide" if result.on_width else ""
    back = (
        f"; switchOn() after those {result.rate_off_seconds:.0f} s off -> 1st frame "
        f"{_ms(result.switch_on_after_rate_ms)}"
        if result.rate_off_seconds is not None
        else ""
    )
    figures.append(
        MediaFigure(
            "simulcast switch-off (Chromium sub, manual switch-off)",
            "video bytes/s received",
            "B/s",
            result.off_bytes_per_s,
            result.on_bytes_per_s,
            ("" if switch_missing is None else f"n/a: {switch_missing}; ")
            + "switched off (switchOff()) / the same track on"
            + on
            + "; getStats bytesReceived"
            + back,
            missing or (None if result.off_bytes_per_s is not None else "n/a"),
            missing or (None if result.on_bytes_per_s is not None else "n/a"),
        )
    )
    return figures


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


# ------------------------------------------------------------------------------ page scripts

PUBLISHER_STATS_JS = (
    "atrium.room.getStats().then(r => r.flatMap(s => s.localVideoTrackStats).map(v => ({"
    "ssrc: v.ssrc, bytes: v.bytesSent || 0, width: v.dimensions ? v.dimensions.width : 0,"
    " height: v.dimensions ? v.dimensions.height : 0})))"
)
# The publisher's RTCRtpSender as twilio-video set it up: its encodings (publisher_hints turn them
# on and off), each stream's outbound-rtp (size, why Chrome limits its quality) and Chrome's own
# send-side bandwidth estimate (availableOutgoingBitrate).
PUBLISHER_STATE_JS = r"""
(async () => {
  const pub = [...atrium.room.localParticipant.videoTracks.values()][0];
  const ts = pub && pub.track && pub.track._trackSender;
  // The peer connection sends a clone of the track's MediaTrackSender.
  const senders = ts ? [...ts._senders, ...[...ts._clones].flatMap((c) => [...c._senders])] : [];
  const sender = senders[0];
  if (!sender) return null;
  const out = {streams: [], estimate: null};
  out.encodings = sender.getParameters().encodings.map((e) => ({
    active: e.active, scale: e.scaleResolutionDownBy || null, maxBitrate: e.maxBitrate || null}));
  (await sender.getStats()).forEach((s) => {
    if (s.type === 'outbound-rtp') {
      out.streams.push({ssrc: s.ssrc, width: s.frameWidth || 0, height: s.frameHeight || 0,
        bytes: s.bytesSent || 0, limitedBy: s.qualityLimitationReason || null,
        target: s.targetBitrate || null, active: s.active === undefined ? null : s.active});
    }
    if (s.type === 'candidate-pair' && s.availableOutgoingBitrate) {
      out.estimate = Math.max(out.estimate || 0, s.availableOutgoingBitrate);
    }
  });
  return out;
})()
"""
VIDEO_BYTES_JS = (
    "atrium.room.getStats().then(r => r.flatMap(s => s.remoteVideoTrackStats)"
    ".reduce((sum, v) => sum + (v.bytesReceived || 0), 0))"
)


def _monitor_js(identity: str) -> str:
    """JS: the page's live VideoMonitor of ``identity``'s video (web/test/atrium.js)."""
    prefix = json.dumps(f"remote:{identity}:")
    return (
        "Object.values(atrium.monitors).find((m) => m.kind === 'video'"
        f" && m.key.startsWith({prefix}) && m.stopped === null)"
    )


# Both scripts time, from the call (t0), the first decoded frame that shows the change: the
# earliest of requestVideoFrameCallback (whose metadata also says when that frame's last packet
# arrived: receivedMs) and a 5 ms poll of the <video> element. When the poll sees it first, the
# callback gets 300 ms more to report the frame's arrival time.
_FRAME_WAIT_JS = r"""
  const m = %(monitor)s;
  if (!m) return {how: 'error', error: 'no monitored remote video'};
  const el = m.el, track = m.track;
  const before = el.videoWidth;
  const decoded = () => el.getVideoPlaybackQuality().totalVideoFrames;
  const framesBefore = decoded();
  return await new Promise((resolve) => {
    let out = null, poll = null, timer = null, grace = null;
    const t0 = performance.now();
    const end = () => {
      clearInterval(poll);
      clearTimeout(timer);
      clearTimeout(grace);
      resolve(Object.assign({from: before}, out || {how: 'timeout', ms: null}));
    };
    const seen = (how, width, height) => {
      if (out) return false;
      out = {how, ms: performance.now() - t0, width, height, receivedMs: null};
      return true;
    };
    const onFrame = (_now, meta) => {
      if (changed(meta.width)) {
        const first = seen('rvfc', meta.width, meta.height);
        if (meta.receiveTime) out.receivedMs = meta.receiveTime - t0;
        if (first || grace) end();
      } else {
        el.requestVideoFrameCallback(onFrame);
      }
    };
    if (el.requestVideoFrameCallback) el.requestVideoFrameCallback(onFrame);
    poll = setInterval(() => {
      if (!out && changed(el.videoWidth) && seen('poll', el.videoWidth, el.videoHeight)) {
        clearInterval(poll);
        grace = setTimeout(end, 300);
      }
    }, 5);
    timer = setTimeout(end, timeoutMs);
    %(action)s;
  });
"""

# setContentPreferences() -> the first decoded frame of another width.
SWITCH_JS = (
    "(async (dims, timeoutMs) => {\n"
    "  const changed = (width) => !!width && width !== before;\n"
    + _FRAME_WAIT_JS
    % {"monitor": "%(monitor)s", "action": "track.setContentPreferences({renderDimensions: dims})"}
    + "})(%(dims)s, %(timeout_ms)d)"
)

# switchOn() -> the first decoded frame after it (the track was switched off: none came).
SWITCH_ON_JS = (
    "(async (timeoutMs) => {\n"
    "  const changed = (_width) => decoded() > framesBefore;\n"
    + _FRAME_WAIT_JS % {"monitor": "%(monitor)s", "action": "track.switchOn()"}
    + "})(%(timeout_ms)d)"
)


# ------------------------------------------------------------------------------ measurement


def _read(path: str) -> str:
    return Path(path).read_text()


class WorkerCpu:
    """CPU seconds of one process (every thread) and of the whole machine, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def sample(self) -> tuple[float, float, list[int]]:
        """(monotonic time, process CPU seconds, /proc/stat cpu line)."""
        return (
            time.monotonic(),
            proc_cpu_seconds(_read(f"/proc/{self.pid}/stat"), self.ticks),
            parse_proc_stat_cpu(_read("/proc/stat")),
        )


def _install_sink(room: Any, track: Any) -> Any:
    """Drop ``track``'s encoded frames before aiortc's decoder, counting bytes and key frame
    sizes (bench/forwarding.py's subscribers do the same), on the SDK room's peer connection."""
    from atrium_media import aiortc_compat as compat
    from atrium_media.forwarding.track import FrameSink

    class LayerSink(FrameSink):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.bytes = 0
            self.size: tuple[int, int] | None = None

        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            if item is not None:
                data = item[1].data
                self.bytes += len(data)
                self.size = vp8_frame_size(data) or self.size
            super().put(item, block, timeout)

    for transceiver in room.peer_connection.getTransceivers():
        receiver = transceiver.receiver
        if receiver is not None and receiver.track is track.media_stream_track:
            current = receiver.__dict__[compat.RECEIVER_DECODER_QUEUE]
            if isinstance(current, LayerSink):
                return current
            sink = LayerSink(current)
            receiver.__dict__[compat.RECEIVER_DECODER_QUEUE] = sink
            return sink
    raise RuntimeError("no receiver for the subscribed video track")


async def _wait_for_video(room: Any, timeout: float) -> Any:
    """The publisher's RemoteVideoTrack in the SDK ``room``, once subscribed (None: timeout)."""
    from tests.support.sdk import subscribed_video

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        track = subscribed_video(room, PUBLISHER)
        if track is not None:
            return track
        await asyncio.sleep(0.05)
    return None


class _Run:
    """One measurement's pages and SDK rooms; :meth:`close` ends whatever was started."""

    def __init__(
        self,
        browser: Any,
        web: Any,
        ws_url: str,
        token_for: Callable[[str, str], str],
        config: SimulcastConfig,
    ) -> None:
        self.browser = browser
        self.web = web
        self.ws_url = ws_url
        self.token_for = token_for
        self.config = config
        self.pages: list[Any] = []
        self.rooms: list[Any] = []

    async def page(self, identity: str, room: str, **options: Any) -> Any:
        page = await self.browser.new_page(self.web.url())
        self.pages.append(page)
        token = json.dumps(self.token_for(identity, room))
        connect = json.dumps({"wsServer": self.ws_url, "name": room, **options})
        result = await page.eval(f"atrium.settle(atrium.connect({token}, {connect}))", timeout=30)
        if not result.get("ok"):
            raise RuntimeError(f"{identity} could not connect: {result.get('error')}")
        return page

    async def sdk(self, identity: str, room: str) -> Any:
        from atrium_video import connect

        joined = await connect(self.token_for(identity, room), url=self.ws_url, name=room)
        self.rooms.append(joined)
        return joined

    async def drop_rooms(self, keep: int = 0) -> None:
        while len(self.rooms) > keep:
            room = self.rooms.pop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(room.disconnect(), 10)

    async def close(self) -> None:
        await self.drop_rooms()
        for page in self.pages:
            with contextlib.suppress(Exception):
                await page.eval("atrium.disconnect() && true", timeout=5)
            with contextlib.suppress(Exception):
                await page.close()
        self.pages.clear()


async def _publisher_layers(page: Any, seconds: float = 1.0) -> list[Layer]:
    before = await page.eval(PUBLISHER_STATS_JS)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after = await page.eval(PUBLISHER_STATS_JS)
    return sending_layers(before, after, time.monotonic() - started)


async def _window(
    sinks: Sequence[Any], publisher: Any, cpu: WorkerCpu, seconds: float
) -> dict[str, Any]:
    """The worker's CPU, the machine's, what the subscribers got and the publisher sent, over
    one window of ``seconds``."""
    frames0 = [s.discarded for s in sinks]
    bytes0 = [s.bytes for s in sinks]
    stats0 = await publisher.eval(PUBLISHER_STATS_JS)
    t0, cpu0, machine0 = cpu.sample()
    await asyncio.sleep(seconds)
    t1, cpu1, machine1 = cpu.sample()
    stats1 = await publisher.eval(PUBLISHER_STATS_JS)
    wall = t1 - t0
    legs = len(sinks)
    busy = machine_busy(machine0, machine1)
    try:
        state = await publisher.eval(PUBLISHER_STATE_JS)
    except Exception as exc:  # a diagnostic: its absence costs no figure
        state = {"error": str(exc)[:200]}
    return {
        "publisher_state": state,
        "seconds": round(wall, 2),
        "cpu_percent": round(100 * (cpu1 - cpu0) / wall, 2),
        "kbps_per_leg": round(
            sum(8 * (s.bytes - b) / 1000 / wall for s, b in zip(sinks, bytes0, strict=True)) / legs,
            1,
        ),
        "fps_per_leg": round(
            sum((s.discarded - f) / wall for s, f in zip(sinks, frames0, strict=True)) / legs, 1
        ),
        "received_sizes": [f"{s.size[0]}x{s.size[1]}" if s.size else "?" for s in sinks],
        "publisher_layers": sending_layers(stats0, stats1, wall),
        "machine_busy_percent": None if busy is None else round(100 * busy, 1),
    }


async def _measure_cpu(
    run: _Run, mode: str, cpu: WorkerCpu, warmup: float, keep: int
) -> tuple[CpuSample, Any]:
    """Worker CPU with one subscriber, then with ``config.subscribers``; leaves the publisher
    page and ``keep`` SDK subscribers connected.

    The window with one subscriber starts once it receives the camera's full size (and, in
    simulcast, the publisher sends 3 layers) or after ``warmup`` seconds, whichever is first;
    the others join then, and the second window starts once each got a key frame of the size
    the first one receives."""
    config = run.config
    room = f"bench-sim-{mode}-{time.time_ns()}"
    publisher = await run.page(PUBLISHER, room, video=CAMERA, **_reference_options(MODES[mode]))
    sinks: list[Any] = []

    async def subscribe(index: int) -> Any:
        joined = await run.sdk(f"bench-sim-sub-{index}", room)
        track = await _wait_for_video(joined, 15)
        if track is None:
            raise RuntimeError(f"subscriber {index} got no video track in {mode} mode")
        sink = _install_sink(joined, track)
        sinks.append(sink)
        return sink

    first = await subscribe(0)
    started = time.monotonic()
    full = CAMERA["width"]
    reached = False
    while time.monotonic() - started < warmup:
        layers = await _publisher_layers(publisher, 0.5)
        enough = len(layers) >= (3 if mode == "simulcast" else 1)
        if enough and first.size and first.size[0] >= full:
            reached = True
            break
    waited = time.monotonic() - started
    await asyncio.sleep(config.settle)
    one = await _window(sinks, publisher, cpu, config.seconds)
    for index in range(1, config.subscribers):
        await subscribe(index)
    alone = first.size
    deadline = time.monotonic() + 10
    matched = False
    while time.monotonic() < deadline:  # polled: the sinks fill on aiortc's receive path
        if all(s.size == alone for s in sinks):
            matched = True
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(config.settle)
    many = await _window(sinks, publisher, cpu, config.seconds)
    legs = len(sinks)
    extra = None
    if legs > 1:
        extra = round((many["cpu_percent"] - one["cpu_percent"]) / (legs - 1), 3)
    sample = CpuSample(
        mode=mode,
        subscribers=legs,
        legs=legs,
        cpu_percent_per_leg=round(many["cpu_percent"] / legs, 3),
        cpu_percent_per_extra_leg=extra,
        one=one,
        reached_full_size=reached,
        waited_s=round(waited, 1),
        sizes_matched=matched,
        **many,
    )
    await run.drop_rooms(keep)
    return sample, publisher


def _reference_options(codecs: Any, **video: Any) -> dict[str, Any]:
    from tests.browser.test_media_signaling_browser import reference_app_options

    options = reference_app_options(codecs)
    if video:
        options["bandwidthProfile"] = {"video": {**options["bandwidthProfile"]["video"], **video}}
    return options


async def _measure_switches(run: _Run, room: str, result: SimulcastResult) -> None:
    """Layer switches, switchOn() cycles and bytes/s on / off, by one manual Chromium page."""
    config = run.config
    page = await run.page(
        "bench-sim-viewer",
        room,
        video=False,
        **_reference_options(
            MODES["simulcast"],
            clientTrackSwitchOffControl="manual",
            contentPreferencesMode="manual",
        ),
    )
    monitor = _monitor_js(PUBLISHER)
    await page.wait_for(
        f"(() => {{ const m = {monitor}; return m && m.el.videoWidth > 0 }})()", timeout=20
    )
    timeout_ms = int(config.frame_timeout * 1000)

    async def switch(dims: Mapping[str, int]) -> dict[str, Any]:
        script = SWITCH_JS % {
            "monitor": monitor,
            "dims": json.dumps(dims),
            "timeout_ms": timeout_ms,
        }
        sample: dict[str, Any] = await page.eval(script, timeout=config.frame_timeout + 10)
        return sample

    # Start from the small size; a first change may be needed (or already be there).
    first = await switch(SMALL)
    width_now = await page.eval(f"{monitor}.el.videoWidth")
    if first.get("how") == "timeout" and width_now > SMALL["width"]:
        result.switch_unavailable = f"the small size never arrived (still {width_now} wide)"
        return
    await asyncio.sleep(config.pause)
    up: list[float] = []
    arrivals: list[float] = []
    down: list[float] = []
    for index in range(config.switches):
        going_up = index % 2 == 0
        sample = await switch(LARGE if going_up else SMALL)
        sample["kind"] = "up" if going_up else "down"
        result.samples.append(sample)
        if sample.get("how") in ("rvfc", "poll") and sample.get("ms") is not None:
            (up if going_up else down).append(sample["ms"] / 1000)
            arrivals += _arrival(sample)
            result.widths += [int(sample["from"]), int(sample["width"])]
        else:
            result.switch_failures += 1
        await asyncio.sleep(config.pause)
    result.switch = distribution(up + down)
    result.switch_arrival = distribution(arrivals)
    result.switch_up = distribution(up)
    result.switch_down = distribution(down)

    # Bytes/s with the track on, at the large size.
    await switch(LARGE)
    await asyncio.sleep(config.pause)
    result.on_width = await page.eval(f"{monitor}.el.videoWidth")
    result.on_bytes_per_s = await _bytes_per_second(page, config.rate_seconds)

    track = f"{monitor}.track"

    async def switch_on() -> dict[str, Any]:
        script = SWITCH_ON_JS % {"monitor": monitor, "timeout_ms": timeout_ms}
        sample: dict[str, Any] = await page.eval(script, timeout=config.frame_timeout + 10)
        sample["kind"] = "switch_on"
        result.samples.append(sample)
        await page.wait_for(f"{track}.isSwitchedOff === false", timeout=10)
        return sample

    async def switch_off() -> None:
        await page.eval(f"{track}.switchOff() && true")
        await page.wait_for(f"{track}.isSwitchedOff === true", timeout=10)
        await asyncio.sleep(config.pause)

    on_times: list[float] = []
    on_arrivals: list[float] = []
    for _ in range(config.switch_ons):
        await switch_off()
        sample = await switch_on()
        if sample.get("how") in ("rvfc", "poll"):
            on_times.append(sample["ms"] / 1000)
            on_arrivals += _arrival(sample)
        else:
            result.switch_on_failures += 1
        await asyncio.sleep(config.pause)
    result.switch_on = distribution(on_times)
    result.switch_on_arrival = distribution(on_arrivals)

    # Bytes/s switched off (then switched on again, timed apart: it was off for longer).
    off_since = time.monotonic()
    await switch_off()
    result.off_bytes_per_s = await _bytes_per_second(page, config.rate_seconds)
    result.rate_off_seconds = round(time.monotonic() - off_since, 1)
    sample = await switch_on()
    sample["kind"] = "switch_on_after_rate"
    if sample.get("how") in ("rvfc", "poll"):
        result.switch_on_after_rate_ms = round(sample["ms"], 1)


def _arrival(sample: Mapping[str, Any]) -> list[float]:
    """The sample's frame arrival (s after the call) if the page knew it and it is plausible."""
    received = sample.get("receivedMs")
    if received is None or received < 0 or received > sample["ms"] + 1:
        return []
    return [received / 1000]


async def _bytes_per_second(page: Any, seconds: float) -> float:
    before = await page.eval(VIDEO_BYTES_JS)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after = await page.eval(VIDEO_BYTES_JS)
    return round(float(after - before) / (time.monotonic() - started), 1)


async def measure_simulcast(
    gateway_url: str,
    token_for: Callable[[str, str], str],
    worker_pid: int | None,
    config: SimulcastConfig | None = None,
    on_step: Callable[[str], None] | None = None,
) -> SimulcastResult:
    """``token_for(identity, room)`` mints an Access Token; ``worker_pid`` is the media worker
    process hosting the rooms (the stack's only one)."""
    from bench.join import prerequisites_missing

    config = config or SimulcastConfig()
    reason = prerequisites_missing()
    if reason:
        return unavailable(reason)
    if worker_pid is None:
        return unavailable("media worker process not found")
    cpu = WorkerCpu(worker_pid)
    try:
        cpu.sample()
    except (OSError, ValueError, IndexError) as exc:
        return unavailable(f"cannot read the worker's CPU from /proc: {exc}")
    from tests.browser.harness import Browser, HarnessError, StaticServer, find_chromium

    binary = find_chromium()
    assert binary is not None
    ws_url = gateway_url.replace("http://", "ws://") + "/signaling"
    result = SimulcastResult()
    began = time.monotonic()
    web = await StaticServer().start()
    browser: Any = None
    run: _Run | None = None
    step = on_step or (lambda _: None)
    failures = (RuntimeError, TimeoutError, HarnessError, AssertionError)
    try:
        browser = await Browser(binary).start()
        # Simulcast first: its room then serves the switch measurements (one SDK subscriber
        # kept, so every layer stays encoded); the single-layer baseline gets the same warm-up.
        run = _Run(browser, web, ws_url, token_for, config)
        step("worker CPU, 3-layer publisher")
        warmup = config.layer_wait
        try:
            sample, publisher = await _measure_cpu(run, "simulcast", cpu, warmup, keep=1)
            result.cpu["simulcast"] = sample
            warmup = max(sample.waited_s, config.min_warmup)
            room = await publisher.eval("atrium.room.name")
            step("layer switches, switch-off")
            try:
                await _measure_switches(run, room, result)
            except failures as exc:
                result.errors.append(f"switch: {str(exc)[:300]}")
                result.switch_unavailable = result.switch_unavailable or "failed"
        except failures as exc:
            result.errors.append(f"cpu simulcast: {str(exc)[:300]}")
            result.cpu_unavailable = "simulcast failed"
            result.switch_unavailable = "no simulcast publisher"
        await run.close()
        run = _Run(browser, web, ws_url, token_for, config)
        step("worker CPU, 1-layer publisher")
        try:
            sample, _ = await _measure_cpu(run, "single", cpu, warmup, keep=0)
            result.cpu["single"] = sample
        except failures as exc:
            result.errors.append(f"cpu single: {str(exc)[:300]}")
            result.cpu_unavailable = result.cpu_unavailable or "single-layer failed"
    except (HarnessError, OSError) as exc:
        result.errors.append(str(exc)[:300])
        result.unavailable = result.unavailable or f"browser failed: {str(exc)[:120]}"
    finally:
        if run is not None:
            await run.close()
        if browser is not None:
            await browser.close()
        await web.stop()
        result.elapsed_s = round(time.monotonic() - began, 1)
    return result
