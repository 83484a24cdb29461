"""Twilio's client-model example with SubscribeRules, against a running Atrium.

Alice and Bob connect; each publishes an audio, a video and a data track. The server (this
script, through the official ``twilio`` package) sets Bob's rules so he does not receive Alice's
video. Both perspectives are printed, then the rules change to include everything and Bob's
``track_subscribed`` fires for Alice's video.

    uv run python sdk/python/examples/subscribe_rules.py http://127.0.0.1:8080 \\
        "$ACCOUNT_SID" "$API_KEY_SID" "$API_KEY_SECRET" [room-name]
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant
from twilio.rest import Client

from atrium_video import (
    LocalDataTrack,
    RemoteParticipant,
    RemoteTrackPublication,
    Room,
    connect,
    create_local_audio_track,
    create_local_video_track,
)

EXCLUDE_ALICE_VIDEO = [
    {"type": "include", "all": True},
    {"type": "exclude", "publisher": "alice", "kind": "video"},
]
INCLUDE_ALL = [{"type": "include", "all": True}]


def token(account_sid: str, key_sid: str, secret: str, identity: str) -> str:
    grant = AccessToken(account_sid, key_sid, secret, identity=identity, ttl=3600)
    grant.add_grant(VideoGrant())
    jwt = grant.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else str(jwt)


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def perspective(room: Room) -> None:
    me = room.local_participant
    print(f"From {me.identity}'s side (room {room.sid}):")
    print(f"  LocalParticipant {me.identity} {me.sid}: {len(me.tracks)} publications")
    for sid, local in me.tracks.items():
        print(f"    {local.kind:<5} {local.track_name:<5} {sid}")
    for other in room.participants.values():
        print(f"  RemoteParticipant {other.identity} {other.sid}: {len(other.tracks)} publications")
        for sid, remote in other.tracks.items():
            state = "subscribed" if remote.is_subscribed else "not subscribed (no track)"
            print(f"    {remote.kind:<5} {remote.track_name:<5} {sid} {state}")


def settled(room: Room, identity: str, subscribed_kinds: set[str]) -> Callable[[], bool]:
    def check() -> bool:
        other = room.get_participant(identity)
        return (
            other is not None
            and len(other.tracks) == 3
            and {p.kind for p in other.tracks.values() if p.is_subscribed} == subscribed_kinds
        )

    return check


async def main(
    base_url: str, account_sid: str, key_sid: str, secret: str, room_name: str = "client-model"
) -> None:
    signaling = base_url.replace("http", "ws", 1).rstrip("/") + "/signaling"
    rest = Client(key_sid, secret, account_sid)
    rest.video.base_url = base_url.rstrip("/")

    def tracks() -> list[Any]:
        return [
            create_local_audio_track(name="mic"),
            create_local_video_track(name="cam"),
            LocalDataTrack(name="chat"),
        ]

    alice = await connect(
        token(account_sid, key_sid, secret, "alice"), url=signaling, name=room_name, tracks=tracks()
    )
    bob = await connect(
        token(account_sid, key_sid, secret, "bob"), url=signaling, name=room_name, tracks=tracks()
    )
    try:
        rules = rest.video.v1.rooms(bob.sid).participants(bob.local_participant.sid).subscribe_rules
        updated = await asyncio.to_thread(lambda: rules.update(rules=EXCLUDE_ALICE_VIDEO))
        print(f"Server set {bob.local_participant.identity}'s rules: {updated.rules}")
        await until(settled(alice, "bob", {"audio", "video", "data"}), "alice receives bob")
        await until(settled(bob, "alice", {"audio", "data"}), "bob's rules apply")
        print()
        perspective(alice)
        print()
        perspective(bob)

        video_subscribed = asyncio.Event()

        def on_subscribed(
            track: Any, publication: RemoteTrackPublication, participant: RemoteParticipant
        ) -> None:
            if publication.kind == "video" and participant.identity == "alice":
                print(
                    f"\nBob: track_subscribed for {participant.identity}'s "
                    f"{publication.kind} {publication.track_name} {publication.track_sid}"
                )
                video_subscribed.set()

        bob.on("track_subscribed", on_subscribed)
        await asyncio.to_thread(lambda: rules.update(rules=INCLUDE_ALL))
        print(f"\nServer set {bob.local_participant.identity}'s rules: {INCLUDE_ALL}")
        await asyncio.wait_for(video_subscribed.wait(), 10)
        await until(settled(bob, "alice", {"audio", "video", "data"}), "bob receives all")
        print()
        perspective(bob)
        # The worker reports a subscription once the subscriber's answer is in: poll briefly.
        receiving = {
            sid
            for p in bob.participants.values()
            for sid, pub in p.tracks.items()
            if pub.is_subscribed
        }
        deadline = time.monotonic() + 10
        while True:
            listed = await asyncio.to_thread(
                lambda: (
                    rest.video.v1.rooms(bob.sid)
                    .participants(bob.local_participant.sid)
                    .subscribed_tracks.list()
                )
            )
            if {t.sid for t in listed} == receiving or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        print(f"\nREST SubscribedTracks of bob: {sorted(t.sid for t in listed)}")
    finally:
        await bob.disconnect()
        await alice.disconnect()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    asyncio.run(main(*sys.argv[1:6]))
