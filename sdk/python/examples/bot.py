"""A bot: joins, publishes a test pattern, a tone and a data track, logs who comes and goes, and
echoes every data message back.

    uv run python sdk/python/examples/bot.py ws://127.0.0.1:8080/signaling my-room "$TOKEN"
"""

from __future__ import annotations

import asyncio
import logging
import sys

from atrium_video import (
    LocalDataTrack,
    RemoteDataTrack,
    RemoteParticipant,
    connect,
    create_local_audio_track,
    create_local_video_track,
)


async def main(url: str, room_name: str, token: str) -> None:
    chat = LocalDataTrack(name="chat")
    room = await connect(token, url=url, name=room_name, tracks=[
        create_local_video_track(name="pattern"), create_local_audio_track(name="tone"), chat])
    print(f"joined {room.name} ({room.sid}) as {room.local_participant.identity}")
    for participant in room.participants.values():
        print(f"already here: {participant.identity}")

    room.on("participant_connected", lambda p: print(f"joined: {p.identity}"))
    room.on("participant_disconnected", lambda p: print(f"left: {p.identity}"))

    def echo(data: str | bytes, track: RemoteDataTrack, participant: RemoteParticipant) -> None:
        print(f"{participant.identity}: {data!r}")
        chat.send(data)

    room.on("track_message", echo)
    ended = asyncio.Event()
    room.on("disconnected", lambda _room, error: ended.set())
    async with room:
        await ended.wait()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(*sys.argv[1:4]))
