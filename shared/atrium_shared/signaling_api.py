"""Gateway <-> media worker messages that carry a client's RSP session over NATS.

The gateway owns the WebSocket (TCMP framing, heartbeats); the worker hosting the room owns the
RSP session. Any gateway replica can carry any session: the worker always answers on the
``reply_subject`` of the latest frame it got for that session, so a client that reconnects
(``sync``) through another replica is followed there.
"""

from __future__ import annotations

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
    """Worker -> gateway: RSP bodies to send, and whether to close the socket afterwards."""

    connection_id: str
    bodies: list[dict[str, Any]] = []
    close_code: int | None = None  # e.g. 1000 after `disconnected`


def session_token(worker_id: str, session_id: str) -> str:
    """The RSP ``session`` string: names the worker so any gateway can route a ``sync``."""
    return f"{worker_id}.{session_id}"


def worker_of_session(session: str) -> str | None:
    worker_id, sep, _ = session.rpartition(".")
    return worker_id if sep and worker_id else None
