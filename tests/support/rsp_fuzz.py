"""Hypothesis strategies for RSP bodies: well formed ones as twilio-video.js sends them, arbitrary
JSON, and well formed ones with one part replaced, removed or added (the mutations a broken or
hostile client makes). Used by the frame checker's unit tests and by the signaling fuzz test.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

T = TypeVar("T")

SDP = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
    "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\n"
)

# Short text, with the characters that break careless code: NUL, line breaks, NATS wildcards
# and separators, quotes, non-BMP characters, lone surrogates are not JSON so they are left out.
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"])
    | st.sampled_from("\0\r\n.*> "),
    max_size=24,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)

revisions = st.integers(min_value=0, max_value=50)
kinds = st.sampled_from(["audio", "video", "data"])


@st.composite
def tracks(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": draw(st.uuids().map(str) | text),
        "kind": draw(kinds),
        "name": draw(text),
        "enabled": draw(st.booleans()),
        "priority": draw(st.sampled_from(["low", "standard", "high"]) | text),
    }


@st.composite
def participants(draw: st.DrawFn) -> dict[str, Any]:
    return {"revision": draw(revisions), "tracks": draw(st.lists(tracks(), max_size=3))}


@st.composite
def descriptions(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["offer", "answer", "close", "rollback"]))
    description: dict[str, Any] = {"type": kind, "revision": draw(revisions)}
    if kind in ("offer", "answer"):
        description["sdp"] = draw(st.sampled_from([SDP, "v=0\r\n", "v=0\r\nm=audio x\r\n"]) | text)
    return description


@st.composite
def candidates(draw: st.DrawFn) -> dict[str, Any]:
    line = draw(
        st.sampled_from(
            [
                "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host",
                "candidate:2 1 tcp 1 10.0.0.1 9 typ host tcptype passive",
                "candidate:x",
                "",
            ]
        )
        | text
    )
    return {
        "candidate": line,
        "sdpMid": draw(st.none() | st.sampled_from(["0", "1"])),
        "sdpMLineIndex": draw(st.none() | st.integers(min_value=0, max_value=3)),
    }


@st.composite
def ice(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "ufrag": draw(st.sampled_from(["abcd", "efgh"]) | text),
        "candidates": draw(st.lists(candidates(), max_size=3)),
        "complete": draw(st.booleans()),
        "revision": draw(revisions),
    }


@st.composite
def peer_connections(draw: st.DrawFn) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": draw(st.sampled_from(["pc1", "pc2"]))}
    if draw(st.booleans()):
        entry["description"] = draw(descriptions())
    if draw(st.booleans()):
        entry["ice"] = draw(ice())
    return entry


def connect_bodies(token: str, room: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.just("connect"),
            "version": st.just(2),
            "token": st.just(token),
            "name": st.just(room),
            "participant": participants(),
            "peer_connections": st.lists(peer_connections(), max_size=2),
            "subscribe": st.just({"rules": [{"type": "include", "all": True}], "revision": 1})
            | st.just({"rules": [{"type": "exclude", "all": True}], "revision": 1}),
            "media_signaling": st.just(
                {"active_speaker": {"transports": [{"type": "data-channel"}]}}
            )
            | st.just({}),
            "format": st.just("unified"),
        }
    )


def update_bodies(session: str = "w.s") -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.just("update"), "version": st.just(2), "session": st.just(session)},
        optional={
            "participant": participants(),
            "peer_connections": st.lists(peer_connections(), max_size=2),
        },
    )


def sync_bodies(token: str, session: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            "type": st.just("sync"),
            "version": st.just(2),
            "token": st.just(token),
            "session": st.just(session) | text,
            "participant": participants(),
            "peer_connections": st.lists(peer_connections(), max_size=1),
        }
    )


def disconnect_bodies(session: str = "w.s") -> st.SearchStrategy[dict[str, Any]]:
    return st.just({"type": "disconnect", "version": 2, "session": session})


def ice_bodies(token: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"type": st.just("ice"), "version": st.just(1), "edge": st.just("roaming")},
        optional={"token": st.just(token) | json_values},
    )


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside a JSON value (the value itself is ``()``)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def _remove(value: Any, path: tuple[Any, ...]) -> Any:
    head, rest = path[0], path[1:]
    if rest:
        return _replace(value, (head,), _remove(value[head], rest))
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != head}
    return [v for i, v in enumerate(value) if i != head]


@st.composite
def mutated(draw: st.DrawFn, bodies: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A body of ``bodies`` with one place (never ``type``, so it still goes where it would)
    replaced by any JSON value or removed, and sometimes an extra member."""
    body = draw(bodies)
    places = [p for p in _paths(body) if p and p != ("type",)]
    if places:
        path = draw(st.sampled_from(places))
        if draw(st.booleans()):
            body = cast(dict[str, Any], _remove(body, path))
        else:
            body = cast(dict[str, Any], _replace(body, path, draw(json_values)))
    if draw(st.booleans()):
        body = {**body, draw(text): draw(json_values)} | {"type": body["type"]}
    return body


def examples(strategy: st.SearchStrategy[T], count: int, run: int = 0) -> list[T]:
    """``count`` values of ``strategy``, the same ones on every run for the same ``run`` (a
    failing fuzz run is repeatable), drawn by Hypothesis's own engine (edge cases included)."""
    drawn: list[T] = []

    @seed(run)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: T) -> None:
        drawn.append(value)

    collect()
    return drawn[:count]
