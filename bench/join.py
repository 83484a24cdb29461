"""Join latency through the real stack: token -> ``connected`` -> first remote video frame.

A first headless-Chromium tab (the unmodified twilio-video SDK, tests/browser/harness.py)
connects and publishes the fake camera. Then, ``joins`` times, a fresh tab of the same browser
connects to that room with no track of its own, through the gateway's ``/signaling`` and the
room/participant/track/media services (subprocesses, see bench/main.py). Its own script (the
test page's ``window.atrium`` is not used for the timing) stamps ``performance.now()``:

* ``connected``: ``Twilio.Video.connect()`` called -> its promise resolved (the SDK's
  ``connected``: signaling, ICE, DTLS done);
* ``first frame``: ``connect()`` called -> the first remote video frame decoded in a <video>
  (the earliest of ``requestVideoFrameCallback``, ``loadeddata`` and a 5 ms poll of
  ``getVideoPlaybackQuality().totalVideoFrames``).

The page load and token minting are outside both spans; the first join is a warm-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.report import MediaFigure
from bench.stats import Distribution, distribution

JOIN_JS = r"""
(async (token, options) => {
  const t0 = performance.now();
  const out = {};
  const room = await Twilio.Video.connect(token, Object.assign(
    {iceServers: [], logLevel: 'warn', insights: false, tracks: []}, options));
  out.connectedMs = performance.now() - t0;
  out.roomSid = room.sid;
  let timer = null;
  const firstFrame = new Promise((resolve) => {
    const done = (how) => resolve({ms: performance.now() - t0, how});
    const watch = (track) => {
      if (!track || track.kind !== 'video') return;
      const el = track.attach();
      el.muted = true;
      document.body.appendChild(el);
      const played = el.play();
      if (played && played.catch) played.catch(() => {});
      if (el.requestVideoFrameCallback) el.requestVideoFrameCallback(() => done('rvfc'));
      el.addEventListener('loadeddata', () => done('loadeddata'), {once: true});
      timer = setInterval(() => {
        const q = el.getVideoPlaybackQuality ? el.getVideoPlaybackQuality() : null;
        if (q && q.totalVideoFrames > 0) done('poll');
      }, 5);
    };
    room.on('trackSubscribed', watch);
    room.participants.forEach((p) => p.tracks.forEach((pub) => watch(pub.track)));
  });
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), %(timeout_ms)d));
  const frame = await Promise.race([firstFrame, timeout]);
  if (timer !== null) clearInterval(timer);
  out.firstFrameMs = frame ? frame.ms : null;
  out.firstFrameBy = frame ? frame.how : null;
  room.disconnect();
  return out;
})(%(token)s, %(options)s)
"""


@dataclass
class JoinResult:
    connected: Distribution
    first_frame: Distribution
    joins: int
    failures: int
    unavailable: str | None = None  # why there is no figure
    samples: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.unavailable or "ok",
            "connected": self.connected.as_dict(),
            "first_frame": self.first_frame.as_dict(),
            "joins": self.joins,
            "failures": self.failures,
            "samples": self.samples,
            "errors": self.errors,
        }


def unavailable(reason: str, joins: int = 0) -> JoinResult:
    empty = distribution([])
    return JoinResult(empty, empty, joins, 0, unavailable=reason)


def prerequisites_missing() -> str | None:
    """Why the browser harness cannot run here (None when it can)."""
    try:
        from tests.browser.harness import INSTALL_HINT, missing_prerequisites
    except ImportError as exc:  # aiohttp or twilio missing
        return f"browser harness not importable: {exc}"
    missing = missing_prerequisites()
    return "; ".join(missing) + f" ({INSTALL_HINT})" if missing else None


async def measure_joins(
    gateway_url: str,
    token_for: Callable[[str, str], str],
    *,
    joins: int = 10,
    warmups: int = 1,
    frame_timeout: float = 15.0,
    on_join: Callable[[], None] | None = None,
) -> JoinResult:
    """``token_for(identity, room)`` mints an Access Token for the bench's account."""
    reason = prerequisites_missing()
    if reason is None and importlib.util.find_spec("twilio") is None:
        reason = "the twilio helper library (dev dependency, mints the tokens) is missing"
    if reason:
        return unavailable(reason, joins)
    from tests.browser.harness import Browser, HarnessError, JSError, StaticServer, find_chromium

    binary = find_chromium()
    assert binary is not None
    room = f"bench-join-{int(time.time())}"
    ws = gateway_url.replace("http://", "ws://") + "/signaling"
    web = await StaticServer().start()
    browser: Browser | None = None
    connected: list[float] = []
    first_frames: list[float] = []
    samples: list[dict[str, Any]] = []
    errors: list[str] = []
    failures = 0
    try:
        browser = await Browser(binary).start()
        publisher = await browser.new_page(web.url())
        options = {"wsServer": ws, "name": room, "video": True}
        token = json.dumps(token_for("bench-publisher", room))
        result = await publisher.eval(
            f"atrium.settle(atrium.connect({token}, {json.dumps(options)}))", timeout=30
        )
        if not result.get("ok"):
            return unavailable(f"publisher could not connect: {result.get('error')}", joins)
        for index in range(warmups + joins):
            page = await browser.new_page(web.url())
            script = JOIN_JS % {
                "timeout_ms": int(frame_timeout * 1000),
                "token": json.dumps(token_for(f"bench-joiner-{index}", room)),
                "options": json.dumps({"wsServer": ws, "name": room}),
            }
            try:
                sample = await page.eval(script, timeout=frame_timeout + 20)
            except (JSError, HarnessError) as exc:
                sample = {"error": str(exc)[:300]}
            finally:
                with contextlib.suppress(Exception):
                    await page.close()
            if index < warmups:
                continue
            samples.append(sample)
            if on_join is not None:
                on_join()
            if sample.get("connectedMs") is None or sample.get("firstFrameMs") is None:
                failures += 1
                errors.append(str(sample.get("error") or "no remote video frame in time"))
            else:
                connected.append(sample["connectedMs"] / 1000.0)
                first_frames.append(sample["firstFrameMs"] / 1000.0)
            await asyncio.sleep(0.2)  # let the previous joiner's disconnect settle
    except (HarnessError, OSError) as exc:
        errors.append(str(exc)[:300])
        return JoinResult(
            distribution(connected),
            distribution(first_frames),
            joins,
            joins - len(connected),
            unavailable=f"browser failed: {str(exc)[:120]}",
            samples=samples,
            errors=errors,
        )
    finally:
        if browser is not None:
            await browser.close()
        await web.stop()
    return JoinResult(
        distribution(connected),
        distribution(first_frames),
        joins,
        failures,
        samples=samples,
        errors=errors,
    )


def join_figures(result: JoinResult) -> list[MediaFigure]:
    phase = "join (browser, real stack)"
    missing = "n/a" if result.unavailable else None
    ok = result.joins - result.failures
    notes = [
        result.unavailable
        or f"{ok}/{result.joins} joins"
        + (f", {result.failures} failed" if result.failures else ""),
        "token -> SDK connect() resolved",
        "",
        "token -> first remote video frame decoded",
    ]
    rows = (
        ("connected p50", result.connected.p50_ms),
        ("connected p95", result.connected.p95_ms),
        ("1st frame p50", result.first_frame.p50_ms),
        ("1st frame p95", result.first_frame.p95_ms),
    )
    return [
        MediaFigure(phase, metric, "ms", value, None, note, missing, "-")
        for (metric, value), note in zip(rows, notes, strict=True)
    ]
