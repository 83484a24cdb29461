"""Media Signaling Protocol (MSP) messages for the ``active_speaker`` and ``network_quality``
extensions, as twilio-video.js 2.36.0 sends and expects them (see ``docs/media-signaling.md``).

MSP messages are JSON text, one message per data-channel message, on the data channels the
server opens with the labels it announced in ``connected.media_signaling``. Each extension has
its own channel; the client speaks first with ``{"type": "ready"}`` once it has bound the channel.

Messages the server receives (:func:`parse_client_message`):

* ``{"type": "ready"}`` -- :class:`MspReady`, once per channel.
* ``{"type": "network_quality", "reportLevel": 1, "remoteReportLevel": 0, "ice": {...},
  "send": {...}, "recv": {...}, "audio": {...}, "video": {...}}`` --
  :class:`NetworkQualityRequest`. The statistics are the client's own peer-connection summary;
  every field may be missing (Chromium 156 leaves the per-kind ones at ``bitrate: 0``).

Messages the server sends (built as models, serialised with :meth:`MspMessage.to_json`):

* :class:`ActiveSpeakerMessage` -- ``{"type": "active_speaker", "participant": "PA..."}``.
* :class:`NetworkQualityMessage` -- ``{"type": "network_quality", "local": ..., "remotes": [...]}``
  where ``local`` is a bare level (verbosity 1) or a :class:`NetworkQualityLevels` object
  (verbosity 2 and 3), and ``remotes`` is present only when remote verbosity is at least 1.

:func:`parse_server_message` reads the server's messages back (tests, the Python SDK).

Both parse functions raise only :class:`MspError` on any input: malformed UTF-8 or JSON, NaN or
infinite numbers, messages larger than :data:`MAX_MESSAGE_BYTES`, nesting too deep for the
parser, wrong types (booleans are not numbers, strings are not numbers) and unknown ``type``\\ s.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, NoReturn

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "MAX_MESSAGE_BYTES",
    "ActiveSpeakerMessage",
    "BandwidthStats",
    "ClientMessage",
    "FractionLostStats",
    "IceSummary",
    "LatencyStats",
    "MediaLevels",
    "MediaSummary",
    "MspError",
    "MspMessage",
    "MspReady",
    "NetworkQualityLevels",
    "NetworkQualityMessage",
    "NetworkQualityRequest",
    "ReceiverSummary",
    "RemoteNetworkQuality",
    "SendOrRecvStats",
    "SenderSummary",
    "ServerMessage",
    "parse_client_message",
    "parse_server_message",
]

#: Data-channel messages above this size are rejected before they are parsed. A real
#: ``network_quality`` request is well under 1 KiB.
MAX_MESSAGE_BYTES = 64 * 1024

Level = Annotated[int, Field(ge=0, le=5)]
"""A network quality level: 0 (network broken) .. 5 (excellent)."""

Verbosity = Annotated[int, Field(ge=0, le=3)]
"""A ``NetworkQualityVerbosity``: 0 none, 1 minimal, 2 moderate, 3 detailed."""

Number = Annotated[float, Field(allow_inf_nan=False)]


class MspError(ValueError):
    """An MSP message that cannot be accepted. The only exception the parse functions raise."""


class MspMessage(BaseModel):
    """Base of every MSP message model."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, frozen=True)

    def to_json(self) -> str:
        """The wire form: compact JSON with unset (``None``) fields left out."""
        return self.model_dump_json(exclude_none=True)


class _Inbound(MspMessage):
    # What the client sends carries fields we do not model (and may gain more): ignore them.
    model_config = ConfigDict(strict=True, allow_inf_nan=False, frozen=True, extra="ignore")


class _Outbound(MspMessage):
    model_config = ConfigDict(strict=True, allow_inf_nan=False, frozen=True, extra="forbid")


# Client -> server ---------------------------------------------------------------------------


class MspReady(_Inbound):
    """``{"type": "ready"}``: the client has bound this channel and is listening on it."""

    type: Literal["ready"]


class IceSummary(_Inbound):
    """The client's selected ICE candidate pair: bit rates (bps) and ``rtt`` (seconds)."""

    send: Number | None = None
    recv: Number | None = None
    availableSend: Number | None = None
    rtt: Number | None = None


class SenderSummary(_Inbound):
    """What the client sends: ``bitrate`` (bps) and the remote-inbound ``rtt``.

    The client divides the standard ``roundTripTime`` (already seconds) by 1000, so ``rtt`` here
    is not a usable figure; use :attr:`IceSummary.rtt` instead.
    """

    bitrate: Number | None = None
    rtt: Number | None = None


class ReceiverSummary(_Inbound):
    """What the client receives: ``bitrate`` (bps), ``fractionLost`` (0..1), ``jitter`` (s)."""

    bitrate: Number | None = None
    fractionLost: Number | None = None
    jitter: Number | None = None


class MediaSummary(_Inbound):
    """One media kind's sender and receiver summaries."""

    send: SenderSummary | None = None
    recv: ReceiverSummary | None = None


class NetworkQualityRequest(_Inbound):
    """The client's periodic ``network_quality`` message (its inputs and wanted verbosity).

    ``reportLevel`` is the verbosity wanted for the local participant (twilio-video.js keeps it
    in 1..3) and ``remoteReportLevel`` the one for remote participants (0..3; 0 = none).
    """

    type: Literal["network_quality"]
    reportLevel: Verbosity = 1
    remoteReportLevel: Verbosity = 0
    ice: IceSummary | None = None
    send: SenderSummary | None = None
    recv: ReceiverSummary | None = None
    audio: MediaSummary | None = None
    video: MediaSummary | None = None


