"""Media worker failover: kill -9 of the worker hosting rooms -> media flowing again for every
participant of those rooms, with the Python SDK (atrium_video) against the bench's own stack.

A second media worker joins the bench's one; ``rooms`` rooms of two SDK participants each (audio
and video test patterns) are spread over both. Once video flows everywhere, the worker hosting
the first room is killed; each participant of its rooms counts as back when 15 new video frames
from its peer have been decoded. The baseline, measured in the same run on the surviving worker,
is what an application would do without failover: a fresh ``connect()`` to the same room until
its first decoded frame of the same peer.

This is the bench's last media phase: the killed worker may be the bench's own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from bench.procs import Process
from bench.report import MediaFigure
from bench.stats import Distribution, distribution

NEW_FRAMES = 15


@dataclass
class FailoverResult:
    resumed: Distribution  # kill -9 -> NEW_FRAMES new frames, per participant of the moved rooms
    fresh_join: Distribution  # connect() -> first frame of the same peer (baseline)
    rooms_moved: int
    participants: int
    unavailable: str | None = None
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.unavailable or "ok",
            "resumed": self.resumed.as_dict(),
            "fresh_join": self.fresh_join.as_dict(),
            "rooms_moved": self.rooms_moved,
            "participants": self.participants,
            "errors": self.errors,
        }


def unavailable(reason: str) -> FailoverResult:
    empty = distribution([])
    return FailoverResult(empty, empty, 0, 0, unavailable=reason)


def _token(account_sid: str, api_key: tuple[str, str], identity: str) -> str:
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VideoGrant

    token = AccessToken(account_sid, api_key[0], api_key[1], identity=identity, ttl=3600)
    token.add_grant(VideoGrant())
    jwt = token.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else str(jwt)


async def _wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return False


async def measure_failover(
    signaling_url: str,
    account_sid: str,
    api_key: tuple[str, str],
    redis_url: str,
    workers: dict[str, Process],
    *,
    rooms: int = 3,
    timeout: float = 30.0,
) -> FailoverResult:
    """``workers``: the media worker processes by worker id (two or more; one is killed)."""
    from atrium_video import connect, create_local_audio_track, create_local_video_track
    from tests.support.sdk import subscribed_video

    redis = Redis.from_url(redis_url, decode_responses=True)
    joined: list[tuple[str, Any, Any]] = []  # (room name, first, second)
    extra: list[Any] = []
    errors: list[str] = []
    try:
        for r in range(rooms):
            name = f"bench-failover-{r}-{time.time_ns()}"
            pair = []
            for side in ("a", "b"):
                pair.append(
                    await connect(
                        _token(account_sid, api_key, f"{name}-{side}"),
                        url=signaling_url,
                        name=name,
                        tracks=[create_local_audio_track(), create_local_video_track()],
                    )
                )
            joined.append((name, pair[0], pair[1]))
        for name, first, second in joined:
            for room, peer in ((first, f"{name}-b"), (second, f"{name}-a")):
                ok = await _wait(
                    lambda room=room, peer=peer: (
                        (t := subscribed_video(room, peer)) is not None and t.frames_received >= 10
                    ),
                    timeout,
                )
                if not ok:
                    return unavailable(f"no video in {name} before the kill")
        placements = {
            name: str(await redis.get(f"atrium:room:{first.sid}:worker"))
            for name, first, _ in joined
        }
        victim = placements[joined[0][0]]
        if victim not in workers:
            return unavailable(f"room on an unknown worker {victim}")
        moving = [(n, a, b) for n, a, b in joined if placements[n] == victim]
        tracks: list[Any] = [  # each one subscribed: waited for above
            subscribed_video(room, peer)
            for name, first, second in moving
            for room, peer in ((first, f"{name}-b"), (second, f"{name}-a"))
        ]
        counts = [t.frames_received for t in tracks]

        killed = workers[victim].process
        assert killed is not None
        os.killpg(killed.pid, signal.SIGKILL)  # no goodbye, no drain
        killed_at = time.monotonic()
        killed.wait(10)

        async def back(track: Any, start: int) -> float | None:
            ok = await _wait(lambda: track.frames_received >= start + NEW_FRAMES, timeout)
            return time.monotonic() - killed_at if ok else None

        resumed = await asyncio.gather(*(back(t, c) for t, c in zip(tracks, counts, strict=True)))
        failed = sum(1 for value in resumed if value is None)
        if failed:
            errors.append(f"{failed} participant(s) without media {timeout:.0f} s after the kill")

        # Baseline: joining afresh (what an app does by hand without failover), same room.
        fresh: list[float] = []
        name, _, _ = moving[0]
        for i in range(3):
            started = time.monotonic()
            newcomer = await connect(
                _token(account_sid, api_key, f"{name}-fresh-{i}"), url=signaling_url, name=name
            )
            extra.append(newcomer)
            ok = await _wait(
                lambda newcomer=newcomer: (
                    (t := subscribed_video(newcomer, f"{name}-a")) is not None
                    and t.frames_received >= 1
                ),
                timeout,
            )
            if ok:
                fresh.append(time.monotonic() - started)
            await newcomer.disconnect()
        return FailoverResult(
            distribution([v for v in resumed if v is not None]),
            distribution(fresh),
            rooms_moved=len(moving),
            participants=len(tracks),
            errors=errors,
        )
    finally:
        for _, first, second in joined:
            for room in (first, second):
                try:
                    await asyncio.wait_for(room.disconnect(), 10)
                except Exception as exc:  # a bench cleans up whatever state it is in
                    errors.append(f"disconnect: {exc!r}")
        for room in extra:
            try:
                await asyncio.wait_for(room.disconnect(), 10)
            except Exception as exc:
                errors.append(f"disconnect: {exc!r}")
        await redis.aclose()


def failover_figures(result: FailoverResult) -> list[MediaFigure]:
    phase = "media worker failover (SDK, 2 workers)"
    missing = "n/a" if result.unavailable else None
    note = result.unavailable or (
        f"{result.participants} participants in {result.rooms_moved} moved rooms"
        + (f"; {'; '.join(result.errors)}" if result.errors else "")
    )
    return [
        MediaFigure(
            phase,
            "kill -9 -> media p50",
            "ms",
            result.resumed.p50_ms,
            result.fresh_join.p50_ms,
            note,
            missing,
            missing,
        ),
        MediaFigure(
            phase,
            "kill -9 -> media max",
            "ms",
            result.resumed.max_ms,
            result.fresh_join.max_ms,
            "baseline: a fresh connect() -> first frame",
            missing,
            missing,
        ),
    ]
