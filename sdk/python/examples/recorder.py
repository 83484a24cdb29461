"""A recorder: joins a room without publishing anything and writes what it receives to files.

* every remote audio track to ``<identity>-<track name>.ogg`` (Opus),
* every remote video track to ``<identity>-<track name>.webm`` (VP8; ``--video-format mp4`` for
  H.264 in MP4, ``mkv`` for VP8 in Matroska),
* every data message to ``messages.jsonl``: one JSON object a line with the time, the sender's
  identity, the track name and the message (``text``, or ``base64`` for binary messages).

A file is closed when its track is unsubscribed; everything is closed when the room disconnects
or on Ctrl-C / SIGTERM.

    uv run python sdk/python/examples/recorder.py ws://127.0.0.1:8080/signaling my-room "$TOKEN" \
        --out recordings/
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaRecorder
from aiortc.mediastreams import MediaStreamError

from atrium_video import (
    RemoteDataTrack,
    RemoteMediaTrack,
    RemoteParticipant,
    RemoteTrack,
    RemoteTrackPublication,
    Room,
    TrackEnded,
    TwilioError,
    connect,
)

log = logging.getLogger("recorder")
VIDEO_EXTENSIONS = ("webm", "mp4", "mkv")
# Matroska/WebM: a cluster a second, written out at once, so a recording that is cut short (a
# crash, kill -9) keeps all but its last second. MP4 cannot: its index is written at the end.
STREAMING_OPTIONS = {"cluster_time_limit": "1000", "flush_packets": "1"}


class FramesOf(MediaStreamTrack):
    """The decoded frames of a remote track, as the ``MediaStreamTrack`` MediaRecorder reads.

    MediaRecorder must not read the track's underlying aiortc track itself: the SDK already does,
    and two readers would each get half of the frames.
    """

    def __init__(self, track: RemoteMediaTrack) -> None:
        super().__init__()
        self.kind = track.kind
        self.frames = 0
        self._track = track

    async def recv(self) -> Any:
        try:
            frame = await self._track.recv()
        except TrackEnded:
            self.stop()
            raise MediaStreamError from None
        self.frames += 1
        return frame


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "track"


class Recorder:
    def __init__(self, out: Path, video_format: str) -> None:
        self.out = out
        self.video_format = video_format
        self.recorders: dict[str, tuple[MediaRecorder, FramesOf, Path]] = {}  # by track SID
        self.messages: IO[str] | None = None
        self.message_count = 0

    def path_for(self, participant: RemoteParticipant, track: RemoteTrack) -> Path:
        extension = "ogg" if track.kind == "audio" else self.video_format
        path = self.out / f"{safe(participant.identity)}-{safe(track.name)}.{extension}"
        if path.exists() or any(p == path for _, _, p in self.recorders.values()):
            path = path.with_name(f"{path.stem}-{track.sid}.{extension}")
        return path

    async def subscribed(
        self,
        track: RemoteTrack,
        publication: RemoteTrackPublication,
        participant: RemoteParticipant,
    ) -> None:
        if isinstance(track, RemoteDataTrack):
            log.info("recording messages of %s's %r", participant.identity, track.name)
            return
        if not isinstance(track, RemoteMediaTrack) or track.sid in self.recorders:
            return
        path = self.path_for(participant, track)
        options = STREAMING_OPTIONS if path.suffix in (".webm", ".mkv") else None
        recorder = MediaRecorder(str(path), options=options)
        frames = FramesOf(track)
        recorder.addTrack(frames)
        self.recorders[track.sid] = (recorder, frames, path)
        await recorder.start()
        log.info(
            "recording %s's %s track %r to %s", participant.identity, track.kind, track.name, path
        )

    async def unsubscribed(
        self,
        track: RemoteTrack,
        publication: RemoteTrackPublication,
        participant: RemoteParticipant,
    ) -> None:
        await self.close(track.sid)

    async def close(self, track_sid: str) -> None:
        entry = self.recorders.pop(track_sid, None)
        if entry is None:
            return
        recorder, frames, path = entry
        try:
            await recorder.stop()
        except Exception as exc:  # a file with no frame at all cannot be finalised
            log.warning("closing %s failed: %s", path, exc)
            return
        size = path.stat().st_size if path.exists() else 0
        log.info("closed %s (%d frames, %d bytes)", path, frames.frames, size)

    def message(
        self, data: str | bytes, track: RemoteDataTrack, participant: RemoteParticipant
    ) -> None:
        if self.messages is None:
            self.messages = (self.out / "messages.jsonl").open("a", encoding="utf-8")
        entry: dict[str, Any] = {
            "time": time.time(),
            "from": participant.identity,
            "participant_sid": participant.sid,
            "track": track.name,
        }
        if isinstance(data, str):
            entry["text"] = data
        else:
            entry["base64"] = base64.b64encode(data).decode()
        self.messages.write(json.dumps(entry) + "\n")
        self.messages.flush()
        self.message_count += 1
        log.info(
            "message from %s on %r (%d so far)",
            participant.identity,
            track.name,
            self.message_count,
        )

    async def close_all(self) -> None:
        for track_sid in list(self.recorders):
            await self.close(track_sid)
        if self.messages is not None:
            self.messages.close()
            self.messages = None


async def run(url: str, room_name: str, token: str, out: Path, video_format: str) -> int:
    recorder = Recorder(out, video_format)
    try:
        room = await connect(token, url=url, name=room_name)
    except TwilioError as exc:
        log.error("could not join %s: %s", room_name, exc)
        return 1
    log.info(
        "joined %s (%s) as %s; writing to %s",
        room.name,
        room.sid,
        room.local_participant.identity,
        out,
    )
    stop = asyncio.Event()
    ended: list[TwilioError | None] = []

    def disconnected(_room: Room, error: TwilioError | None) -> None:
        ended.append(error)
        stop.set()

    room.on("track_subscribed", recorder.subscribed)
    room.on("track_unsubscribed", recorder.unsubscribed)
    room.on("track_message", recorder.message)
    room.on("participant_connected", lambda p: log.info("participant connected: %s", p.identity))
    room.on(
        "participant_disconnected", lambda p: log.info("participant disconnected: %s", p.identity)
    )
    room.on("disconnected", disconnected)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Tracks already subscribed while connect() ran were announced before the handlers existed.
    for participant in room.participants.values():
        for publication in participant.tracks.values():
            if publication.track is not None:
                await recorder.subscribed(publication.track, publication, participant)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await room.disconnect()
        await recorder.close_all()
    error = ended[0] if ended else None
    log.info("stopped%s", f" ({error})" if error else "")
    return 1 if error else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="signaling URL, ws://HOST:PORT/signaling")
    parser.add_argument("room", help="room name")
    parser.add_argument(
        "token",
        nargs="?",
        default=os.environ.get("ATRIUM_TOKEN"),
        help="Access Token (default: $ATRIUM_TOKEN)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("recordings"),
        help="directory for the files (default ./recordings)",
    )
    parser.add_argument(
        "--video-format",
        choices=VIDEO_EXTENSIONS,
        default="webm",
        help="container of video recordings (default webm)",
    )
    args = parser.parse_args()
    if not args.token:
        parser.error("an Access Token is needed (argument or $ATRIUM_TOKEN)")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("atrium_video").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(run(args.url, args.room, args.token, args.out, args.video_format))


if __name__ == "__main__":
    sys.exit(main())
