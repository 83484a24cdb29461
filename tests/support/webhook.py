"""A webhook receiver speaking just enough HTTP/1.1; checks every request's X-Twilio-Signature
with twilio's own RequestValidator."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

from twilio.request_validator import RequestValidator

from atrium_cli.embedded import free_port


@dataclass
class Received:
    method: str
    target: str  # path and query as requested
    params: dict[str, str]  # form body (POST) or query (GET)
    headers: dict[str, str]
    valid_signature: bool
    status: int | None = None  # what the webhook answered

    @property
    def room_sid(self) -> str:
        return self.params.get("RoomSid", "")

    @property
    def sequence(self) -> int:
        return int(self.params.get("SequenceNumber", "-1"))

    @property
    def timestamp(self) -> datetime:
        """``Timestamp``, which Twilio sends in UTC with milliseconds (2025-10-27T18:16:01.876Z)."""
        text = self.params["Timestamp"]
        assert _TIMESTAMP.fullmatch(text), text
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)

    def event_params(self) -> dict[str, str]:
        """The parameters without ``Timestamp`` (the one that changes from run to run)."""
        return {name: value for name, value in self.params.items() if name != "Timestamp"}


_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def in_milliseconds(moment: datetime) -> datetime:
    """``moment`` as a callback's ``Timestamp`` shows it: truncated to the millisecond."""
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


Responder = Callable[[Received], Awaitable[int]]


async def always_ok(_: Received) -> int:
    return 200


@dataclass
class Webhook:
    auth_token: str
    port: int = field(default_factory=free_port)
    respond: Responder = always_ok
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def for_room(self, room_sid: str) -> list[Received]:
        return [r for r in self.received if r.room_sid == room_sid]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode("latin-1").split()
            if len(request_line) < 2:
                return
            method, target = request_line[0], request_line[1]
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            url = self.base + target
            if method == "POST":
                params = dict(parse_qsl(body.decode(), keep_blank_values=True))
                signed: dict[str, str] = params
            else:
                params = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
                signed = {}
            valid = RequestValidator(self.auth_token).validate(
                url, signed, headers.get("x-twilio-signature", "")
            )
            request = Received(method, target, params, headers, valid)
            self.received.append(request)
            status = await self.respond(request)
            request.status = status
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
