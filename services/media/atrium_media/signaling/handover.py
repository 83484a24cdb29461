"""What survives a media worker: each session's signaling state, recorded after every change.

A worker that dies (kill -9) or drains leaves these records in Redis; the live worker the room
service moves the room to rebuilds each session from its record with a fresh peer connection, and
asks the client to offer again (RSP ``create-offer``). Participant and track SIDs, revisions and
subscriptions carry over, so the control plane sees the same participants with the same tracks
and nothing is published or announced twice. What cannot carry over (the peer connection, its ICE
and DTLS state, the SCTP association) is negotiated again.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from atrium_media.signaling.session import ClientTrack, ParticipantSession
from atrium_shared.models import ParticipantInfo, TrackPriority


class TrackRecord(BaseModel):
    client_id: str
    kind: str
    name: str
    enabled: bool
    sid: str | None = None
    failed: dict[str, object] | None = None
    priority: TrackPriority = "standard"


class SubscriptionRecord(BaseModel):
    track_sid: str
    kind: str
    mid: str | None = None  # the m-line it was sent on (audio/video)


class SessionRecord(BaseModel):
    session_id: str
    worker_id: str  # the worker that wrote it
    participant: ParticipantInfo
    connection_id: str | None = None
    reply_subject: str | None = None
    pc_id: str = ""
    revision: int = 0
    client_revision: int = 0
    published_revision: int = 0
    subscribed_revision: int = 0
    state_revision: int = 1
    rules_version: int = 0
    wanted: list[str] = []
    tracks: list[TrackRecord] = []
    subscriptions: list[SubscriptionRecord] = []
    extensions: list[str] = []  # the media signaling extensions granted
    quality_verbosity: tuple[int, int] = (1, 0)
    video_codecs: list[str] | None = None


class SessionStore(Protocol):
    """Where a worker keeps its sessions' records (Redis in production)."""

    async def save(self, record: SessionRecord) -> None: ...

    async def delete(self, room_sid: str, participant_sid: str, session_id: str) -> None: ...

    async def room(self, room_sid: str) -> list[SessionRecord]: ...

    async def claim(self, record: SessionRecord) -> None:
        """This worker hosts the session now: ``sync`` is routed here."""
        ...


def snapshot(session: ParticipantSession) -> SessionRecord:
    return SessionRecord(
        session_id=session.session_id,
        worker_id=session.worker_id,
        participant=session.participant,
        connection_id=session.connection_id,
        reply_subject=session.reply_subject,
        pc_id=session.pc_id,
        revision=session.revision,
        client_revision=session.client_revision,
        published_revision=session.published_revision,
        subscribed_revision=session.subscribed_revision,
        state_revision=session.state_revision,
        rules_version=session.rules_version,
        wanted=sorted(session.wanted),
        tracks=[
            TrackRecord(
                client_id=t.client_id,
                kind=t.kind,
                name=t.name,
                enabled=t.enabled,
                sid=t.sid,
                failed=t.failed,
                priority=t.priority,
            )
            for t in session.tracks.values()
        ],
        subscriptions=[
            SubscriptionRecord(
                track_sid=sub.track_sid,
                kind=sub.kind,
                mid=sub.transceiver.mid if sub.transceiver is not None else None,
            )
            for sub in session.subscriptions.values()
        ]
        + [  # still carried over from an earlier worker: kept for the next one
            SubscriptionRecord(track_sid=sid, kind="")
            for sid in sorted(session.carried - session.subscriptions.keys())
        ],
        extensions=list(session.msp.granted),
        quality_verbosity=session.quality_verbosity,
        video_codecs=session.video_codecs,
    )


def restore(record: SessionRecord, session: ParticipantSession) -> None:
    """Carry ``record`` over to ``session`` (new on this worker, with its own peer connection).

    Tracks are registered but not wired (their media arrives on the new peer connection);
    subscriptions start empty and are rebuilt from ``wanted``, on the client's old m-lines where
    its new offer still has them (``resumable``)."""
    session.connection_id = record.connection_id
    session.reply_subject = record.reply_subject
    session.pc_id = record.pc_id
    session.revision = record.revision
    session.client_revision = record.client_revision
    session.published_revision = record.published_revision
    session.subscribed_revision = record.subscribed_revision
    session.state_revision = record.state_revision
    session.rules_version = record.rules_version
    session.wanted = set(record.wanted)
    session.tracks = {
        t.client_id: ClientTrack(
            client_id=t.client_id,
            kind=t.kind,
            name=t.name,
            enabled=t.enabled,
            sid=t.sid,
            failed=t.failed,
            priority=t.priority,
        )
        for t in record.tracks
    }
    session.resumable = {
        sub.mid: sub.track_sid
        for sub in record.subscriptions
        if sub.mid is not None and sub.kind in ("audio", "video")
    }
    session.carried = {sub.track_sid for sub in record.subscriptions}
    session.quality_verbosity = record.quality_verbosity
    session.video_codecs = record.video_codecs
    session.adopted = True
