"""A bot: joins a room, publishes a moving test pattern, a tone and a data track, logs who comes
and goes (and what they publish), and echoes every data message it receives back on its own data
track. Ctrl-C (or SIGTERM) leaves the room cleanly.

    uv run python sdk/python/examples/bot.py ws://127.0.0.1:8080/signaling my-room "$TOKEN"

The token is an Access Token with a Video grant (``atrium run`` prints how to get one; any
Twilio helper library mints them). Two bots in one room would echo each other forever: put one
bot per room.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys

from atrium_video import (
    LocalDataTrack,
    RemoteDataTrack,
    RemoteParticipant,
    RemoteTrackPublication,
    Room,
    TwilioError,
    connect,
    create_local_audio_track,
    create_local_video_track,
)

log = logging.getLogger("bot")


async def run(url: str, room_name: str, token: str) -> int:
    chat = LocalDataTrack(name="chat")
    try:
        room = await connect(
            token,
            url=url,
            name=room_name,
            tracks=[
                create_local_video_track(name="pattern"),
                create_local_audio_track(name="tone"),
                chat,
            ],
        )
    except TwilioError as exc:
        log.error("could not join %s: %s", room_name, exc)
        return 1
    log.info(
        "joined %s (%s) as %s (%s)",
        room.name,
        room.sid,
        room.local_participant.identity,
        room.local_participant.sid,
    )
    for participant in room.participants.values():
        log.info("already here: %s (%s)", participant.identity, participant.sid)

    def joined(participant: RemoteParticipant) -> None:
        log.info("participant connected: %s (%s)", participant.identity, participant.sid)

    def left(participant: RemoteParticipant) -> None:
        log.info("participant disconnected: %s (%s)", participant.identity, participant.sid)

    def published(publication: RemoteTrackPublication, participant: RemoteParticipant) -> None:
        log.info(
            "%s published %s track %r",
            participant.identity,
            publication.kind,
            publication.track_name,
        )

    def echo(data: str | bytes, track: RemoteDataTrack, participant: RemoteParticipant) -> None:
        log.info("message from %s on %r: %r (echoing)", participant.identity, track.name, data)
        chat.send(data)

    stop = asyncio.Event()
    ended: list[TwilioError | None] = []

    def disconnected(_room: Room, error: TwilioError | None) -> None:
        ended.append(error)
        stop.set()

    room.on("participant_connected", joined)
    room.on("participant_disconnected", left)
    room.on("track_published", published)
    room.on("track_message", echo)
    room.on("reconnecting", lambda error: log.warning("reconnecting: %s", error))
    room.on("reconnected", lambda: log.info("reconnected"))
    room.on("disconnected", disconnected)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with room:
        await stop.wait()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
    error = ended[0] if ended else None
    log.info("left %s%s", room.name, f" ({error})" if error else "")
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
    args = parser.parse_args()
    if not args.token:
        parser.error("an Access Token is needed (argument or $ATRIUM_TOKEN)")
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
    )
    logging.getLogger("atrium_video").setLevel(logging.WARNING)
    return asyncio.run(run(args.url, args.room, args.token))


if __name__ == "__main__":
    sys.exit(main())
