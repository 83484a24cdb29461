"""SubscribeRules to media: from a rules POST to the first decoded frame of the newly included
video track, with the Python SDK (atrium_video) against the bench's own stack.

Alice publishes a test pattern; Bob's rules alternate between "exclude Alice's video" and
"include all". Each sample starts just before the POST that includes the video and ends when
Bob's SDK hands out the first decoded frame of it (after ``track_subscribed``). Between samples
the video is excluded again, Bob's ``track_unsubscribed`` is awaited, and the run pauses beyond
the worker's keyframe-request interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.report import MediaFigure
from bench.stats import Distribution, distribution

EXCLUDE: list[dict[str, Any]] = [
    {"type": "include", "all": True},
    {"type": "exclude", "publisher": "bench-alice", "kind": "video"},
]
INCLUDE: list[dict[str, Any]] = [{"type": "include", "all": True}]


@dataclass
class RulesResult:
    subscribed: Distribution  # POST -> track_subscribed
    first_frame: Distribution  # POST -> first decoded frame
    samples: int
    failures: int
    unavailable: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.unavailable or "ok",
            "subscribed": self.subscribed.as_dict(),
            "first_frame": self.first_frame.as_dict(),
            "samples": self.samples,
            "failures": self.failures,
            "errors": self.errors,
        }


def unavailable(reason: str, samples: int = 0) -> RulesResult:
    empty = distribution([])
    return RulesResult(empty, empty, samples, 0, unavailable=reason)


def _token(account_sid: str, api_key: tuple[str, str], identity: str) -> str:
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VideoGrant

    token = AccessToken(account_sid, api_key[0], api_key[1], identity=identity, ttl=3600)
    token.add_grant(VideoGrant())
    jwt = token.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else str(jwt)


async def measure_subscribe_rules(
    gateway_url: str,
    auth: tuple[str, str],
    api_key: tuple[str, str],
    *,
    samples: int = 20,
    warmups: int = 2,
    timeout: float = 10.0,
    spacing: float = 0.5,
) -> RulesResult:
    """``auth`` is the account's (SID, auth token) for REST; ``api_key`` mints the tokens.

    ``spacing`` paces the samples beyond the worker's keyframe-request interval (0.3 s), so each
    one measures a fresh keyframe request rather than the throttle left by the previous one.
    """
    from atrium_video import RemoteVideoTrack, connect, create_local_video_track

    signaling = gateway_url.replace("http://", "ws://", 1) + "/signaling"
    room_name = f"bench-rules-{int(time.time())}"
    subscribed_s: list[float] = []
    frames_s: list[float] = []
    errors: list[str] = []
    alice = await connect(
        _token(auth[0], api_key, "bench-alice"),
        url=signaling,
        name=room_name,
        tracks=[create_local_video_track(name="cam")],
    )
    bob = await connect(_token(auth[0], api_key, "bench-bob"), url=signaling, name=room_name)
    events: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
    bob.on("track_subscribed", lambda track, pub, who: events.put_nowait(("sub", pub.track_sid)))
    bob.on(
        "track_unsubscribed", lambda track, pub, who: events.put_nowait(("unsub", pub.track_sid))
    )
    video_sid = next(iter(alice.local_participant.tracks))
    url = (
        f"{gateway_url}/v1/Rooms/{bob.sid}/Participants/{bob.local_participant.sid}/SubscribeRules"
    )

    async def wait_for(kind: str) -> None:
        while True:
            got = await events.get()
            if got == (kind, video_sid):
                return

    try:
        async with httpx.AsyncClient(auth=auth, timeout=timeout) as http:

            async def post(rules: list[dict[str, Any]]) -> None:
                response = await http.post(url, data={"Rules": json.dumps(rules)})
                response.raise_for_status()

            other = None
            deadline = time.monotonic() + timeout
            while other is None or video_sid not in other.tracks:
                if time.monotonic() > deadline:
                    return unavailable("bob never saw alice's video publication", samples)
                await asyncio.sleep(0.02)
                other = bob.get_participant("bench-alice")
            publication = other.tracks[video_sid]
            if not publication.is_subscribed:
                await asyncio.wait_for(wait_for("sub"), timeout)
            for index in range(warmups + samples):
                try:
                    await post(EXCLUDE)
                    await asyncio.wait_for(wait_for("unsub"), timeout)
                    while not events.empty():
                        events.get_nowait()
                    await asyncio.sleep(spacing)  # pacing, not synchronisation
                    started = time.perf_counter()
                    await post(INCLUDE)
                    await asyncio.wait_for(wait_for("sub"), timeout)
                    got_track = time.perf_counter() - started
                    track = publication.track
                    assert isinstance(track, RemoteVideoTrack)
                    await asyncio.wait_for(track.recv(), timeout)
                    first_frame = time.perf_counter() - started
                except (TimeoutError, AssertionError, httpx.HTTPError) as exc:
                    if index >= warmups:
                        errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                if index >= warmups:
                    subscribed_s.append(got_track)
                    frames_s.append(first_frame)
    finally:
        with contextlib.suppress(Exception):
            await bob.disconnect()
        with contextlib.suppress(Exception):
            await alice.disconnect()
    return RulesResult(
        distribution(subscribed_s),
        distribution(frames_s),
        samples,
        samples - len(frames_s),
        errors=errors,
    )


def subscribe_rules_figures(result: RulesResult) -> list[MediaFigure]:
    phase = "SubscribeRules (SDK, real stack)"
    missing = "n/a" if result.unavailable else None
    ok = result.samples - result.failures
    notes = [
        result.unavailable or f"{ok}/{result.samples} rule changes",
        "POST include -> track_subscribed",
        "",
        "POST include -> first decoded frame",
    ]
    rows = (
        ("subscribed p50", result.subscribed.p50_ms),
        ("subscribed p95", result.subscribed.p95_ms),
        ("1st frame p50", result.first_frame.p50_ms),
        ("1st frame p95", result.first_frame.p95_ms),
    )
    return [
        MediaFigure(phase, metric, "ms", value, None, note, missing, "-")
        for (metric, value), note in zip(rows, notes, strict=True)
    ]
