"""The SDK's ICE servers: twilio-video.js's ``iceServers`` shape (``iced``'s answer or the
application's) into aiortc's RTCIceServer, and what aiortc makes of a TURN-over-TCP URL."""

from __future__ import annotations

from aiortc import RTCIceServer
from aiortc.rtcicetransport import connection_kwargs

from atrium_video.ice import prefer_turn_transport, rtc_ice_servers


def test_iced_entries_become_rtc_ice_servers() -> None:
    servers = rtc_ice_servers(
        [
            {"urls": "stun:stun.example.com:3478"},
            {
                "urls": ["turn:10.0.0.1:3478?transport=tcp", "turn:10.0.0.1:3478?transport=udp"],
                "username": "1700000000:AC123",
                "credential": "c2VjcmV0",
            },
        ]
    )
    assert servers == [
        RTCIceServer(urls=["stun:stun.example.com:3478"]),
        RTCIceServer(
            urls=["turn:10.0.0.1:3478?transport=tcp", "turn:10.0.0.1:3478?transport=udp"],
            username="1700000000:AC123",
            credential="c2VjcmV0",
        ),
    ]
    # aiortc takes the first TURN URL, over TCP as asked.
    kwargs = connection_kwargs(servers)
    assert kwargs["turn_server"] == ("10.0.0.1", 3478)
    assert kwargs["turn_transport"] == "tcp"
    assert (kwargs["turn_username"], kwargs["turn_password"]) == ("1700000000:AC123", "c2VjcmV0")


def test_malformed_entries_are_skipped_not_fatal() -> None:
    given = RTCIceServer(urls="turns:turn.example.com:5349")
    servers = rtc_ice_servers(
        [
            "turn:not-an-object",
            {"urls": 42},
            {"urls": ["http://nope", 7]},
            {"username": "u"},
            {"urls": "turn:t.example.com", "username": 5, "credential": None},
            given,
        ]
    )
    assert servers == [RTCIceServer(urls=["turn:t.example.com"]), given]
    assert rtc_ice_servers(None) == [] == rtc_ice_servers("stun:x") == rtc_ice_servers({})


def test_a_preferred_turn_transport_goes_first_for_aiortc() -> None:
    stun = RTCIceServer(urls="stun:stun.example.com:3478")
    turn = RTCIceServer(
        urls=[
            "turn:t.example.com:3478?transport=udp",
            "turn:t.example.com:3478?transport=tcp",
            "turns:t.example.com:443",
        ],
        username="u",
        credential="p",
    )
    static_udp = RTCIceServer(urls="turn:other.example.com", username="s", credential="c")
    servers = [stun, static_udp, turn]
    tcp = prefer_turn_transport(servers, "tcp")
    assert [s.urls for s in tcp] == [
        [
            "turn:t.example.com:3478?transport=tcp",
            "turns:t.example.com:443",
            "turn:t.example.com:3478?transport=udp",
        ],
        ["stun:stun.example.com:3478"],
        ["turn:other.example.com"],
    ]
    assert (tcp[0].username, tcp[0].credential) == ("u", "p")
    kwargs = connection_kwargs(tcp)
    assert (kwargs["turn_server"], kwargs["turn_transport"]) == (("t.example.com", 3478), "tcp")
    assert kwargs["stun_server"] == ("stun.example.com", 3478)
    # UDP: the static server (default transport udp) already comes first among TURN URLs.
    udp = connection_kwargs(prefer_turn_transport(servers, "udp"))
    assert (udp["turn_server"], udp["turn_transport"]) == (("other.example.com", 3478), "udp")
