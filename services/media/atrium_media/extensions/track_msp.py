"""MSP messages of the ``track_priority``, ``track_switch_off``, ``render_hints`` and
``publisher_hints`` extensions, and the RSP ``bandwidth_profile`` they come with, as
twilio-video.js 2.36.0 sends and expects them (``lib/signaling/v2/{trackprioritysignaling,
trackswitchoffsignaling,renderhintssignaling,publisherhintsignaling}.js``, byte-identical in
twilio/twilio-video.js master; see ``docs/bandwidth-allocation.md``).

The framing is that of :mod:`.msp`: JSON text, one message per data-channel message, on the channel
the server announced for the extension, the client speaking first with ``{"type": "ready"}``.

Client -> server (:func:`parse_track_client_message`):

* ``track_priority``: ``{"type": "track_priority", "track": "MT...", "subscribe": "high"}`` --
  :class:`TrackPriorityRequest`. ``subscribe`` is ``null`` when the app clears the subscriber
  priority (``RemoteVideoTrack.setPriority(null)``). Re-sent for every track when the channel
  becomes ready again.
* ``render_hints``: ``{"type": "render_hints", "subscriber": {"id": 3, "hints": [{"track":
  "MT...", "enabled": false, "render_dimensions": {"height": 90, "width": 160}}]}}`` --
  :class:`RenderHintsRequest`. Each hint carries only what changed. The client sends nothing more
  until the server answers (or 2 s pass, then it re-sends everything, doubling the wait).
* ``publisher_hints`` (answer): ``{"type": "publisher_hints", "id": 42, "hints": [{"track":
  "MT...", "result": "OK"}]}`` -- :class:`PublisherHintsResponse`.
* ``client_reset``: ``{"type": "client_reset", "track": "MT...", "id": 7}`` --
  :class:`ClientResetRequest`: the publisher replaced the track's source and went back to its
  default encodings, so earlier hints no longer hold.

Server -> client (models serialised with :meth:`~.msp.MspMessage.to_json`;
:func:`parse_track_server_message` reads them back):

* :class:`TrackSwitchOffMessage` -- ``{"type": "track_switch_off", "off": [...], "on": [...]}``.
* :class:`RenderHintsReply` -- ``{"type": "render_hints", "subscriber": {"id": 3, "hints":
  [{"track": "MT...", "result": "OK"}]}}``; the client reads only the results.
* :class:`PublisherHintsMessage` -- ``{"type": "publisher_hints", "publisher": {"id": 42, "hints":
  [{"track": "MT...", "encodings": [{"layer_index": 0, "enabled": true}]}]}}``. The client ignores
  it unless ``publisher.id`` is truthy, so ids start at 1.

Both parse functions raise only :class:`~.msp.MspError`. Not wired into the worker yet.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from atrium_media.extensions.msp import (
    MspMessage,
    MspReady,
    Number,
    _Inbound,
    _Outbound,
    parse_with,
    validation_problems,
)

__all__ = [
    "BandwidthProfileBody",
    "BandwidthProfileError",
    "ClientResetRequest",
    "LayerEncoding",
    "PublisherHint",
    "PublisherHintResult",
    "PublisherHints",
    "PublisherHintsMessage",
    "PublisherHintsResponse",
    "RenderDimensionsBody",
    "RenderDimensionsByPriority",
    "RenderHint",
    "RenderHintResult",
    "RenderHintResults",
    "RenderHints",
    "RenderHintsReply",
    "RenderHintsRequest",
    "TrackClientMessage",
    "TrackPriorityRequest",
    "TrackServerMessage",
    "TrackSwitchOffMessage",
    "VideoBandwidthProfileBody",
    "parse_bandwidth_profile",
    "parse_track_client_message",
    "parse_track_server_message",
]

Priority = Literal["low", "standard", "high"]
TrackSid = Annotated[str, Field(min_length=1, max_length=256)]
MessageId = Annotated[int, Field(ge=0, le=2**53)]
# Render hint results twilio-video's tests use: "OK", "INVALID_RENDER_HINT" (any other value is only
# logged by the client). Publisher hint results the client sends: "OK", "INVALID_HINT",
# "COULD_NOT_APPLY_HINT", "UNKNOWN_TRACK", "REQUEST_SKIPPED".
HintResult = Annotated[str, Field(min_length=1, max_length=64)]


# Client -> server ---------------------------------------------------------------------------


class TrackPriorityRequest(_Inbound):
    """The subscriber-side priority of one subscribed track (None: cleared, fall back to the
    publish priority)."""

    type: Literal["track_priority"]
    track: TrackSid
    subscribe: Priority | None = None


class RenderDimensionsBody(_Inbound):
    """``{"height": h, "width": w}`` in CSS pixels. twilio-video sends what the app or the video
    element gives it; zero (an element not laid out) and negative values mean "smallest"."""

    height: Number
    width: Number


class RenderHint(_Inbound):
    """One track's change: ``enabled`` (switch on/off) and/or ``render_dimensions``."""

    track: TrackSid
    enabled: bool | None = None
    render_dimensions: RenderDimensionsBody | None = None


class RenderHints(_Inbound):
    id: MessageId
    hints: Annotated[list[RenderHint], Field(max_length=1024)]


class RenderHintsRequest(_Inbound):
    type: Literal["render_hints"]
    subscriber: RenderHints


class PublisherHintResult(_Inbound):
    track: TrackSid
    result: HintResult


