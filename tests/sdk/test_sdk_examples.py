"""The SDK's examples (sdk/python/examples/) as subprocesses, against the real stack.

The bot publishes a test pattern and a tone and echoes data messages; the recorder writes what it
receives to files, which PyAV must be able to open and decode. Both stop cleanly on SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path

import av
import pytest

from atrium_video import LocalDataTrack, RemoteVideoTrack, Room, connect
from atrium_video import create_local_audio_track as audio_track
from atrium_video import create_local_video_track as video_track
from tests.support.sdk import remote, sees
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150), pytest.mark.stack(REALTIME)]

EXAMPLES = Path(__file__).resolve().parents[2] / "sdk" / "python" / "examples"


class Example:
    """An example script as a subprocess; its output lines are collected as they come."""

    def __init__(self, name: str, *args: str) -> None:
        self.name = name
        self.args = args
        self.lines: list[str] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Example:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / f"{self.name}.py"),
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip())

    def output(self) -> str:
        return "\n".join(self.lines[-60:])

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def check_alive(self) -> None:
        assert self.process is not None
        if self.process.returncode is not None:
            raise AssertionError(f"{self.name} exited early:\n{self.output()}")

    async def interrupt(self, timeout: float = 20.0) -> int:
        """Ctrl-C, and its exit code once it has finished cleaning up."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def decoded_frames(path: Path) -> tuple[int, int]:
    """(audio frames, video frames) PyAV decodes from ``path``."""
    audio = video = 0
    with av.open(str(path)) as container:
        for frame in container.decode(*container.streams):
            if isinstance(frame, av.AudioFrame):
                audio += 1
            elif isinstance(frame, av.VideoFrame):
                assert frame.width > 0 and frame.height > 0
                video += 1
    return audio, video


async def test_bot_and_recorder_examples(stack: Stack, tenant: Tenant, tmp_path: Path) -> None:
    url = stack.signaling_url
    room_name = "examples"
    out = tmp_path / "recordings"
    chat = LocalDataTrack(name="chat")
    alice: Room = await connect(
        tenant.token("alice"),
        url=url,
        name=room_name,
        tracks=[audio_track(name="mic"), video_track(name="cam"), chat],
    )
    echoes: list[str | bytes] = []
    alice.on(
        "track_message",
        lambda data, track, participant: (
            echoes.append(data) if participant.identity == "bot" else None
        ),
    )
    bot = Example("bot", url, room_name, tenant.token("bot"))
    recorder = Example("recorder", url, room_name, tenant.token("recorder"), "--out", str(out))
    try:
        await bot.start()
        await recorder.start()
        # The bot publishes its pattern, tone and data track; alice subscribes to all three.
        await eventually(sees(alice, "bot", 3), timeout=30, message="alice subscribes to bot")
        bot.check_alive()
        await eventually(
            lambda: (
                bot.said("participant connected: recorder") or bot.said("already here: recorder")
            ),
            timeout=30,
            message="bot logs the recorder",
        )

        # Echo: ping until the bot has subscribed to alice's data track and sends one back.
        sent = 0

        async def echoed() -> bool:
            nonlocal sent
            if not echoes:
                sent += 1
                chat.send(f"ping {sent}")
            return bool(echoes)

        await eventually(echoed, timeout=30, interval=0.5, message="the bot echoes a ping")
        assert str(echoes[0]).startswith("ping ")
        assert bot.said("message from alice on 'chat'")

        # The recorder opens a file per media track of alice and of the bot. WebM output is
        # buffered (a cluster a second), so measure a few seconds of media by what alice gets.
        expected = {
            out / "alice-mic.ogg",
            out / "alice-cam.webm",
            out / "bot-tone.ogg",
            out / "bot-pattern.webm",
        }

        async def recording() -> bool:
            recorder.check_alive()
            for path in expected:
                assert recorder.said(f"to {path}"), recorder.output()
            return True

        await eventually(recording, timeout=30, message="the recorder opens its files")
        bot_video = remote(alice, "bot", "video")
        assert isinstance(bot_video, RemoteVideoTrack)
        baseline = bot_video.frames_received

        async def few_seconds() -> bool:
            recorder.check_alive()
            return bot_video.frames_received >= baseline + 90

        await eventually(few_seconds, timeout=30, message="3 s of the bot's video")
        # Messages reach the recorder too (alice's pings, the bot's echoes): keep pinging until
        # one of each is in the file, as the recorder may have subscribed after the first ones.
        messages = out / "messages.jsonl"

        async def logged() -> bool:
            chat.send("for the record")
            if not messages.exists():
                return False
            senders = {json.loads(line)["from"] for line in messages.read_text().splitlines()}
            return {"alice", "bot"} <= senders

        await eventually(logged, timeout=20, interval=0.3, message="messages.jsonl")
        assert await recorder.interrupt() == 0, recorder.output()
        assert recorder.said("stopped")
        assert await bot.interrupt() == 0, bot.output()
        assert bot.said("left examples")
    finally:
        await recorder.kill()
        await bot.kill()
        await alice.disconnect()

    entries = [json.loads(line) for line in messages.read_text().splitlines()]
    from_alice = {e.get("text") for e in entries if e["from"] == "alice" and e["track"] == "chat"}
    from_bot = {e.get("text") for e in entries if e["from"] == "bot" and e["track"] == "chat"}
    assert (
        from_alice
        and from_bot
        and from_bot <= from_alice | {f"ping {n}" for n in range(1, sent + 1)}
    )
    for path in sorted(expected):
        audio, video = decoded_frames(path)
        print(f"{path.name}: {path.stat().st_size} bytes, {audio} audio / {video} video frames")
        if path.suffix == ".ogg":
            assert audio >= 50 and video == 0, (path, audio, video)
        else:
            assert video >= 30 and audio == 0, (path, audio, video)
