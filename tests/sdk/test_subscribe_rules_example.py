"""sdk/python/examples/subscribe_rules.py, run as a subprocess against the real stack: it prints
both perspectives of Twilio's client-model example with the real SIDs."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.support.processes import run_to_end
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.stack(REALTIME)]

EXAMPLE = Path(__file__).resolve().parents[2] / "sdk" / "python" / "examples" / "subscribe_rules.py"
SID = r"[A-Z]{2}[0-9a-f]{32}"


def section(lines: list[str], title: str) -> list[str]:
    """The lines of the first perspective block starting with ``title``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    block = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


async def test_the_client_model_example_runs_and_prints_real_sids(
    stack: Stack, tenant: Tenant
) -> None:
    code, text = await run_to_end(
        sys.executable,
        str(EXAMPLE),
        stack.base_url,
        tenant.account.sid,
        tenant.api_key.sid,
        tenant.key_secret,
        "client-model",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        timeout=90,
    )
    assert code == 0, text
    lines = text.splitlines()

    client = stack.rest(tenant)
    (room,) = await asyncio.to_thread(
        lambda: (
            client.video.v1.rooms.list(unique_name="client-model", status="in-progress")
            or client.video.v1.rooms.list(unique_name="client-model", status="completed")
        )
    )
    people = await asyncio.to_thread(
        lambda: client.video.v1.rooms(room.sid).participants.list(status="disconnected")
    )
    by_identity = {p.identity: p.sid for p in people}
    assert set(by_identity) == {"alice", "bob"}, text

    alice = section(lines, "From alice's side")
    assert alice[0] == f"From alice's side (room {room.sid}):"
    assert alice[1] == f"  LocalParticipant alice {by_identity['alice']}: 3 publications"
    assert alice[5] == f"  RemoteParticipant bob {by_identity['bob']}: 3 publications"
    assert all(
        line.endswith(" subscribed") and re.search(" MT[0-9a-f]{32} ", line) for line in alice[6:9]
    ), text
    alice_tracks = {line.split()[2] for line in alice[2:5]}
    assert all(re.fullmatch(SID, sid) and sid.startswith("MT") for sid in alice_tracks)

    bob = section(lines, "From bob's side")
    assert bob[1] == f"  LocalParticipant bob {by_identity['bob']}: 3 publications"
    assert bob[5] == f"  RemoteParticipant alice {by_identity['alice']}: 3 publications"
    states = {line.split()[0]: (line.split()[2], " ".join(line.split()[3:])) for line in bob[6:9]}
    assert states["audio"][1] == "subscribed" and states["data"][1] == "subscribed"
    assert states["video"][1] == "not subscribed (no track)"
    assert {sid for sid, _ in states.values()} == alice_tracks
    video_sid = states["video"][0]
    assert f"Bob: track_subscribed for alice's video cam {video_sid}" in lines, text
    after = section(
        lines[lines.index(f"Bob: track_subscribed for alice's video cam {video_sid}") :],
        "From bob's side",
    )
    assert all(line.endswith(" subscribed") and "not" not in line for line in after[6:9]), text
    rest_line = next(line for line in lines if line.startswith("REST SubscribedTracks of bob"))
    assert sorted(alice_tracks) == re.findall(SID, rest_line)