class PublisherHintsResponse(_Inbound):
    """The publisher's answer to a :class:`PublisherHintsMessage` with the same ``id``."""

    type: Literal["publisher_hints"]
    id: MessageId
    hints: Annotated[list[PublisherHintResult], Field(max_length=1024)]


class ClientResetRequest(_Inbound):
    type: Literal["client_reset"]
    track: TrackSid
    id: MessageId


TrackClientMessage = (
    MspReady
    | TrackPriorityRequest
    | RenderHintsRequest
    | PublisherHintsResponse
    | ClientResetRequest
)


# Server -> client ---------------------------------------------------------------------------


class TrackSwitchOffMessage(_Outbound):
    """Tracks the server stopped (``off``) and resumed (``on``) forwarding to this subscriber.
    twilio-video fires ``trackSwitchedOff`` / ``trackSwitchedOn`` for each."""

    type: Literal["track_switch_off"] = "track_switch_off"
    off: list[TrackSid] | None = None
    on: list[TrackSid] | None = None


class RenderHintResult(_Outbound):
    track: TrackSid
    result: HintResult = "OK"


class RenderHintResults(_Outbound):
    id: MessageId
    hints: list[RenderHintResult]


class RenderHintsReply(_Outbound):
    """The answer to a :class:`RenderHintsRequest` (``subscriber.id`` echoed); it releases the
    client's next batch of hints."""

    type: Literal["render_hints"] = "render_hints"
    subscriber: RenderHintResults


class LayerEncoding(_Outbound):
    """One simulcast encoding: ``layer_index`` counts from the lowest resolution (0)."""

    layer_index: Annotated[int, Field(ge=0, le=15)]
    enabled: bool


class PublisherHint(_Outbound):
    track: TrackSid
    encodings: list[LayerEncoding]


class PublisherHints(_Outbound):
    id: Annotated[int, Field(ge=1, le=2**53)]  # the client drops the message when id is falsy
    hints: list[PublisherHint]


class PublisherHintsMessage(_Outbound):
    """Which encodings a publisher should keep sending, per published video track."""

    type: Literal["publisher_hints"] = "publisher_hints"
    publisher: PublisherHints


TrackServerMessage = TrackSwitchOffMessage | RenderHintsReply | PublisherHintsMessage


_CLIENT_MODELS: dict[str, type[MspMessage]] = {
    "ready": MspReady,
    "track_priority": TrackPriorityRequest,
    "render_hints": RenderHintsRequest,
    "publisher_hints": PublisherHintsResponse,
    "client_reset": ClientResetRequest,
}

_SERVER_MODELS: dict[str, type[MspMessage]] = {
    "track_switch_off": TrackSwitchOffMessage,
    "render_hints": RenderHintsReply,
    "publisher_hints": PublisherHintsMessage,
}


def parse_track_client_message(data: str | bytes | bytearray | memoryview) -> TrackClientMessage:
    """Parse one message a client sent on a ``track_priority``, ``track_switch_off``,
    ``render_hints`` or ``publisher_hints`` channel. Raises only :class:`MspError`."""
    message: TrackClientMessage = parse_with(_CLIENT_MODELS, data)
    return message


def parse_track_server_message(data: str | bytes | bytearray | memoryview) -> TrackServerMessage:
    """Parse one ``track_switch_off``, ``render_hints`` or ``publisher_hints`` message a server
    sent (tests, the Python SDK). Raises only :class:`MspError`."""
    message: TrackServerMessage = parse_with(_SERVER_MODELS, data)
    return message


# RSP bandwidth_profile ----------------------------------------------------------------------


class BandwidthProfileError(ValueError):
    """A ``bandwidth_profile`` in ``connect`` / ``update`` that cannot be accepted."""


class RenderDimensionsByPriority(_Inbound):
    high: RenderDimensionsBody | None = None
    standard: RenderDimensionsBody | None = None
    low: RenderDimensionsBody | None = None


class VideoBandwidthProfileBody(_Inbound):
    """``bandwidth_profile.video`` as twilio-video builds it (``util/index.js``
    ``createBandwidthProfileVideoPayload``): only the options the app set are present.

    ``clientTrackSwitchOffControl`` and ``contentPreferencesMode`` are not sent; the client
    requests ``render_hints`` instead (see
    :meth:`~atrium_media.extensions.allocation.VideoBandwidthProfile.from_rsp`).
    """

    mode: Literal["grid", "collaboration", "presentation"] | None = None
    max_subscription_bandwidth: Number | None = None  # bits per second
    active_speaker_priority: Priority | None = None
    max_tracks: Number | None = None
    render_dimensions: RenderDimensionsByPriority | None = None
    track_switch_off: Literal["detected", "predicted", "disabled"] | None = None


class BandwidthProfileBody(_Inbound):
    video: VideoBandwidthProfileBody | None = None


def parse_bandwidth_profile(value: Any) -> BandwidthProfileBody:
    """Validate the ``bandwidth_profile`` field of an RSP ``connect`` or ``update`` body (already
    decoded JSON). Raises only :class:`BandwidthProfileError`."""
    if not isinstance(value, dict):
        raise BandwidthProfileError("bandwidth_profile must be a JSON object")
    try:
        return BandwidthProfileBody.model_validate(value)
    except RecursionError as exc:
        raise BandwidthProfileError("bandwidth_profile is nested too deeply") from exc
    except ValidationError as exc:
        raise BandwidthProfileError(
            f"invalid bandwidth_profile: {validation_problems(exc)}"
        ) from exc
