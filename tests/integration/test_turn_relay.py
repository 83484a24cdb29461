"""A client whose UDP to the media worker is blocked joins and exchanges video through TURN over
TCP (issue 12, TURN).

The client is the Python SDK in its own process inside a network namespace whose firewall drops
every UDP packet on its only link (tests/support/netns.py); TCP passes. It takes its ICE servers
from the gateway's ``iced`` answer: the TURN URLs as docker-compose configures them, UDP then TCP
(``turn:<veth address>:<port>?transport=udp,...?transport=tcp``), with a short-lived credential of
its own, for a real coturn (``use-auth-secret``, UDP and TCP) that the test starts on the root
namespace's end of the veth. aiortc relays through one TURN URL only, so the client asks for TCP
(``connect(turn_transport="tcp")``). The media worker (a subprocess, gathering
only on that address) and the rest of the stack run in the root namespace; so does the other
participant, an SDK process that reaches the worker over plain UDP (no ICE servers).

What the test proves, each from its own evidence:

* UDP to the worker is really blocked: a STUN Binding request from inside the namespace to the
  worker's ICE host candidates (taken from the worker's SDP answer) gets no answer, and the
  namespace's firewall counted the dropped packets, among them the SDK's own direct connectivity
  checks; the same request from the root namespace is answered (the probe itself works);
* the relay was used: the inside client's nominated ICE candidate pair is its ``relay`` candidate
  (coturn's address) to the worker's host candidate, while the outside client's is host to host;
  coturn's log shows the inside client's one TURN session, over TCP from the namespace's address,
  which carried at least every packet and byte that the client's ICE transport sent and received,
  video included;
* media flows both ways: each side decodes 30 frames of the other's moving test pattern.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.support.coturn import INSTALL_HINT as COTURN_INSTALL_HINT
from tests.support.coturn import Coturn, start_coturn
from tests.support.netns import (
    NamespacesUnavailable,
    ToolMissing,
    UdpBlockedNamespace,
    udp_blocked_namespace,
)
from tests.support.sdk_peer import running_peer
from tests.support.stack import StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SECRET = "turn relay test shared secret"
FRAMES = 30


@pytest.fixture
def namespace() -> Iterator[UdpBlockedNamespace]:
    try:
        with udp_blocked_namespace() as created:
            yield created
    except ToolMissing as exc:
        pytest.fail(str(exc))
    except NamespacesUnavailable as exc:
        pytest.skip(f"network namespaces are not permitted here: {exc}")


@pytest.fixture
def coturn(namespace: UdpBlockedNamespace, tmp_path: Path) -> Iterator[Coturn]:
    if shutil.which("turnserver") is None:
        pytest.fail(f"coturn is not installed ({COTURN_INSTALL_HINT})")
    with start_coturn(tmp_path / "coturn", namespace.host_address, secret=SECRET) as server:
        yield server


async def test_a_client_without_udp_joins_and_exchanges_video_through_turn_over_tcp(
    namespace: UdpBlockedNamespace,
    coturn: Coturn,
    stacks: StackFactory,
    tenant: Tenant,
    tmp_path: Path,
) -> None:
    turn_urls = [coturn.url("udp"), coturn.url("tcp")]
    stack = await stacks.start(
        ("room", "participant", "track"),
        http_host=namespace.host_address,
        turn_urls=",".join(turn_urls),
        turn_secret=SecretStr(SECRET),
        turn_credential_ttl_seconds=600,
    )
    # Its own process: aioice's host-address hook is process-wide, and other tests of this
    # process may have pinned it to 127.0.0.1.
    stacks.spawn("media", media_host_addresses=namespace.host_address)
    room = "behind-a-udp-firewall"
    async with (
        running_peer(
            tenant.token("outside"),
            url=stack.signaling_url,
            room=room,
            expect="inside",
            ice_servers="none",
            frames=FRAMES,
            log_path=tmp_path / "outside.log",
        ) as outside,
        running_peer(
            tenant.token("inside"),
            url=stack.signaling_url,
            room=room,
            expect="outside",
            frames=FRAMES,
            log_path=tmp_path / "inside.log",
            turn_transport="tcp",
            prefix=namespace.command([]),
        ) as inside,
    ):
        # The inside client took the TURN server from `iced` (TCP first); the outside one has none.
        connected = await inside.next_report("connected", 30)
        assert connected["ice_servers"] == [coturn.url("tcp"), coturn.url("udp")], connected
        assert (await outside.next_report("connected", 30))["ice_servers"] == []

        # Video both ways: 30 decoded frames of a moving pattern each (not one frame repeated).
        for peer in (inside, outside):
            received = await peer.next_report("received", 40)
            assert (received["width"], received["height"]) == (320, 240), received
            assert received["distinct"] > FRAMES // 2, received

        # Inside: relay (coturn's relayed address) to the worker's host candidate.
        inside_pair = await inside.next_report("ice", 10)
        assert inside_pair["local"]["type"] == "relay", inside_pair
        assert inside_pair["local"]["host"] == coturn.address, inside_pair
        assert inside_pair["remote"] == {
            **inside_pair["remote"],
            "type": "host",
            "host": namespace.host_address,
        }, inside_pair
        # Its direct (host candidate) checks were tried and none succeeded.
        direct = [c for c in inside_pair["checks"] if c["local"] == "host"]
        assert direct and all(c["state"] != "SUCCEEDED" for c in direct), inside_pair
        # Outside: the plain UDP path that the namespace lacks.
        outside_pair = await outside.next_report("ice", 10)
        assert outside_pair["local"]["type"] == "host", outside_pair
        assert outside_pair["remote"]["type"] == "host", outside_pair
        inside_traffic = await inside.next_report("traffic", 10)
        assert inside_traffic["video_packets_sent"] >= FRAMES, inside_traffic
        assert inside_traffic["video_packets_received"] >= FRAMES, inside_traffic

        # A direct UDP attempt at the worker's ICE port fails from inside, works from outside.
        inside_probe = await inside.next_report("probe", 15)
        assert inside_probe["targets"], inside_probe
        assert [namespace.host_address, inside_pair["remote"]["port"]] in inside_probe["targets"]
        assert inside_probe["answered"] == [], inside_probe
        outside_probe = await outside.next_report("probe", 15)
        assert outside_probe["answered"] == outside_probe["targets"] != [], outside_probe
        dropped = namespace.dropped_udp()
        assert dropped["out"] > 0, dropped  # the SDK's and the probe's direct UDP, dropped

        await inside.leave()
        await outside.leave()

    # coturn saw the inside client's session end (its allocation deleted on leaving): it carried
    # at least everything the client's ICE transport had sent and received by its report (its
    # counts also hold STUN, TURN framing and what came after the report).
    usage = await eventually(
        lambda: [u for u in coturn.usage() if u.username.endswith(":" + tenant.account.sid)],
        timeout=15,
        message="coturn's usage line for the inside client's session",
    )
    assert len(usage) == 1, (usage, coturn.log()[-3000:])
    (session,) = usage
    over_tcp = (
        rf"session {session.session}: TCP socket closed remotely {namespace.namespace_address}:"
    )
    assert re.search(over_tcp, coturn.log()), coturn.log()[-3000:]
    carried = inside_traffic["transport"]
    assert session.received_packets >= carried["packetsSent"], (session, carried)
    assert session.received_bytes >= carried["bytesSent"], (session, carried)
    assert session.sent_packets >= carried["packetsReceived"], (session, carried)
    assert session.sent_bytes >= carried["bytesReceived"], (session, carried)
