"""The gateway's REST v1 in Twilio's wire format: the real app (bootstrap()) on in-memory fakes.

No NATS, no Redis: httpx drives the ASGI app in this event loop and the fakes stand for the
services (tests/support/fakes/gateway.py), recording what the gateway asked them.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from atrium_shared import errors
from atrium_shared.accounts import Account, AccountStore, ApiKey, secret_matches
from atrium_shared.errors import AtriumError
from atrium_shared.models import ParticipantInfo, RoomInfo
from atrium_shared.participant_api import ListParticipantsRequest
from atrium_shared.room_api import CreateRoomRequest, ListRoomsRequest
from atrium_shared.settings import Settings
from atrium_shared.track_api import ListPublishedTracksRequest, SetSubscribeRulesRequest
from tests.support.fakes.gateway import FakeGateway, fake_gateway

BASE = "http://gateway.test"


@pytest.fixture
def gateway() -> FakeGateway:
    return fake_gateway()


@pytest.fixture
async def http(gateway: FakeGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(BASE) as client:
        yield client


def assert_twilio_error(response: httpx.Response, code: int, status: int) -> dict[str, Any]:
    """Twilio's error body, with the HTTP status it names."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    assert isinstance(body["message"], str) and body["message"]
    return body


async def test_updates_answer_202_as_twilios_spec(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    gateway.participants.add(room, "alice")
    kicked = await http.post(
        "/v1/Rooms/standup/Participants/alice", data={"Status": "disconnected"}
    )
    assert kicked.status_code == 202, kicked.text
    done = await http.post(f"/v1/Rooms/{room.sid}", data={"Status": "completed"})
    assert done.status_code == 202, done.text


async def test_an_in_progress_room_shows_duration_0(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    assert (await http.get(f"/v1/Rooms/{room.sid}")).json()["duration"] == 0


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


# Basic auth -----------------------------------------------------------------------------------
async def test_account_sid_and_auth_token_authenticate(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    response = await http.get("/v1/Rooms")
    assert response.status_code == 200, response.text
    assert gateway.rooms.requests[-1] == ListRoomsRequest(account_sid=gateway.account.sid)


async def test_an_api_key_and_its_secret_authenticate_as_the_account(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    key = gateway.accounts.add_api_key(gateway.account.sid)
    response = await http.get("/v1/Rooms", auth=(key.sid, key.secret.get_secret_value()))
    assert response.status_code == 200, response.text
    assert gateway.rooms.requests[-1].account_sid == gateway.account.sid  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer abc"},
        {"Authorization": "Basic"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
        {"Authorization": "Basic " + base64.b64encode(b"\xff\xfe:x").decode()},
    ],
)
async def test_missing_or_malformed_credentials_are_a_401(
    gateway: FakeGateway, headers: dict[str, str]
) -> None:
    async with gateway.client(anonymous=True) as anonymous:
        response = await anonymous.get("/v1/Rooms", headers=headers)
    assert_twilio_error(response, errors.AUTHENTICATE, 401)
    assert response.headers["www-authenticate"] == 'Basic realm="Atrium"'
    assert gateway.rooms.requests == []


async def test_every_rest_route_authenticates(gateway: FakeGateway) -> None:
    paths = gateway.app.openapi()["paths"]
    rest = [(method, path) for path, methods in paths.items() for method in methods]
    assert len(rest) == 26 and all(path.startswith("/v1/") for _, path in rest)
    async with gateway.client(anonymous=True) as anonymous:
        for method, path in rest:
            concrete = path.format(
                sid_or_name="r", room="r", participant="p", track="t", recording="RT1"
            )
            response = await anonymous.request(method, concrete)
            assert_twilio_error(response, errors.AUTHENTICATE, 401)


async def test_wrong_secrets_and_closed_accounts_are_a_401(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    sid, token = gateway.auth()
    key = gateway.accounts.add_api_key(sid)
    for username, password in ((sid, token + "x"), (key.sid, token), ("nobody", "x")):
        response = await http.get("/v1/Rooms", auth=(username, password))
        assert_twilio_error(response, errors.AUTHENTICATE, 401)
    gateway.accounts.close(sid)
    assert_twilio_error(await http.get("/v1/Rooms"), errors.AUTHENTICATE, 401)
    key_auth = (key.sid, key.secret.get_secret_value())
    assert_twilio_error(await http.get("/v1/Rooms", auth=key_auth), errors.AUTHENTICATE, 401)


def _basic(username: str, password: str) -> dict[str, str]:
    raw = f"{username}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def test_non_ascii_credentials_are_a_401_never_a_500(gateway: FakeGateway) -> None:
    sid, token = gateway.auth()
    key = gateway.accounts.add_api_key(sid)
    async with gateway.client(anonymous=True) as anonymous:
        for username, password in ((sid, "pässwörd"), (key.sid, "秘密"), ("ACnobody☃", token)):
            response = await anonymous.get("/v1/Rooms", headers=_basic(username, password))
            assert_twilio_error(response, errors.AUTHENTICATE, 401)
    assert gateway.rooms.requests == []


class _Redis:
    """What AccountStore.authenticate reads: GET."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    async def get(self, key: str) -> str | None:
        return self.values.get(key)


async def test_the_account_store_compares_non_ascii_secrets_as_bytes() -> None:
    account = Account(sid="AC" + "a" * 32, friendly_name="Acme", auth_token=SecretStr("t" * 32))
    key = ApiKey(
        sid="SK" + "b" * 32, account_sid=account.sid, friendly_name="k", secret=SecretStr("s" * 32)
    )
    store = AccountStore(
        _Redis(
            {
                f"atrium:account:{account.sid}": account.dump(),
                f"atrium:api-key:{key.sid}": key.dump(),
            }
        )
    )
    assert await store.authenticate(account.sid, "pässwörd") is None
    assert await store.authenticate(key.sid, "秘密") is None
    assert await store.authenticate(account.sid, "t" * 32) == account
    assert await store.authenticate(key.sid, "s" * 32) == account
    assert secret_matches("é", "é") and not secret_matches("e", "é")


async def test_credentials_are_checked_before_any_parameter(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    async with gateway.client(anonymous=True) as anonymous:
        for response in (
            await anonymous.get("/v1/Rooms?PageSize=0"),
            await anonymous.post("/v1/Rooms", data={"MaxParticipants": "x"}),
            await anonymous.get("/v1/Rooms/nowhere/Participants?Status=bad"),
        ):
            assert_twilio_error(response, errors.AUTHENTICATE, 401)
    assert gateway.rooms.requests == []


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "body",
    [
        b"UniqueName=caf\xe9",  # Latin-1, raw
        b"UniqueName=\xff\xfe",  # raw, UTF-8 of nothing
        b"UniqueName=caf%E9",  # percent-encoded Latin-1
        b"UniqueName=%C3",  # a truncated UTF-8 sequence
        b"Uniq%FFueName=x",  # in a name
        b"UniqueName=100%",  # an escape without its digits
        b"UniqueName=%zz",
    ],
)
async def test_a_form_that_is_not_utf8_is_a_400_and_creates_nothing(
    gateway: FakeGateway, http: httpx.AsyncClient, body: bytes
) -> None:
    response = await http.post("/v1/Rooms", content=body, headers=FORM)
    assert_twilio_error(response, errors.INVALID_PARAMETER, 400)
    assert gateway.rooms.requests == []


async def test_a_query_that_is_not_utf8_is_a_400(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    response = await http.get("/v1/Rooms?UniqueName=%FF")
    assert_twilio_error(response, errors.INVALID_PARAMETER, 400)
    assert gateway.rooms.requests == []


async def test_utf8_forms_pass_unchanged_and_credentials_come_first(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    body = b"UniqueName=caf%C3%A9+%E2%98%83&Type=go"
    response = await http.post("/v1/Rooms", content=body, headers=FORM)
    assert response.status_code == 201, response.text
    request = gateway.rooms.requests[-1]
    assert isinstance(request, CreateRoomRequest) and request.unique_name == "café ☃"
    raw = "UniqueName=café".encode()  # raw UTF-8 the parser would take as Latin-1: refused
    response = await http.post("/v1/Rooms", content=raw, headers=FORM)
    assert_twilio_error(response, errors.INVALID_PARAMETER, 400)
    assert len(gateway.rooms.requests) == 1
    async with gateway.client(anonymous=True) as anonymous:
        response = await anonymous.post("/v1/Rooms", content=b"UniqueName=\xff", headers=FORM)
    assert_twilio_error(response, errors.AUTHENTICATE, 401)


async def test_an_account_sees_only_its_own_rooms(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    mine = gateway.rooms.add(gateway.account.sid, "mine")
    other = gateway.accounts.add_account("Other")
    theirs = gateway.rooms.add(other.sid, "theirs")
    gateway.participants.add(theirs, "alice")

    listed = (await http.get("/v1/Rooms")).json()
    assert [room["sid"] for room in listed["rooms"]] == [mine.sid]
    for path in (
        f"/v1/Rooms/{theirs.sid}",
        "/v1/Rooms/theirs",
        f"/v1/Rooms/{theirs.sid}/Participants",
        f"/v1/Rooms/{theirs.sid}/Participants/alice",
        f"/v1/Rooms/{theirs.sid}/Participants/alice/PublishedTracks",
        f"/v1/Rooms/{theirs.sid}/Participants/alice/SubscribeRules",
    ):
        assert_twilio_error(await http.get(path), errors.NOT_FOUND, 404)
    theirs_auth = gateway.auth(other)
    response = await http.get(f"/v1/Rooms/{theirs.sid}", auth=theirs_auth)
    assert response.status_code == 200 and response.json()["account_sid"] == other.sid
    assert_twilio_error(
        await http.get(f"/v1/Rooms/{mine.sid}", auth=theirs_auth), errors.NOT_FOUND, 404
    )


# Rooms ----------------------------------------------------------------------------------------
ROOM_KEYS = [
    "sid", "status", "date_created", "date_updated", "account_sid", "enable_turn",
    "unique_name", "status_callback", "status_callback_method", "end_time", "duration", "type",
    "max_participants", "max_participant_duration", "max_concurrent_published_tracks",
    "record_participants_on_connect", "video_codecs", "media_region", "audio_only",
    "empty_room_timeout", "unused_room_timeout", "large_room", "url", "links",
]  # fmt: skip


async def test_create_parses_the_form_as_twilio_sends_it(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    form = {
        "UniqueName": "standup",
        "Type": "go",
        "StatusCallback": "https://hooks.example.com/room",
        "StatusCallbackMethod": "GET",
        "MaxParticipants": " 2 ",
        "RecordParticipantsOnConnect": "false",
        "TranscribeParticipantsOnConnect": "1",
        "TranscriptionsConfiguration": '{"languageCode": "en-US"}',
        "VideoCodecs": ["VP8", "H264"],
        "MediaRegion": "de1",
        "RecordingRules": '{"rules": [{"type": "include", "all": true}]}',
        "AudioOnly": "True",
        "MaxParticipantDuration": "600",
        "EmptyRoomTimeout": "1",
        "UnusedRoomTimeout": "2",
        "LargeRoom": "0",
        "EnableTurn": "true",
    }
    response = await http.post("/v1/Rooms", data=form)
    assert response.status_code == 201, response.text
    assert gateway.rooms.requests == [
        CreateRoomRequest(
            account_sid=gateway.account.sid,
            type="go",
            unique_name="standup",
            status_callback="https://hooks.example.com/room",
            status_callback_method="GET",
            max_participants=2,
            record_participants_on_connect=False,
            transcribe_participants_on_connect=True,
            transcriptions_configuration={"languageCode": "en-US"},
            video_codecs=["VP8", "H264"],
            media_region="de1",
            recording_rules={"rules": [{"type": "include", "all": True}]},
            audio_only=True,
            max_participant_duration=600,
            empty_room_timeout=1,
            unused_room_timeout=2,
            large_room=False,
            enable_turn=True,
        )
    ]
    room = response.json()
    assert list(room) == ROOM_KEYS
    assert (room["unique_name"], room["type"], room["max_participants"]) == ("standup", "go", 2)


async def test_a_room_renders_exactly_as_twilio_shows_it(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup", status_callback="https://h.example")
    body = (await http.get("/v1/Rooms/standup")).json()
    url = f"{BASE}/v1/Rooms/{room.sid}"
    assert body == {
        "sid": room.sid,
        "status": "in-progress",
        "date_created": "2024-05-01T12:01:00Z",
        "date_updated": "2024-05-01T12:01:00Z",
        "account_sid": gateway.account.sid,
        "enable_turn": True,
        "unique_name": "standup",
        "status_callback": "https://h.example",
        "status_callback_method": "POST",
        "end_time": None,
        "duration": 0,  # in progress, as Twilio shows it
        "type": "group",
        "max_participants": 50,
        "max_participant_duration": 14400,
        "max_concurrent_published_tracks": 170,
        "record_participants_on_connect": False,
        "video_codecs": ["VP8", "H264"],
        "media_region": "us1",
        "audio_only": False,
        "empty_room_timeout": 5,
        "unused_room_timeout": 5,
        "large_room": False,
        "url": url,
        "links": {
            "participants": f"{url}/Participants",
            "recordings": f"{url}/Recordings",
            "recording_rules": f"{url}/RecordingRules",
            "transcriptions": f"{url}/Transcriptions",
        },
    }
    assert list(body) == ROOM_KEYS
    assert (await http.get(f"/v1/Rooms/{room.sid}/")).json() == body  # the trailing slash


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("MaxParticipants", "many", errors.MAX_PARTICIPANTS_OUT_OF_RANGE),
        ("EmptyRoomTimeout", "1.5", errors.TIMEOUT_OUT_OF_RANGE),
        ("UnusedRoomTimeout", "-", errors.TIMEOUT_OUT_OF_RANGE),
        ("MaxParticipantDuration", "x", errors.MAX_PARTICIPANT_DURATION_OUT_OF_RANGE),
        ("RecordingRules", "{not json", errors.RECORDING_RULES_INVALID),
        ("RecordingRules", "[" * 100_000 + "]" * 100_000, errors.RECORDING_RULES_INVALID),
        (
            "RecordingRules",
            '{"rules": ' + "[" * 900 + "]" * 900 + "}",
            errors.RECORDING_RULES_INVALID,
        ),
        (
            "TranscriptionsConfiguration",
            '{"a": ' * 50_000 + "1" + "}" * 50_000,
            errors.INVALID_PARAMETER,
        ),
        ("TranscriptionsConfiguration", "[1, 2]", errors.INVALID_PARAMETER),
        ("TranscriptionsConfiguration", "{oops", errors.INVALID_PARAMETER),
        ("AudioOnly", "maybe", errors.INVALID_PARAMETER),
        ("LargeRoom", "yes", errors.INVALID_PARAMETER),
        ("EnableTurn", "2", errors.INVALID_PARAMETER),
        ("RecordParticipantsOnConnect", "no", errors.INVALID_PARAMETER),
    ],
)
async def test_a_malformed_form_value_is_a_400_with_twilios_code(
    gateway: FakeGateway, http: httpx.AsyncClient, field: str, value: str, code: int
) -> None:
    body = assert_twilio_error(await http.post("/v1/Rooms", data={field: value}), code, 400)
    assert field in body["message"]
    assert gateway.rooms.requests == []  # nothing reached the room service


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"Type": ""}, errors.ROOM_TYPE_INVALID),
        ({"StatusCallbackMethod": ""}, errors.STATUS_CALLBACK_METHOD_INVALID),
        ({"MediaRegion": ""}, errors.MEDIA_REGION_INVALID),
        ({"VideoCodecs": ""}, errors.ROOM_PARAMS_INCOMPATIBLE),
    ],
)
async def test_an_empty_choice_reaches_the_service_as_empty(
    gateway: FakeGateway, http: httpx.AsyncClient, form: dict[str, str], code: int
) -> None:
    """``Type=`` is not a missing Type: the room service gets "" and refuses it (its 400)."""
    gateway.rooms.fail_with = AtriumError(code, "refused", 400)
    assert_twilio_error(await http.post("/v1/Rooms", data=form), code, 400)
    asked = gateway.rooms.requests[-1]
    assert isinstance(asked, CreateRoomRequest)
    sent = asked.model_dump(exclude_defaults=True, exclude={"account_sid"})
    assert list(sent.values()) in ([""], [[""]])


async def test_an_empty_form_value_is_as_if_unset(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    response = await http.post("/v1/Rooms", data={"MaxParticipants": "", "AudioOnly": ""})
    assert response.status_code == 201, response.text
    asked = gateway.rooms.requests[-1]
    assert isinstance(asked, CreateRoomRequest)
    assert (asked.max_participants, asked.audio_only) == (None, None)


async def test_update_and_its_status_form(gateway: FakeGateway, http: httpx.AsyncClient) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    done = await http.post("/v1/Rooms/standup/", data={"Status": "completed"})
    assert done.status_code == 202, done.text
    assert done.json()["status"] == "completed" and done.json()["sid"] == room.sid
    # Without a body the service decides (53112), not the form parser.
    other = gateway.rooms.add(gateway.account.sid, "other")
    assert_twilio_error(await http.post(f"/v1/Rooms/{other.sid}"), errors.STATUS_INVALID, 400)
    assert gateway.rooms.requests[-1].status is None  # type: ignore[attr-defined]


async def test_the_public_url_setting_drives_every_url() -> None:
    gateway = fake_gateway(Settings(public_url="https://video.example.com/"))
    room = gateway.rooms.add(gateway.account.sid, "standup")
    async with gateway.client() as http:
        body = (await http.get("/v1/Rooms")).json()
    assert body["rooms"][0]["url"] == f"https://video.example.com/v1/Rooms/{room.sid}"
    assert body["meta"]["url"].startswith("https://video.example.com/v1/Rooms?")


# Lists and paging ---------------------------------------------------------------------------
async def test_list_meta_pages_with_the_services_cursors(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    rooms = [gateway.rooms.add(gateway.account.sid, f"room-{n}") for n in range(5)]
    first = (await http.get("/v1/Rooms", params={"PageSize": "2"})).json()
    assert [r["sid"] for r in first["rooms"]] == [rooms[4].sid, rooms[3].sid]  # newest first
    meta = first["meta"]
    assert list(meta) == [
        "page", "page_size", "first_page_url", "previous_page_url", "url", "next_page_url", "key",
    ]  # fmt: skip
    assert (meta["page"], meta["page_size"], meta["key"]) == (0, 2, "rooms")
    assert meta["url"] == meta["first_page_url"] == f"{BASE}/v1/Rooms?PageSize=2&Page=0"
    assert meta["previous_page_url"] is None
    next_query = dict(query_of(meta["next_page_url"]))
    assert (next_query["PageSize"], next_query["Page"]) == ("2", "1")

    second = (await http.get(meta["next_page_url"])).json()
    assert [r["sid"] for r in second["rooms"]] == [rooms[2].sid, rooms[1].sid]
    assert second["meta"]["page"] == 1
    assert second["meta"]["url"] == meta["next_page_url"]
    assert gateway.rooms.requests[-1].cursor == next_query["PageToken"]  # type: ignore[attr-defined]
    back = (await http.get(second["meta"]["previous_page_url"])).json()
    assert [r["sid"] for r in back["rooms"]] == [rooms[4].sid, rooms[3].sid]
    assert back["meta"]["page"] == 0

    last = (await http.get(second["meta"]["next_page_url"])).json()
    assert [r["sid"] for r in last["rooms"]] == [rooms[0].sid]
    assert last["meta"]["next_page_url"] is None


async def test_list_meta_echoes_the_filters_in_twilios_order(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    gateway.rooms.add(gateway.account.sid, "a b")
    response = await http.get(
        "/v1/Rooms",
        params={
            "DateCreatedBefore": "2030-01-01",
            "PageSize": "10",
            "UniqueName": "a b",
            "DateCreatedAfter": "2024-05-01T00:00:00Z",
            "Status": "in-progress",
        },
    )
    assert response.status_code == 200, response.text
    assert query_of(response.json()["meta"]["url"]) == [
        ("Status", "in-progress"),
        ("UniqueName", "a b"),
        ("DateCreatedAfter", "2024-05-01T00:00:00Z"),
        ("DateCreatedBefore", "2030-01-01"),
        ("PageSize", "10"),
        ("Page", "0"),
    ]
    assert "UniqueName=a%20b" in response.json()["meta"]["url"]
    asked = gateway.rooms.requests[-1]
    assert isinstance(asked, ListRoomsRequest)
    assert (asked.status, asked.unique_name, asked.page_size) == ("in-progress", "a b", 10)
    assert asked.created_on_or_after is not None and asked.created_on_or_after.year == 2024
    assert asked.created_before is not None and asked.created_before.year == 2030


@pytest.mark.parametrize(
    "query",
    [
        "PageSize=0",
        "PageSize=1001",
        "PageSize=ten",
        "Page=-1",
        "Page=x",
        "DateCreatedAfter=yesterday",
        "DateCreatedBefore=2024-13-01",
        "Status=open",
        "Status=",
    ],
)
async def test_malformed_list_parameters_are_a_400_never_a_5xx(
    gateway: FakeGateway, http: httpx.AsyncClient, query: str
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "r")
    participant = gateway.participants.add(room, "alice")
    lists = [
        "/v1/Rooms",
        f"/v1/Rooms/{room.sid}/Participants",
        f"/v1/Rooms/{room.sid}/Participants/{participant.sid}/PublishedTracks",
        f"/v1/Rooms/{room.sid}/Participants/{participant.sid}/SubscribedTracks",
    ]
    # Lists of tracks take paging only: their date and Status filters are ignored.
    takes_it = 2 if query.startswith(("Date", "Status")) else len(lists)
    for path in lists[:takes_it]:
        assert_twilio_error(await http.get(f"{path}?{query}"), errors.INVALID_PARAMETER, 400)
    for path in lists[takes_it:]:
        assert (await http.get(f"{path}?{query}")).status_code == 200


async def test_a_malformed_query_is_reported_before_the_room_is_looked_up(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    response = await http.get("/v1/Rooms/nowhere/Participants?PageSize=0")
    assert_twilio_error(response, errors.INVALID_PARAMETER, 400)
    assert gateway.rooms.requests == []
    response = await http.get("/v1/Rooms/nowhere/Participants/alice/PublishedTracks?Page=-2")
    assert_twilio_error(response, errors.INVALID_PARAMETER, 400)
    assert gateway.rooms.requests == []


# Participants ---------------------------------------------------------------------------------
PARTICIPANT_KEYS = [
    "sid", "room_sid", "account_sid", "status", "identity", "date_created", "date_updated",
    "start_time", "end_time", "duration", "url", "links",
]  # fmt: skip


def _participant_url(participant: ParticipantInfo) -> str:
    return f"{BASE}/v1/Rooms/{participant.room_sid}/Participants/{participant.sid}"


async def test_a_participant_renders_exactly_as_twilio_shows_it(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    alice = gateway.participants.add(room, "alice")
    by_identity = await http.get("/v1/Rooms/standup/Participants/alice")
    assert by_identity.status_code == 200, by_identity.text
    url = _participant_url(alice)
    assert by_identity.json() == {
        "sid": alice.sid,
        "room_sid": room.sid,
        "account_sid": gateway.account.sid,
        "status": "connected",
        "identity": "alice",
        "date_created": "2024-05-01T12:01:00Z",
        "date_updated": "2024-05-01T12:01:00Z",
        "start_time": "2024-05-01T12:01:00Z",
        "end_time": None,
        "duration": None,
        "url": url,
        "links": {
            "published_tracks": f"{url}/PublishedTracks",
            "subscribed_tracks": f"{url}/SubscribedTracks",
            "subscribe_rules": f"{url}/SubscribeRules",
            "anonymize": f"{url}/Anonymize",
        },
    }
    assert list(by_identity.json()) == PARTICIPANT_KEYS
    by_sid = await http.get(f"/v1/Rooms/{room.sid}/Participants/{alice.sid}")
    assert by_sid.json() == by_identity.json()


async def test_participants_list_by_the_rooms_state(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    live = gateway.rooms.add(gateway.account.sid, "live")
    alice = gateway.participants.add(live, "alice")
    gateway.participants.add(live, "bob", status="disconnected")
    listed = (await http.get("/v1/Rooms/live/Participants")).json()
    assert [p["identity"] for p in listed["participants"]] == ["alice"]
    assert listed["meta"]["key"] == "participants"
    # The URL names the room by SID, however the path named it.
    assert listed["meta"]["url"] == f"{BASE}/v1/Rooms/{live.sid}/Participants?PageSize=50&Page=0"
    asked = gateway.participants.requests[-1]
    assert isinstance(asked, ListParticipantsRequest)
    assert (asked.account_sid, asked.room_sid, asked.status) == (
        gateway.account.sid,
        live.sid,
        "connected",
    )

    ended = gateway.rooms.add(gateway.account.sid, "ended", status="completed")
    carol = gateway.participants.add(ended, "carol", status="disconnected")
    listed = (await http.get(f"/v1/Rooms/{ended.sid}/Participants")).json()
    assert [p["sid"] for p in listed["participants"]] == [carol.sid]

    filtered = await http.get(
        "/v1/Rooms/live/Participants", params={"Identity": "alice", "Status": "connected"}
    )
    assert [p["sid"] for p in filtered.json()["participants"]] == [alice.sid]
    assert query_of(filtered.json()["meta"]["url"])[:2] == [
        ("Status", "connected"),
        ("Identity", "alice"),
    ]


async def test_kick_a_participant(gateway: FakeGateway, http: httpx.AsyncClient) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    alice = gateway.participants.add(room, "alice")
    kicked = await http.post(
        "/v1/Rooms/standup/Participants/alice", data={"Status": "disconnected"}
    )
    assert kicked.status_code == 202, kicked.text
    assert (kicked.json()["sid"], kicked.json()["status"]) == (alice.sid, "disconnected")
    assert_twilio_error(
        await http.post("/v1/Rooms/standup/Participants/nobody", data={"Status": "disconnected"}),
        errors.NOT_FOUND,
        404,
    )
    assert_twilio_error(
        await http.post("/v1/Rooms/gone/Participants/alice", data={"Status": "disconnected"}),
        errors.NOT_FOUND,
        404,
    )


# Tracks ---------------------------------------------------------------------------------------
def alice_and_bob(gateway: FakeGateway) -> tuple[RoomInfo, ParticipantInfo, ParticipantInfo]:
    """Room ``standup``: alice and bob, alice publishing ``mic``, bob subscribed to it."""
    room = gateway.rooms.add(gateway.account.sid, "standup")
    alice, bob = gateway.participants.add(room, "alice"), gateway.participants.add(room, "bob")
    gateway.tracks.subscribe(bob, gateway.tracks.publish(alice, "mic"))
    return room, alice, bob


async def test_published_and_subscribed_tracks_render_as_twilio_shows_them(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room, alice, bob = alice_and_bob(gateway)
    (mic,) = gateway.tracks.published.values()

    published = await http.get(f"/v1/Rooms/standup/Participants/alice/PublishedTracks/{mic.sid}")
    assert published.status_code == 200, published.text
    assert published.json() == {
        "sid": mic.sid,
        "participant_sid": alice.sid,
        "room_sid": room.sid,
        "name": "mic",
        "date_created": "2024-05-01T12:01:00Z",
        "date_updated": "2024-05-01T12:01:00Z",
        "enabled": True,
        "kind": "audio",
        "url": f"{_participant_url(alice)}/PublishedTracks/{mic.sid}",
    }
    by_name = await http.get("/v1/Rooms/standup/Participants/alice/PublishedTracks/mic")
    assert by_name.json() == published.json()
    assert list(published.json()) == [
        "sid", "participant_sid", "room_sid", "name", "date_created", "date_updated", "enabled",
        "kind", "url",
    ]  # fmt: skip

    subscribed = await http.get(f"/v1/Rooms/standup/Participants/bob/SubscribedTracks/{mic.sid}")
    assert subscribed.status_code == 200, subscribed.text
    body = subscribed.json()
    assert list(body) == [
        "sid", "participant_sid", "publisher_sid", "room_sid", "name", "date_created",
        "date_updated", "enabled", "kind", "url",
    ]  # fmt: skip
    assert (body["participant_sid"], body["publisher_sid"]) == (bob.sid, alice.sid)
    assert body["url"] == f"{_participant_url(bob)}/SubscribedTracks/{mic.sid}"

    # A subscribed track is fetched by SID only.
    assert_twilio_error(
        await http.get("/v1/Rooms/standup/Participants/bob/SubscribedTracks/mic"),
        errors.NOT_FOUND,
        404,
    )


async def test_track_lists_page_under_their_own_keys(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room, alice, bob = alice_and_bob(gateway)
    (mic,) = gateway.tracks.published.values()
    cam = gateway.tracks.publish(alice, "cam", "video")

    published = (
        await http.get("/v1/Rooms/standup/Participants/alice/PublishedTracks?PageSize=1")
    ).json()
    assert [t["sid"] for t in published["published_tracks"]] == [cam.sid]
    meta = published["meta"]
    assert meta["key"] == "published_tracks"
    assert meta["url"] == f"{_participant_url(alice)}/PublishedTracks?PageSize=1&Page=0"
    assert meta["next_page_url"] is not None
    assert gateway.tracks.requests[-1] == ListPublishedTracksRequest(
        account_sid=gateway.account.sid,
        room_sid=room.sid,
        participant_sid=alice.sid,
        page_size=1,
    )
    following = (await http.get(meta["next_page_url"])).json()
    assert [t["sid"] for t in following["published_tracks"]] == [mic.sid]

    subscribed = (await http.get(f"/v1/Rooms/{room.sid}/Participants/bob/SubscribedTracks")).json()
    assert [t["publisher_sid"] for t in subscribed["subscribed_tracks"]] == [alice.sid]
    assert subscribed["meta"]["key"] == "subscribed_tracks"
    assert subscribed["meta"]["url"].startswith(f"{_participant_url(bob)}/SubscribedTracks?")
    assert (
        await http.get("/v1/Rooms/standup/Participants/carol/PublishedTracks")
    ).status_code == 404


# SubscribeRules -------------------------------------------------------------------------------
async def test_subscribe_rules_show_every_key_of_a_rule(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    alice = gateway.participants.add(room, "alice")
    body = (await http.get("/v1/Rooms/standup/Participants/alice/SubscribeRules")).json()
    assert body == {
        "participant_sid": alice.sid,
        "room_sid": room.sid,
        "date_created": None,
        "date_updated": None,
        "rules": [
            {
                "type": "include",
                "all": True,
                "publisher": None,
                "track": None,
                "kind": None,
                "priority": None,
            }
        ],
    }


async def test_update_subscribe_rules(gateway: FakeGateway, http: httpx.AsyncClient) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    alice = gateway.participants.add(room, "alice")
    rules = '[{"type": "exclude", "kind": "video"}]'
    response = await http.post(
        f"/v1/Rooms/{room.sid}/Participants/alice/SubscribeRules", data={"Rules": rules}
    )
    assert response.status_code == 200, response.text
    assert response.json()["rules"] == [
        {"type": "exclude", "all": None, "publisher": None, "track": None, "kind": "video",
         "priority": None},
    ]  # fmt: skip
    assert response.json()["date_updated"] == "2024-05-01T12:00:00Z"
    assert gateway.tracks.requests[-1] == SetSubscribeRulesRequest(
        account_sid=gateway.account.sid, room_sid=room.sid, participant_sid=alice.sid, rules=rules
    )
    # The service judges the rules (53215); the gateway passes its answer on.
    bad = await http.post(
        f"/v1/Rooms/{room.sid}/Participants/alice/SubscribeRules", data={"Rules": "{"}
    )
    assert_twilio_error(bad, errors.SUBSCRIBE_RULES_INVALID, 400)


async def test_subscribe_rules_refusals(gateway: FakeGateway, http: httpx.AsyncClient) -> None:
    p2p = gateway.rooms.add(gateway.account.sid, "p2p", type="peer-to-peer")
    gateway.participants.add(p2p, "alice")
    response = await http.post("/v1/Rooms/p2p/Participants/alice/SubscribeRules", data={})
    assert_twilio_error(response, errors.SUBSCRIPTION_UNSUPPORTED, 400)
    # Reading them is fine in any room.
    assert (await http.get("/v1/Rooms/p2p/Participants/alice/SubscribeRules")).status_code == 200
    go = gateway.rooms.add(gateway.account.sid, "go", type="go")
    gateway.participants.add(go, "alice")
    response = await http.post("/v1/Rooms/go/Participants/alice/SubscribeRules", data={})
    assert_twilio_error(response, errors.SUBSCRIPTION_UNSUPPORTED, 400)

    group = gateway.rooms.add(gateway.account.sid, "group")
    gone = gateway.participants.add(group, "bob", status="disconnected")
    response = await http.post("/v1/Rooms/group/Participants/bob/SubscribeRules", data={})
    body = assert_twilio_error(response, errors.NOT_FOUND, 404)
    assert f"/Rooms/{group.sid}/Participants/{gone.sid}/SubscribeRules" in body["message"]
    assert gateway.tracks.requests == [gateway.tracks.requests[0]]  # only the GET reached it


# Errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "failure",
    [
        AtriumError(errors.ROOM_EXISTS, "Room exists", 400),
        AtriumError(errors.ROOM_NOT_FOUND, "Room not found", 404),
        AtriumError(errors.SERVICE_UNAVAILABLE, "Service unavailable (TimeoutError)", 503),
        AtriumError(errors.INTERNAL, "Internal error", 500),
    ],
)
async def test_a_service_error_reaches_the_client_with_its_code_and_status(
    gateway: FakeGateway, http: httpx.AsyncClient, failure: AtriumError
) -> None:
    gateway.rooms.fail_with = failure
    body = assert_twilio_error(
        await http.post("/v1/Rooms", data={"UniqueName": "x"}), failure.code, failure.status
    )
    assert body["message"] == failure.message


async def test_unknown_paths_and_methods_answer_in_twilios_words(
    http: httpx.AsyncClient,
) -> None:
    body = assert_twilio_error(await http.get("/v1/Nothing/Here"), errors.NOT_FOUND, 404)
    assert body["message"] == "The requested resource /Nothing/Here was not found"
    assert_twilio_error(await http.delete("/v1/Rooms"), errors.METHOD_NOT_ALLOWED, 405)
    assert_twilio_error(await http.put("/v1/Rooms/RM123/"), errors.METHOD_NOT_ALLOWED, 405)


async def test_the_openapi_document_names_twilios_parameters(gateway: FakeGateway) -> None:
    document = gateway.app.openapi()
    listing = document["paths"]["/v1/Rooms"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "Status", "UniqueName", "DateCreatedAfter", "DateCreatedBefore", "PageSize", "Page",
        "PageToken",
    }  # fmt: skip
    tracks = document["paths"]["/v1/Rooms/{room}/Participants/{participant}/PublishedTracks"]
    assert tracks["get"]["operationId"].startswith("list_published_tracks")
    assert "application/x-www-form-urlencoded" in str(document["paths"]["/v1/Rooms"]["post"])


async def test_anonymize_answers_twilios_anonymize_resource(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    alice = gateway.participants.add(room, "alice", status="disconnected")
    response = await http.post("/v1/Rooms/standup/Participants/alice/Anonymize")
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == [
        "sid", "room_sid", "account_sid", "status", "identity", "date_created", "date_updated",
        "start_time", "end_time", "duration", "url",
    ]  # fmt: skip
    assert (body["sid"], body["identity"], body["status"]) == (alice.sid, alice.sid, "disconnected")
    assert body["url"] == f"{BASE}/v1/Rooms/{room.sid}/Participants/{alice.sid}/Anonymize"
    asked = gateway.participants.requests[-1]
    assert asked.model_dump() == {
        "account_sid": gateway.account.sid,
        "room_sid": room.sid,
        "sid_or_identity": "alice",
    }
    assert_twilio_error(
        await http.post("/v1/Rooms/standup/Participants/nobody/Anonymize"), errors.NOT_FOUND, 404
    )
