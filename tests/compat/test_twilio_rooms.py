"""The official twilio package, unchanged, against Atrium's Rooms API.

Only ``client.video.base_url`` changes, as an application moving to Atrium would do.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from tests.support.durations import rest_durations
from tests.support.stack import Stack
from tests.support.tenants import Tenant, make_tenant

T = TypeVar("T")


def twilio_client(
    stack: Stack, username: str, password: str, account_sid: str | None = None
) -> Client:
    return stack.rest_as(username, password, account_sid)


async def off_loop(fn: Callable[[], T]) -> T:
    """twilio-python is synchronous; run it beside the services' event loop."""
    return await asyncio.to_thread(fn)


async def test_create_with_every_parameter_then_fetch_by_sid_and_name(
    stack: Stack, tenant: Tenant
) -> None:
    client = twilio_client(stack, tenant.account.sid, tenant.auth_token)
    rules = [{"type": "include", "all": True}]
    room = await off_loop(
        lambda: client.video.v1.rooms.create(
            unique_name="daily standup",
            type="group",
            status_callback="https://example.invalid/callbacks?x=1",
            status_callback_method="GET",
            max_participants=7,
            record_participants_on_connect=True,
            transcribe_participants_on_connect=False,
            transcriptions_configuration={"languageCode": "en-US"},
            video_codecs=["VP8", "H264"],
            media_region="ie1",
            recording_rules=rules,
            audio_only=False,
            max_participant_duration=3600,
            empty_room_timeout=7,
            unused_room_timeout=9,
            large_room=False,
            enable_turn=True,
        )
    )
    assert room.sid.startswith("RM") and len(room.sid) == 34
    assert room.account_sid == tenant.account.sid
    assert room.unique_name == "daily standup"
    assert room.status == "in-progress"
    assert room.type == "group"
    assert room.status_callback == "https://example.invalid/callbacks?x=1"
    assert room.status_callback_method == "GET"
    assert room.max_participants == 7
    assert room.record_participants_on_connect is True
    assert room.video_codecs == ["VP8", "H264"]
    assert room.media_region == "ie1"
    assert room.audio_only is False
    assert room.max_participant_duration == 3600
    assert room.empty_room_timeout == 7
    assert room.unused_room_timeout == 9
    assert room.large_room is False
    assert room.enable_turn is True
    assert room.end_time is None
    assert isinstance(room.date_created, datetime)  # parsed: Twilio's exact date format
    assert room.url == f"{stack.base_url}/v1/Rooms/{room.sid}"
    assert room.links["participants"] == f"{stack.base_url}/v1/Rooms/{room.sid}/Participants"
    assert room.links["recording_rules"].endswith(f"/Rooms/{room.sid}/RecordingRules")

    by_sid = await off_loop(lambda: client.video.v1.rooms(room.sid).fetch())
    by_name = await off_loop(lambda: client.video.v1.rooms("daily standup").fetch())
    assert by_sid.sid == by_name.sid == room.sid
    assert by_name.max_participants == 7


async def test_api_key_credentials_work_like_the_auth_token(stack: Stack, tenant: Tenant) -> None:
    client = twilio_client(stack, tenant.api_key.sid, tenant.key_secret, tenant.account.sid)
    room = await off_loop(lambda: client.video.v1.rooms.create(unique_name="with-key"))
    assert room.account_sid == tenant.account.sid
    assert room.unique_name == "with-key"


async def test_defaults_when_nothing_is_sent(stack: Stack, tenant: Tenant) -> None:
    client = twilio_client(stack, tenant.account.sid, tenant.auth_token)
    room = await off_loop(lambda: client.video.v1.rooms.create())
    assert room.unique_name == room.sid  # Twilio names an unnamed room after its SID
    assert room.type == "group"
    assert room.max_participants == 50
    assert room.status_callback is None
    assert room.status_callback_method == "POST"
    assert room.empty_room_timeout == 5 and room.unused_room_timeout == 5
    assert room.max_participant_duration == 14400


