"""Rooms over raw HTTP: wire details the helper library does not exercise, and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.stack import CONTROL_PLANE, Stack
from tests.support.tenants import Tenant


@pytest.fixture
async def http(stack: Stack, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    auth = (tenant.account.sid, tenant.auth_token)
    async with httpx.AsyncClient(base_url=stack.base_url, auth=auth) as client:
        yield client


def assert_twilio_error(response: httpx.Response, code: int, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    assert body["message"]


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"MaxParticipants": "many"}, 53107),
        ({"EmptyRoomTimeout": "1.5"}, 53109),
        ({"MaxParticipantDuration": "forever"}, 53123),
        ({"MaxParticipantDuration": "10"}, 53123),
        ({"RecordParticipantsOnConnect": "yes"}, 20001),
        ({"AudioOnly": "maybe"}, 20001),
        ({"RecordingRules": "{not json"}, 53120),
        ({"RecordingRules": '[{"type":"include","all":false}]'}, 53120),
        ({"RecordingRules": '[{"type":"include","all":true,"kind":"audio"}]'}, 53120),
        ({"RecordingRules": '[{"type":"include","kind":"data"}]'}, 53120),
        ({"TranscriptionsConfiguration": "[1]"}, 20001),
        ({"VideoCodecs": "AV1"}, 53114),
        ({"MediaRegion": "mars1"}, 53115),
        ({"UniqueName": "bad\x01name"}, 53102),
        ({"UniqueName": "   "}, 53100),
        ({"Type": "Group"}, 53108),
        ({"UnusedRoomTimeout": "61"}, 53109),
    ],
)
async def test_malformed_create_parameters_are_400s(
    http: httpx.AsyncClient, form: dict[str, str], code: int
) -> None:
    assert_twilio_error(await http.post("/v1/Rooms", data=form), code, 400)


async def test_list_rejects_bad_paging_and_filters(http: httpx.AsyncClient) -> None:
    for params in (
        {"PageSize": "1001"},
        {"PageSize": "0"},
        {"PageSize": "ten"},
        {"Page": "-1"},
        {"PageToken": "garbage!"},
        {"Status": "sleeping"},
        {"DateCreatedAfter": "yesterday"},
    ):
        assert_twilio_error(await http.get("/v1/Rooms", params=params), 20001, 400)


async def test_unknown_paths_methods_and_missing_auth(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    assert_twilio_error(await http.get("/v1/Nothing"), 20404, 404)
    assert_twilio_error(await http.delete("/v1/Rooms"), 20004, 405)
    async with httpx.AsyncClient(base_url=stack.base_url) as anonymous:
        response = await anonymous.get("/v1/Rooms")
        assert_twilio_error(response, 20003, 401)
        assert response.headers["www-authenticate"].startswith("Basic")
        garbled = await anonymous.get("/v1/Rooms", headers={"Authorization": "Basic %%%"})
        assert_twilio_error(garbled, 20003, 401)


async def test_update_requires_status_completed(http: httpx.AsyncClient) -> None:
    room = (await http.post("/v1/Rooms", data={"UniqueName": "u"})).json()
    assert_twilio_error(await http.post(f"/v1/Rooms/{room['sid']}", data={}), 53112, 400)
    assert_twilio_error(
        await http.post(f"/v1/Rooms/{room['sid']}", data={"Status": "failed"}), 53112, 400
    )
    done = await http.post(f"/v1/Rooms/{room['sid']}/", data={"Status": "completed"})
    assert done.status_code == 202 and done.json()["status"] == "completed"


async def test_trailing_slash_json_shape_and_dates(http: httpx.AsyncClient) -> None:
    created = await http.post("/v1/Rooms/", data={"UniqueName": "slash", "AudioOnly": "true"})
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    room = created.json()
    assert room["video_codecs"] == []
    assert room["audio_only"] is True
    assert room["end_time"] is None and room["duration"] == 0  # in progress, as Twilio shows it
    assert len(room["date_created"]) == 20 and room["date_created"].endswith("Z")
    fetched = await http.get("/v1/Rooms/slash/")
    assert fetched.json() == room


@pytest.mark.stack(CONTROL_PLANE, public_url="https://video.example.com/")
async def test_public_url_setting_drives_urls(stack: Stack, tenant: Tenant) -> None:
    auth = (tenant.account.sid, tenant.auth_token)
    async with httpx.AsyncClient(base_url=stack.base_url, auth=auth) as client:
        room = (await client.post("/v1/Rooms")).json()
        assert room["url"] == f"https://video.example.com/v1/Rooms/{room['sid']}"
        listing = (await client.get("/v1/Rooms", params={"PageSize": 1})).json()
        assert listing["meta"]["url"].startswith("https://video.example.com/v1/Rooms?")


async def test_paging_stays_correct_while_rooms_are_created(http: httpx.AsyncClient) -> None:
    originals = [
        (await http.post("/v1/Rooms", data={"UniqueName": f"r{i}"})).json()["sid"] for i in range(9)
    ]
    seen: list[str] = []
    url: str | None = "/v1/Rooms?PageSize=4"
    counter = 0
    while url:
        page = (await http.get(url)).json()
        seen.extend(room["sid"] for room in page["rooms"])
        # New rooms arrive between page reads; they must not shift or repeat older ones.
        await asyncio.gather(
            *(http.post("/v1/Rooms", data={"UniqueName": f"new{counter}-{j}"}) for j in range(3))
        )
        counter += 1
        url = page["meta"]["next_page_url"]
    assert seen == list(reversed(originals))
    assert len(set(seen)) == len(seen)


async def test_meta_urls_keep_filters_in_twilio_order(http: httpx.AsyncClient) -> None:
    for i in range(3):
        await http.post("/v1/Rooms", data={"UniqueName": f"m{i}"})
    page = (
        await http.get(
            "/v1/Rooms",
            params={
                "DateCreatedAfter": "2020-01-01T00:00:00Z",
                "Status": "in-progress",
                "PageSize": 2,
            },
        )
    ).json()
    meta = page["meta"]
    assert meta["key"] == "rooms" and meta["page"] == 0 and meta["page_size"] == 2
    assert meta["first_page_url"].endswith(
        "/v1/Rooms?Status=in-progress&DateCreatedAfter=2020-01-01T00%3A00%3A00Z&PageSize=2&Page=0"
    )
    assert meta["previous_page_url"] is None
    assert "Page=1&PageToken=" in meta["next_page_url"]
    second = (await http.get(meta["next_page_url"])).json()
    assert second["meta"]["page"] == 1
    assert second["meta"]["next_page_url"] is None
    assert "Page=0&PageToken=" in second["meta"]["previous_page_url"]