ClientMessage = MspReady | NetworkQualityRequest


# Server -> client ---------------------------------------------------------------------------


class ActiveSpeakerMessage(_Outbound):
    """``{"type": "active_speaker", "participant": <participant sid>}``."""

    type: Literal["active_speaker"] = "active_speaker"
    participant: Annotated[str, Field(min_length=1, max_length=256)]


class BandwidthStats(_Outbound):
    """Bit rate actually used and estimated available (both bits per second)."""

    actual: Number | None = None
    available: Number | None = None
    level: Level | None = None


class FractionLostStats(_Outbound):
    """Share of packets lost, 0..1."""

    fractionLost: Number | None = None
    level: Level | None = None


class LatencyStats(_Outbound):
    """Jitter and round-trip time, both in seconds."""

    jitter: Number | None = None
    rtt: Number | None = None
    level: Level | None = None


class SendOrRecvStats(_Outbound):
    """The inputs behind one direction's level (verbosity 3 only)."""

    bandwidth: BandwidthStats | None = None
    fractionLost: FractionLostStats | None = None
    latency: LatencyStats | None = None


class MediaLevels(_Outbound):
    """One media kind: send and receive levels (verbosity 2), plus their stats (verbosity 3)."""

    send: Level
    recv: Level
    sendStats: SendOrRecvStats | None = None
    recvStats: SendOrRecvStats | None = None


class NetworkQualityLevels(_Outbound):
    """A participant's level with its audio/video breakdown (verbosity 2 and 3).

    At level 0 the breakdown is left out, so twilio-video.js reports ``networkQualityStats``
    as ``null`` (what its integration tests expect from Twilio).
    """

    level: Level
    audio: MediaLevels | None = None
    video: MediaLevels | None = None


class RemoteNetworkQuality(NetworkQualityLevels):
    """One entry of ``remotes``: ``{"sid": ..., "level": ...}`` plus the breakdown if asked."""

    sid: Annotated[str, Field(min_length=1, max_length=256)]


class NetworkQualityMessage(_Outbound):
    """The server's answer to a :class:`NetworkQualityRequest`."""

    type: Literal["network_quality"] = "network_quality"
    local: Level | NetworkQualityLevels | None = None
    remotes: list[RemoteNetworkQuality] | None = None


ServerMessage = ActiveSpeakerMessage | NetworkQualityMessage


# Parsing ------------------------------------------------------------------------------------


def _reject_constant(name: str) -> NoReturn:
    raise MspError(f"non-finite number {name} is not allowed")


def _decode(data: str | bytes | bytearray | memoryview) -> dict[str, Any]:
    if isinstance(data, str):
        text = data
        if len(text) > MAX_MESSAGE_BYTES:  # each character is at least one UTF-8 byte
            raise MspError(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        if len(raw) > MAX_MESSAGE_BYTES:
            raise MspError(f"message larger than {MAX_MESSAGE_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MspError("message is not valid UTF-8") from exc
    else:
        raise MspError(f"message must be text or bytes, not {type(data).__name__}")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except MspError:
        raise
    except RecursionError as exc:
        raise MspError("message is nested too deeply") from exc
    except ValueError as exc:  # JSONDecodeError, and int strings over Python's digit limit
        raise MspError(f"message is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MspError("message must be a JSON object")
    kind = value.get("type")
    if not isinstance(kind, str):
        raise MspError("message has no string 'type'")
    return value


def _validate(model: type[MspMessage], value: dict[str, Any]) -> Any:
    try:
        return model.model_validate(value)
    except RecursionError as exc:
        raise MspError("message is nested too deeply") from exc
    except ValidationError as exc:
        raise MspError(
            f"invalid {value.get('type')!r} message: {validation_problems(exc)}"
        ) from exc


def validation_problems(exc: ValidationError) -> str:
    """The first few problems of a validation error, by field path, without the input (which
    may be large or carry what a client should not see echoed)."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)[:5]
    )


def parse_with(
    models: dict[str, type[MspMessage]], data: str | bytes | bytearray | memoryview
) -> Any:
    """Parse one MSP message whose ``type`` names one of ``models``. Raises only MspError."""
    value = _decode(data)
    model = models.get(value["type"])
    if model is None:
        raise MspError(f"unknown MSP message type {value['type'][:64]!r}")
    return _validate(model, value)


_CLIENT_MODELS: dict[str, type[MspMessage]] = {
    "ready": MspReady,
    "network_quality": NetworkQualityRequest,
}

_SERVER_MODELS: dict[str, type[MspMessage]] = {
    "active_speaker": ActiveSpeakerMessage,
    "network_quality": NetworkQualityMessage,
}


def parse_client_message(data: str | bytes | bytearray | memoryview) -> ClientMessage:
    """Parse one message a client sent on an ``active_speaker`` or ``network_quality`` channel.

    Raises :class:`MspError` (and nothing else) for anything that is not a well-formed
    ``ready`` or ``network_quality`` message.
    """
    message: ClientMessage = parse_with(_CLIENT_MODELS, data)
    return message


def parse_server_message(data: str | bytes | bytearray | memoryview) -> ServerMessage:
    """Parse one ``active_speaker`` or ``network_quality`` message a server sent.

    Raises :class:`MspError` (and nothing else) for anything else.
    """
    message: ServerMessage = parse_with(_SERVER_MODELS, data)
    return message