async def test_complete_sets_end_time_and_duration_and_frees_the_name(
    stack: Stack, tenant: Tenant
) -> None:
    client = twilio_client(stack, tenant.account.sid, tenant.auth_token)
    first = await off_loop(lambda: client.video.v1.rooms.create(unique_name="reused"))
    done = await off_loop(lambda: client.video.v1.rooms("reused").update(status="completed"))
    assert done.sid == first.sid
    assert done.status == "completed"
    assert isinstance(done.end_time, datetime)
    assert done.duration in rest_durations(done.date_created, done.end_time)

    second = await off_loop(lambda: client.video.v1.rooms.create(unique_name="reused"))
    assert second.sid != first.sid
    # The name resolves to the in-progress room; the completed one stays fetchable by SID.
    assert (await off_loop(lambda: client.video.v1.rooms("reused").fetch())).sid == second.sid
    old = await off_loop(lambda: client.video.v1.rooms(first.sid).fetch())
    assert old.status == "completed"


async def test_list_filters(stack: Stack, tenant: Tenant) -> None:
    client = twilio_client(stack, tenant.account.sid, tenant.auth_token)
    rooms = client.video.v1.rooms
    a = await off_loop(lambda: rooms.create(unique_name="alpha"))
    b = await off_loop(lambda: rooms.create(unique_name="beta"))
    await off_loop(lambda: rooms(a.sid).update(status="completed"))
    a2 = await off_loop(lambda: rooms.create(unique_name="alpha"))

    in_progress = await off_loop(lambda: rooms.list())
    assert [r.sid for r in in_progress] == [a2.sid, b.sid]  # default: in-progress, newest first
    completed = await off_loop(lambda: rooms.list(status="completed"))
    assert [r.sid for r in completed] == [a.sid]
    named = await off_loop(lambda: rooms.list(unique_name="alpha"))
    assert [r.sid for r in named] == [a2.sid]
    named_done = await off_loop(lambda: rooms.list(unique_name="alpha", status="completed"))
    assert [r.sid for r in named_done] == [a.sid]

    future = datetime.now(UTC) + timedelta(hours=1)
    past = datetime.now(UTC) - timedelta(hours=1)
    assert await off_loop(lambda: rooms.list(date_created_after=future)) == []
    after_past = await off_loop(lambda: rooms.list(date_created_after=past))
    assert {r.sid for r in after_past} == {a2.sid, b.sid}
    assert await off_loop(lambda: rooms.list(date_created_before=past)) == []
    before_future = await off_loop(lambda: rooms.list(date_created_before=future))
    assert {r.sid for r in before_future} == {a2.sid, b.sid}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert len(await off_loop(lambda: rooms.list(date_created_after=today))) == 2


async def test_paging_across_several_pages(stack: Stack, tenant: Tenant) -> None:
    client = twilio_client(stack, tenant.account.sid, tenant.auth_token)
    rooms = client.video.v1.rooms
    created = [
        await off_loop(functools.partial(rooms.create, unique_name=f"room-{i}")) for i in range(7)
    ]
    listed = await off_loop(lambda: rooms.list(page_size=3))
    assert [r.sid for r in listed] == [r.sid for r in reversed(created)]

    page = await off_loop(lambda: rooms.page(page_size=3))
    second = await off_loop(page.next_page)
    third = await off_loop(second.next_page)
    pages = [[r.sid for r in p] for p in (page, second, third)]
    assert pages == [[r.sid for r in reversed(created)][i : i + 3] for i in (0, 3, 6)]
    assert await off_loop(third.next_page) is None
    back = await off_loop(second.previous_page)
    assert [r.sid for r in back] == pages[0]
    assert len(await off_loop(lambda: rooms.list(limit=5))) == 5


