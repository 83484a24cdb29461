"""Gateway <-> media worker messages that carry a client's RSP session over NATS.

The gateway owns the WebSocket (TCMP framing, heartbeats); the worker hosting the room owns the
RSP session. Any gateway replica can carry any session: the worker always answers on the
``reply_subject`` of the latest frame it got for that session, so a client that reconnects
(``sync``) through another replica is followed there.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel

from atrium_shared.models import RoomInfo


class Caller(BaseModel):
    """Who is on the socket, from the verified Access Token."""

    account_sid: str
    identity: str
    api_key_sid: str
    token_expires_at: int


class ClientFrame(BaseModel):
    """Gateway -> worker: an RSP body from the client, or news about its socket."""

    connection_id: str
    reply_subject: str
    kind: Literal["rsp", "socket-closed"] = "rsp"
    caller: Caller | None = None  # on connect and sync
    room: RoomInfo | None = None  # on connect and sync: the room the worker must host
    body: dict[str, Any] = {}


class WorkerFrame(BaseModel):
    """Worker -> gateway: RSP bodies to send, and whether to close the socket afterwards.

    ``worker_id`` is the sender: when a live worker adopted the session of a dead one, its first
    frame moves the connection there (the gateway sends the client's frames to it from then on).
    """

    connection_id: str
    worker_id: str | None = None
    bodies: list[dict[str, Any]] = []
    close_code: int | None = None  # e.g. 1000 after `disconnected`


class AdoptRoom(BaseModel):
    """Room service -> a live media worker: host ``room``, whose worker ``from_worker`` is gone,
    and resume the sessions that worker recorded."""

    room: RoomInfo
    from_worker: str


class AdoptedRoom(BaseModel):
    room_sid: str
    sessions: int  # how many participants' sessions were resumed


class WorkerPing(BaseModel):
    worker_id: str


def session_token(worker_id: str, session_id: str) -> str:
    """The RSP ``session`` string: names the worker so any gateway can route a ``sync``."""
    return f"{worker_id}.{session_id}"


# A worker id is part of a NATS subject (``atrium.media.<id>.rsp``): tokens of these characters,
# separated by dots. Anything else in a client's session string (a wildcard, a space, a line
# break) would be a different subject, or a broken protocol line, if it were published to.
_WORKER_ID = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


def session_id_of(session: str) -> str:
    """The session id part of a client's RSP ``session`` string."""
    return session.rpartition(".")[2]


def worker_of_session(session: str) -> str | None:
    """The worker a client's RSP ``session`` string names, or None if it names none."""
    worker_id, sep, _ = session.rpartition(".")
    if not sep or _WORKER_ID.fullmatch(worker_id) is None:
        return None
    return worker_id
