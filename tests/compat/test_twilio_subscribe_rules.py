"""The official twilio package, unchanged, against Atrium's SubscribeRules resource.

Participants are real: two Python SDK clients connect through the whole real-time stack.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from atrium_video import Room, connect
from tests.support.rules import as_returned
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.stack(REALTIME)]
T = TypeVar("T")

INCLUDE_ALL = as_returned(type="include", all=True)


async def off_loop(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def join(stack: Stack, tenant: Tenant, identity: str, room: str) -> Room:
    return await connect(tenant.token(identity), url=stack.signaling_url, name=room, audio=True)


def client_for(stack: Stack, tenant: Tenant) -> Client:
    return stack.rest_as(tenant.api_key.sid, tenant.key_secret, tenant.account.sid)


async def test_fetch_default_update_and_every_invalid_case(stack: Stack, tenant: Tenant) -> None:
    alice = await join(stack, tenant, "alice", "rules-compat")
    bob = await join(stack, tenant, "bob", "rules-compat")
    try:
        room = client_for(stack, tenant).video.v1.rooms(alice.sid)
        rules = room.participants(bob.local_participant.sid).subscribe_rules
        fetched = await off_loop(rules.fetch)
        assert fetched.participant_sid == bob.local_participant.sid
        assert fetched.room_sid == alice.sid
        assert fetched.rules == [INCLUDE_ALL]
        assert fetched.date_created is None and fetched.date_updated is None

        wanted = [
            {"type": "include", "all": True},
            {"type": "exclude", "publisher": "alice", "kind": "video"},
        ]
        updated = await off_loop(lambda: rules.update(rules=wanted))
        assert updated.participant_sid == bob.local_participant.sid
        expected = [INCLUDE_ALL, as_returned(type="exclude", publisher="alice", kind="video")]
        assert updated.rules == expected
        assert isinstance(updated.date_created, datetime)
        assert isinstance(updated.date_updated, datetime)
        # By identity in the path too, and the change sticks.
        by_identity = room.participants("bob").subscribe_rules
        assert (await off_loop(by_identity.fetch)).rules == expected

        invalid: list[Any] = [
            [],
            [{"type": "include", "all": True, "kind": "audio"}],
            [{"type": "include", "all": False}],
            '[{"type": "include", "kind": "audio", "kind": "video"}]',
            [{"type": "include", "kind": "screen"}],
            [{"type": "include", "kind": "audio"}] * 21,
            [{"kind": "audio"}],
            {"rules": []},
            "not json",
        ]
        for value in invalid:
            with pytest.raises(TwilioRestException) as caught:
                await off_loop(lambda v=value: rules.update(rules=v))  # type: ignore[misc]
            assert (caught.value.status, caught.value.code) == (400, 53215), value
            assert "Invalid Subscribe Rule(s)" in caught.value.msg
            assert (await off_loop(rules.fetch)).rules == expected, value

        # twilio-java's shape: an object with a `rules` key; and "all": "true".
        java = await off_loop(
            lambda: rules.update(rules={"rules": [{"type": "include", "all": "true"}]})
        )
        assert java.rules == [INCLUDE_ALL]

        # Missing Rules altogether (twilio-python cannot omit it: raw HTTP).
        async with httpx.AsyncClient(auth=(tenant.account.sid, tenant.auth_token)) as http:
            url = (
                f"{stack.base_url}/v1/Rooms/{alice.sid}/Participants/"
                f"{bob.local_participant.sid}/SubscribeRules"
            )
            missing = await http.post(url, data={})
            assert missing.status_code == 400 and missing.json() == {
                "code": 53215,
                "message": "Invalid Subscribe Rule(s)",
                "more_info": "https://www.twilio.com/docs/errors/53215",
                "status": 400,
            }
            raw = (await http.get(url + "/")).json()
            assert set(raw) == {
                "participant_sid",
                "room_sid",
                "date_created",
                "date_updated",
                "rules",
            }
            assert raw["rules"] == [INCLUDE_ALL]
            assert raw["date_created"].endswith("Z")
            gone = await http.post(
                url.replace(bob.local_participant.sid, "PA" + "0" * 32),
                data={"Rules": json.dumps([{"type": "include", "all": True}])},
            )
            assert gone.status_code == 404 and gone.json()["code"] == 20404
    finally:
        await bob.disconnect()
        await alice.disconnect()