async def test_every_error_code_reaches_the_client(stack: Stack, tenant: Tenant) -> None:
    client = twilio_client(stack, tenant.account.sid, tenant.auth_token)
    rooms = client.video.v1.rooms
    await off_loop(lambda: rooms.create(unique_name="taken"))

    cases: list[tuple[int, int, Callable[[], Any]]] = [
        (20404, 404, lambda: rooms("RM" + "0" * 32).fetch()),
        (20404, 404, lambda: rooms("no such room").fetch()),
        (53101, 400, lambda: rooms.create(unique_name="x" * 129)),
        (53107, 400, lambda: rooms.create(max_participants=51)),
        (53107, 400, lambda: rooms.create(max_participants=0)),
        (53107, 400, lambda: rooms.create(type="group-small", max_participants=5)),
        (53108, 400, lambda: rooms.create(type="conference")),
        (53109, 400, lambda: rooms.create(empty_room_timeout=61)),
        (53109, 400, lambda: rooms.create(unused_room_timeout=0)),
        (53110, 400, lambda: rooms.create(status_callback_method="PUT")),
        (53111, 400, lambda: rooms.create(status_callback="not a url")),
        (53111, 400, lambda: rooms.create(status_callback="ftp://example.com/x")),
        (53112, 400, lambda: rooms("taken").update(status="in-progress")),
        (53113, 400, lambda: rooms.create(unique_name="taken")),
        (53120, 400, lambda: rooms.create(recording_rules=[])),
        (53120, 400, lambda: rooms.create(recording_rules=[{"all": True}])),
        (53124, 400, lambda: rooms.create(type="peer-to-peer", audio_only=True)),
    ]
    for code, status, request in cases:
        with pytest.raises(TwilioRestException) as caught:
            await off_loop(request)
        assert (caught.value.code, caught.value.status) == (code, status), caught.value.msg

    completed = await off_loop(lambda: rooms.create(unique_name="finished"))
    await off_loop(lambda: rooms(completed.sid).update(status="completed"))
    with pytest.raises(TwilioRestException) as caught:
        await off_loop(lambda: rooms(completed.sid).update(status="completed"))
    assert (caught.value.code, caught.value.status) == (53112, 400)


async def test_bad_credentials_are_20003(stack: Stack, tenant: Tenant) -> None:
    for username, password in [
        (tenant.account.sid, "wrong"),
        (tenant.api_key.sid, "wrong"),
        ("AC" + "1" * 32, tenant.auth_token),
        ("nobody", "nothing"),
    ]:
        client = twilio_client(stack, username, password, tenant.account.sid)
        requests: list[Callable[[], Any]] = [
            client.video.v1.rooms.create,
            client.video.v1.rooms("anything").fetch,
        ]
        for request in requests:
            with pytest.raises(TwilioRestException) as caught:
                await off_loop(request)
            assert (caught.value.code, caught.value.status) == (20003, 401)
        # A list page that is not a 200 surfaces as the library's generic page error.
        with pytest.raises(TwilioException, match="401"):
            await off_loop(client.video.v1.rooms.list)


async def test_accounts_see_only_their_own_rooms(stack: Stack, tenant: Tenant, redis: Any) -> None:
    other = await make_tenant(redis, "tenant-b")
    mine = twilio_client(stack, tenant.account.sid, tenant.auth_token)
    theirs = twilio_client(stack, other.account.sid, other.auth_token)
    room = await off_loop(lambda: mine.video.v1.rooms.create(unique_name="private"))
    # The same unique name is free in another account.
    their_room = await off_loop(lambda: theirs.video.v1.rooms.create(unique_name="private"))
    assert their_room.sid != room.sid

    for request in (
        lambda: theirs.video.v1.rooms(room.sid).fetch(),
        lambda: theirs.video.v1.rooms(room.sid).update(status="completed"),
    ):
        with pytest.raises(TwilioRestException) as caught:
            await off_loop(request)
        assert (caught.value.code, caught.value.status) == (20404, 404)
    assert [r.sid for r in await off_loop(lambda: theirs.video.v1.rooms.list())] == [their_room.sid]
    assert (await off_loop(lambda: mine.video.v1.rooms(room.sid).fetch())).status == "in-progress"


async def test_recording_rules_are_validated_and_stored(stack: Stack, tenant: Tenant) -> None:
    client = twilio_client(stack, tenant.account.sid, tenant.auth_token)
    # The object form some helper libraries send ({"rules": [...]}) is accepted too.
    rules = {"rules": [{"type": "exclude", "kind": "video"}, {"type": "include", "all": "true"}]}
    room = await off_loop(lambda: client.video.v1.rooms.create(recording_rules=json.dumps(rules)))
    assert room.sid.startswith("RM")
