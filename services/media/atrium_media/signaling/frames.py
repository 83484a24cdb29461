"""The RSP bodies a client sends the media worker, checked before the worker acts on any of them.

Every field the worker reads (``participant``, ``peer_connections`` with their descriptions and
trickled ICE, ``subscribe``, ``media_signaling``, ``session``) must have the type twilio-video.js
gives it; a body that does not is answered with 53003 and changes nothing: nobody is admitted, no
session is touched. Fields the worker does not read are let through as they are (clients send
more than a server needs: ``publisher``, ``bandwidth_profile``, ``media_warnings``...), so a newer
SDK is never refused for what it adds.

Shapes only: whether an SDP is something aiortc can apply is the session's question (53403), and
whether a track kind or a subscribe rule is acceptable is the track service's (53300, 53215).
Pure: no I/O, nothing from aiortc.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# twilio-video.js compares revisions as JavaScript numbers: past 2**53 they stop being integers.
Revision = Annotated[int, Field(ge=0, le=2**53 - 1)]


class _Shape(BaseModel):
    # strict: no coercion (1 is not "1", true is not 1); extra fields are the client's business.
    model_config = ConfigDict(strict=True, extra="allow")


class TrackState(_Shape):
    """An entry of ``participant.tracks``: a track the client publishes."""

    id: str
    kind: str
    name: str | None = None
    enabled: bool = True
    priority: str | None = None


class ParticipantState(_Shape):
    revision: Revision = 0
    tracks: list[TrackState] | None = None


class Description(_Shape):
    """``offer``, ``answer``, ``close``, ``rollback``...: only offers and answers carry SDP."""

    type: str
    sdp: str | None = None
    revision: Revision | None = None


class IceCandidate(_Shape):
    candidate: str
    sdpMid: str | None = None
    sdpMLineIndex: Annotated[int, Field(ge=0, le=65535)] | None = None
    usernameFragment: str | None = None


class IceState(_Shape):
    """Trickled candidates: the cumulative list for one ufrag, and whether gathering ended."""

    ufrag: str | None = None
    candidates: list[IceCandidate] | None = None
    complete: bool | None = None
    revision: Revision | None = None


class PeerConnectionState(_Shape):
    id: str | None = None
    description: Description | None = None
    ice: IceState | None = None


class Transport(_Shape):
    type: str


class ExtensionRequest(_Shape):
    transports: list[Transport] | None = None


class SubscribeRequest(_Shape):
    """``automaticSubscription``: the rules are the track service's to judge (53215)."""

    rules: list[dict[str, Any]] | None = None
    revision: Revision | None = None


class ConnectBody(_Shape):
    participant: ParticipantState | None = None
    peer_connections: list[PeerConnectionState] | None = None
    subscribe: SubscribeRequest | None = None
    media_signaling: dict[str, ExtensionRequest] | None = None


class UpdateBody(_Shape):
    participant: ParticipantState | None = None
    peer_connections: list[PeerConnectionState] | None = None


class SyncBody(_Shape):
    # The session string names the worker and the session; the gateway routed it by the first.
    session: str


class DisconnectBody(_Shape):
    pass


BODIES: dict[str, type[_Shape]] = {
    "connect": ConnectBody,
    "update": UpdateBody,
    "sync": SyncBody,
    "disconnect": DisconnectBody,
}


def body_problem(body: dict[str, Any]) -> str | None:
    """Why the worker cannot act on this RSP body, or None when it can. The reason names the
    field and never quotes its value (a body carries the client's Access Token)."""
    kind = body.get("type")
    shape = BODIES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        return "not a message a client sends the worker"
    try:
        shape.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or kind
        return f"{where}: {first['msg']}"
    return None
