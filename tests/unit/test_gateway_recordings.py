"""The gateway's Recordings, RecordingRules and RecordingSettings in Twilio's wire format, and the
signed download of recordings kept in the local folder: the real app (bootstrap()) on in-memory
fakes (tests/support/fakes/gateway.py), no NATS, no Redis.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from atrium_gateway.adapters import nats
from atrium_gateway.bootstrap import bootstrap
from atrium_gateway.media_links import MediaUrlSigner
from atrium_shared import errors, subjects
from atrium_shared.errors import FORBIDDEN, AtriumError
from atrium_shared.models import ParticipantInfo, RoomInfo
from atrium_shared.recording_api import (
    DeleteRecordingRequest,
    FetchRecordingRequest,
    FetchRecordingRulesRequest,
    FetchRecordingSettingsRequest,
    ListRecordingsRequest,
    RecordingInfo,
    RecordingMediaRequest,
    RecordingRule,
    RecordingRules,
    SetRecordingRulesRequest,
    SetRecordingSettingsRequest,
    StorageTarget,
)
from atrium_shared.rpc import reply_handler
from atrium_shared.settings import Settings
from tests.support.fakes.gateway import FakeGateway, fake_gateway
from tests.support.replies import failure

BASE = "http://gateway.test"
SECRET = "media-url-secret-for-tests"


@pytest.fixture
def recordings_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    return folder


@pytest.fixture
def gateway(recordings_dir: Path) -> FakeGateway:
    return fake_gateway(Settings(recordings_dir=str(recordings_dir), media_url_secret=SECRET))


@pytest.fixture
async def http(gateway: FakeGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(BASE) as client:
        yield client


@pytest.fixture
async def anonymous(gateway: FakeGateway) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway.client(BASE, anonymous=True) as client:
        yield client


def assert_twilio_error(response: httpx.Response, code: int, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body == {
        "code": code,
        "message": body["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return body


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


class Recorded:
    """Room ``standup``: alice publishes ``mic`` and ``cam``, each recorded (completed)."""

    def __init__(self, gateway: FakeGateway, account_sid: str | None = None) -> None:
        account_sid = account_sid or gateway.account.sid
        self.room: RoomInfo = gateway.rooms.add(account_sid, "standup")
        self.alice: ParticipantInfo = gateway.participants.add(self.room, "alice")
        self.mic_track = gateway.tracks.publish(self.alice, "mic")
        self.cam_track = gateway.tracks.publish(self.alice, "cam", "video")
        self.mic: RecordingInfo = gateway.recordings.add(self.mic_track)
        self.cam: RecordingInfo = gateway.recordings.add(self.cam_track)


def write_media(folder: Path, recording: RecordingInfo, content: bytes) -> Path:
    path = folder / recording.media_key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# The resources --------------------------------------------------------------------------------
RECORDING_KEYS = [
    "account_sid", "status", "date_created", "sid", "source_sid", "size", "url", "type",
    "duration", "container_format", "codec", "grouping_sids", "track_name", "offset",
    "media_external_location", "status_callback", "status_callback_method", "links",
]  # fmt: skip
ROOM_RECORDING_KEYS = [
    *[key for key in RECORDING_KEYS if not key.startswith("status_callback")][:-1],
    "room_sid",
    "links",
]


async def test_an_account_recording_renders_exactly_as_twilio_shows_it(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    gateway.recordings.recordings[recorded.mic.sid] = recorded.mic.model_copy(
        update={"status_callback": "https://hooks.example.com/rec"}
    )
    response = await http.get(f"/v1/Recordings/{recorded.mic.sid}")
    assert response.status_code == 200, response.text
    url = f"{BASE}/v1/Recordings/{recorded.mic.sid}"
    assert response.json() == {
        "account_sid": gateway.account.sid,
        "status": "completed",
        "date_created": "2024-05-01T12:01:00Z",
        "sid": recorded.mic.sid,
        "source_sid": recorded.mic_track.sid,
        "size": 4096,
        "url": url,
        "type": "audio",
        "duration": 7,
        "container_format": "mka",
        "codec": "OPUS",
        "grouping_sids": {"room_sid": recorded.room.sid, "participant_sid": recorded.alice.sid},
        "track_name": "mic",
        "offset": 1250,
        "media_external_location": None,
        "status_callback": "https://hooks.example.com/rec",
        "status_callback_method": "POST",
        "links": {"media": f"{url}/Media"},
    }
    assert list(response.json()) == RECORDING_KEYS
    assert gateway.recordings.requests[-1] == FetchRecordingRequest(
        account_sid=gateway.account.sid, recording_sid=recorded.mic.sid
    )


async def test_a_room_recording_renders_exactly_as_twilio_shows_it(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    path = f"/v1/Rooms/{recorded.room.sid}/Recordings/{recorded.cam.sid}"
    response = await http.get(path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ROOM_RECORDING_KEYS
    assert body["url"] == f"{BASE}{path}"
    assert body["links"] == {"media": f"{BASE}{path}/Media"}
    assert (body["room_sid"], body["type"], body["container_format"], body["codec"]) == (
        recorded.room.sid,
        "video",
        "mkv",
        "VP8",
    )
    assert gateway.recordings.requests[-1] == FetchRecordingRequest(
        account_sid=gateway.account.sid, recording_sid=recorded.cam.sid, room_sid=recorded.room.sid
    )
    # The same recording under the account's path, with its status callback and no room_sid.
    account_view = (await http.get(f"/v1/Recordings/{recorded.cam.sid}")).json()
    assert {k: v for k, v in body.items() if k not in ("url", "links", "room_sid")} == {
        k: v
        for k, v in account_view.items()
        if k not in ("url", "links", "status_callback", "status_callback_method")
    }


async def test_a_recording_in_progress_shows_zeros_until_its_file_is_there(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    writing = gateway.recordings.add(
        recorded.mic_track, status="processing", codec=None, duration=None, size=None
    )
    unnamed = gateway.recordings.add(recorded.cam_track, track_name="")
    body = (await http.get(f"/v1/Recordings/{writing.sid}")).json()
    assert (body["status"], body["size"], body["duration"], body["codec"]) == (
        "processing",
        0,
        0,
        None,
    )
    # A track without a name is named by its SID, as Twilio does.
    assert (await http.get(f"/v1/Recordings/{unnamed.sid}")).json()["track_name"] == (
        recorded.cam_track.sid
    )


async def test_an_s3_recording_shows_its_external_location(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    location = f"s3://bucket/{recorded.mic.media_key}"
    stored = gateway.recordings.add(
        recorded.mic_track,
        storage=StorageTarget(kind="s3", bucket="bucket"),
        media_external_location=location,
    )
    body = (await http.get(f"/v1/Recordings/{stored.sid}")).json()
    assert body["media_external_location"] == location


# Lists ----------------------------------------------------------------------------------------
async def test_recordings_list_and_page_under_the_recordings_key(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    first = (await http.get("/v1/Recordings", params={"PageSize": "1"})).json()
    assert list(first) == ["recordings", "meta"]
    assert [r["sid"] for r in first["recordings"]] == [recorded.cam.sid]  # newest first
    assert list(first["recordings"][0]) == RECORDING_KEYS
    meta = first["meta"]
    assert (meta["key"], meta["page"], meta["page_size"]) == ("recordings", 0, 1)
    assert meta["url"] == meta["first_page_url"] == f"{BASE}/v1/Recordings?PageSize=1&Page=0"
    assert meta["previous_page_url"] is None
    second = (await http.get(meta["next_page_url"])).json()
    assert [r["sid"] for r in second["recordings"]] == [recorded.mic.sid]
    assert second["meta"]["page"] == 1 and second["meta"]["next_page_url"] is None
    back = (await http.get(second["meta"]["previous_page_url"])).json()
    assert [r["sid"] for r in back["recordings"]] == [recorded.cam.sid]

    in_room = (await http.get(f"/v1/Rooms/{recorded.room.sid}/Recordings")).json()
    assert [r["sid"] for r in in_room["recordings"]] == [recorded.cam.sid, recorded.mic.sid]
    assert list(in_room["recordings"][0]) == ROOM_RECORDING_KEYS
    assert in_room["meta"]["key"] == "recordings"
    assert in_room["meta"]["url"] == (
        f"{BASE}/v1/Rooms/{recorded.room.sid}/Recordings?PageSize=50&Page=0"
    )
    assert gateway.recordings.requests[-1] == ListRecordingsRequest(
        account_sid=gateway.account.sid, room_sid=recorded.room.sid
    )


async def test_account_list_filters_reach_the_service_and_are_echoed(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("MediaType", "audio"),
        ("DateCreatedBefore", "2030-01-01"),
        ("GroupingSid", recorded.room.sid),
        ("Status", "completed"),
        ("GroupingSid", recorded.alice.sid),
        ("SourceSid", recorded.mic_track.sid),
        ("DateCreatedAfter", "2024-05-01T00:00:00Z"),
        ("PageSize", "100"),
    ]
    response = await http.get("/v1/Recordings", params=params)
    assert response.status_code == 200, response.text
    assert [r["sid"] for r in response.json()["recordings"]] == [recorded.mic.sid]
    asked = gateway.recordings.requests[-1]
    assert isinstance(asked, ListRecordingsRequest)
    assert asked.model_dump(exclude={"created_after", "created_before"}) == {
        "account_sid": gateway.account.sid,
        "room_sid": None,
        "status": "completed",
        "source_sid": recorded.mic_track.sid,
        "grouping_sids": [recorded.room.sid, recorded.alice.sid],
        "media_type": "audio",
        "page_size": 100,
        "cursor": None,
    }
    assert asked.created_after is not None and asked.created_after.year == 2024
    assert asked.created_before is not None and asked.created_before.year == 2030
    assert query_of(response.json()["meta"]["url"]) == [
        ("Status", "completed"),
        ("SourceSid", recorded.mic_track.sid),
        ("GroupingSid", recorded.room.sid),
        ("GroupingSid", recorded.alice.sid),
        ("MediaType", "audio"),
        ("DateCreatedAfter", "2024-05-01T00:00:00Z"),
        ("DateCreatedBefore", "2030-01-01"),
        ("PageSize", "100"),
        ("Page", "0"),
    ]
    videos = (await http.get("/v1/Recordings", params={"MediaType": "video"})).json()
    assert [r["sid"] for r in videos["recordings"]] == [recorded.cam.sid]


async def test_room_list_filters_reach_the_service(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    response = await http.get(
        f"/v1/Rooms/{recorded.room.sid}/Recordings",
        params={"SourceSid": recorded.cam_track.sid, "Status": "completed", "PageSize": "1000"},
    )
    assert [r["sid"] for r in response.json()["recordings"]] == [recorded.cam.sid]
    asked = gateway.recordings.requests[-1]
    assert isinstance(asked, ListRecordingsRequest)
    assert (asked.room_sid, asked.status, asked.source_sid, asked.page_size) == (
        recorded.room.sid,
        "completed",
        recorded.cam_track.sid,
        1000,
    )
    assert query_of(response.json()["meta"]["url"])[:2] == [
        ("Status", "completed"),
        ("SourceSid", recorded.cam_track.sid),
    ]


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/Recordings", "Status=recording"),
        ("/v1/Recordings", "Status="),
        ("/v1/Recordings", "MediaType=screen"),
        ("/v1/Recordings", "SourceSid=MT123"),
        ("/v1/Recordings", "GroupingSid=RM123"),
        ("/v1/Recordings", f"GroupingSid=RM{'a' * 32}&GroupingSid=nope"),
        ("/v1/Recordings", "PageSize=101"),  # 100 at most for this list
        ("/v1/Recordings", "PageSize=0"),
        ("/v1/Recordings", "Page=-1"),
        ("/v1/Recordings", "DateCreatedAfter=yesterday"),
        ("/v1/Rooms/{room}/Recordings", "Status=done"),
        ("/v1/Rooms/{room}/Recordings", "SourceSid=x"),
        ("/v1/Rooms/{room}/Recordings", "PageSize=1001"),
        ("/v1/Rooms/{room}/Recordings", "DateCreatedBefore=2024-13-01"),
    ],
)
async def test_malformed_list_parameters_are_a_400_never_a_5xx(
    gateway: FakeGateway, http: httpx.AsyncClient, path: str, query: str
) -> None:
    recorded = Recorded(gateway)
    response = await http.get(f"{path.format(room=recorded.room.sid)}?{query}")
    body = assert_twilio_error(response, errors.INVALID_PARAMETER, 400)
    assert "nope" not in body["message"]  # values are not echoed
    assert gateway.recordings.requests == []


async def test_a_room_list_takes_101_per_page_and_a_unique_name(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    response = await http.get("/v1/Rooms/standup/Recordings", params={"PageSize": "101"})
    assert response.status_code == 200, response.text
    assert len(response.json()["recordings"]) == 2
    # The URLs name the room by SID, however the path named it.
    assert response.json()["meta"]["url"].startswith(
        f"{BASE}/v1/Rooms/{recorded.room.sid}/Recordings?"
    )
    assert_twilio_error(await http.get("/v1/Rooms/nowhere/Recordings"), errors.NOT_FOUND, 404)


# Isolation, 404s, delete ------------------------------------------------------------------------
async def test_an_account_never_sees_another_accounts_recordings(
    gateway: FakeGateway, http: httpx.AsyncClient, recordings_dir: Path
) -> None:
    mine = Recorded(gateway)
    other = gateway.accounts.add_account("Other")
    theirs = Recorded(gateway, other.sid)
    write_media(recordings_dir, theirs.mic, b"theirs")

    listed = (await http.get("/v1/Recordings")).json()
    assert {r["sid"] for r in listed["recordings"]} == {mine.mic.sid, mine.cam.sid}
    # Their room's SID lists nothing of theirs.
    in_their_room = (await http.get(f"/v1/Rooms/{theirs.room.sid}/Recordings")).json()
    assert in_their_room["recordings"] == []
    for method, path in (
        ("GET", f"/v1/Recordings/{theirs.mic.sid}"),
        ("DELETE", f"/v1/Recordings/{theirs.mic.sid}"),
        ("GET", f"/v1/Recordings/{theirs.mic.sid}/Media"),
        ("GET", f"/v1/Rooms/{theirs.room.sid}/Recordings/{theirs.mic.sid}"),
        ("DELETE", f"/v1/Rooms/{theirs.room.sid}/Recordings/{theirs.mic.sid}"),
        ("GET", f"/v1/Rooms/{theirs.room.sid}/Recordings/{theirs.mic.sid}/Media"),
        ("GET", f"/v1/Rooms/{theirs.room.sid}/RecordingRules"),
        ("POST", f"/v1/Rooms/{theirs.room.sid}/RecordingRules"),
    ):
        rules = {"Rules": '[{"type": "include", "all": true}]'} if method == "POST" else None
        response = await http.request(method, path, data=rules)
        assert_twilio_error(response, errors.NOT_FOUND, 404)
    assert gateway.recordings.recordings[theirs.mic.sid].status == "completed"  # not deleted

    # A recording under another room's path is not found either.
    path = f"/v1/Rooms/{mine.room.sid}/Recordings/{theirs.mic.sid}"
    assert_twilio_error(await http.get(path), errors.NOT_FOUND, 404)
    other_room = gateway.rooms.add(gateway.account.sid, "other-room")
    path = f"/v1/Rooms/{other_room.sid}/Recordings/{mine.mic.sid}"
    assert_twilio_error(await http.get(path), errors.NOT_FOUND, 404)
    # Their own credentials see it.
    theirs_auth = gateway.auth(other)
    response = await http.get(f"/v1/Recordings/{theirs.mic.sid}", auth=theirs_auth)
    assert response.status_code == 200 and response.json()["account_sid"] == other.sid


async def test_unknown_recordings_are_a_404(gateway: FakeGateway, http: httpx.AsyncClient) -> None:
    recorded = Recorded(gateway)
    unknown = "RT" + "0" * 32
    for path in (
        f"/v1/Recordings/{unknown}",
        f"/v1/Recordings/{unknown}/Media",
        "/v1/Recordings/not-a-sid",
        f"/v1/Rooms/{recorded.room.sid}/Recordings/{unknown}",
    ):
        assert_twilio_error(await http.get(path), errors.NOT_FOUND, 404)


async def test_delete_is_a_204_and_the_recording_stays_listed_as_deleted(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    response = await http.delete(f"/v1/Recordings/{recorded.mic.sid}")
    assert response.status_code == 204 and response.content == b""
    assert gateway.recordings.requests[-1] == DeleteRecordingRequest(
        account_sid=gateway.account.sid, recording_sid=recorded.mic.sid
    )
    assert (await http.get(f"/v1/Recordings/{recorded.mic.sid}")).json()["status"] == "deleted"
    deleted = (await http.get("/v1/Recordings", params={"Status": "deleted"})).json()
    assert [r["sid"] for r in deleted["recordings"]] == [recorded.mic.sid]
    assert_twilio_error(
        await http.get(f"/v1/Recordings/{recorded.mic.sid}/Media"), errors.NOT_FOUND, 404
    )

    path = f"/v1/Rooms/{recorded.room.sid}/Recordings/{recorded.cam.sid}"
    response = await http.delete(path)
    assert response.status_code == 204 and response.content == b""
    assert gateway.recordings.requests[-1] == DeleteRecordingRequest(
        account_sid=gateway.account.sid, recording_sid=recorded.cam.sid, room_sid=recorded.room.sid
    )


@pytest.mark.parametrize(
    "failure",
    [
        AtriumError(errors.SERVICE_UNAVAILABLE, "Service unavailable (TimeoutError)", 503),
        AtriumError(errors.INVALID_PARAMETER, "PageToken is invalid", 400),
    ],
)
async def test_the_recording_services_errors_reach_the_client(
    gateway: FakeGateway, http: httpx.AsyncClient, failure: AtriumError
) -> None:
    gateway.recordings.fail_with = failure
    body = assert_twilio_error(await http.get("/v1/Recordings"), failure.code, failure.status)
    assert body["message"] == failure.message


async def test_the_rooms_links_resolve(gateway: FakeGateway, http: httpx.AsyncClient) -> None:
    recorded = Recorded(gateway)
    links = (await http.get(f"/v1/Rooms/{recorded.room.sid}")).json()["links"]
    listed = await http.get(links["recordings"])
    assert listed.status_code == 200, listed.text
    assert {r["sid"] for r in listed.json()["recordings"]} == {recorded.mic.sid, recorded.cam.sid}
    rules = await http.get(links["recording_rules"])
    assert rules.status_code == 200, rules.text
    assert rules.json()["room_sid"] == recorded.room.sid
    recording = listed.json()["recordings"][0]
    assert (await http.get(recording["url"])).status_code == 200
    assert (await http.get(recording["links"]["media"])).status_code == 302


# Media ----------------------------------------------------------------------------------------
async def _location(http: httpx.AsyncClient, path: str) -> str:
    response = await http.get(path)
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    assert response.json() == {"redirect_to": location}  # for clients that do not follow it
    return location


async def test_media_redirects_to_a_signed_url_that_downloads_the_file_without_auth(
    gateway: FakeGateway,
    http: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    recordings_dir: Path,
) -> None:
    recorded = Recorded(gateway)
    audio = os.urandom(300_000)
    write_media(recordings_dir, recorded.mic, audio)
    write_media(recordings_dir, recorded.cam, b"\x1aE\xdf\xa3video")

    before = time.time()
    location = await _location(http, f"/v1/Recordings/{recorded.mic.sid}/Media")
    assert gateway.recordings.requests[-1] == RecordingMediaRequest(
        account_sid=gateway.account.sid, recording_sid=recorded.mic.sid, expires_in=600
    )
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        f"{BASE}/v1/Recordings/{recorded.mic.sid}/Media/file"
    )
    query = dict(query_of(location))
    assert set(query) == {"account", "expires", "signature"}
    assert query["account"] == gateway.account.sid
    assert before + 600 - 1 <= int(query["expires"]) <= time.time() + 600
    assert len(query["signature"]) == 64

    download = await anonymous.get(location)
    assert download.status_code == 200, download.text
    assert download.content == audio
    assert download.headers["content-type"] == "audio/x-matroska"
    assert download.headers["content-length"] == str(len(audio))
    assert f'filename="{recorded.mic.sid}.mka"' in download.headers["content-disposition"]
    # Players seek with ranges; HEAD tells the size.
    ranged = await anonymous.get(location, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == audio[10:20]
    head = await anonymous.head(location)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(audio))

    room_path = f"/v1/Rooms/{recorded.room.sid}/Recordings/{recorded.cam.sid}/Media"
    video_location = await _location(http, room_path)
    assert gateway.recordings.requests[-1] == RecordingMediaRequest(
        account_sid=gateway.account.sid,
        recording_sid=recorded.cam.sid,
        room_sid=recorded.room.sid,
        expires_in=600,
    )
    video = await anonymous.get(video_location)
    assert video.status_code == 200 and video.content == b"\x1aE\xdf\xa3video"
    assert video.headers["content-type"] == "video/x-matroska"


async def test_an_s3_recording_redirects_to_its_presigned_url(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    stored = gateway.recordings.add(
        recorded.mic_track, storage=StorageTarget(kind="s3", bucket="bucket")
    )
    location = await _location(http, f"/v1/Recordings/{stored.sid}/Media")
    assert location.startswith(f"https://bucket.s3.amazonaws.com/{stored.media_key}?")
    assert "X-Amz-Expires=600" in location


async def test_a_recording_still_being_written_has_no_media(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    recorded = Recorded(gateway)
    writing = gateway.recordings.add(recorded.mic_track, status="processing")
    response = await http.get(f"/v1/Recordings/{writing.sid}/Media")
    assert_twilio_error(response, errors.NOT_FOUND, 404)


def _with(url: str, **changes: str) -> str:
    query = dict(query_of(url))
    query.update(changes)
    return str(httpx.URL(url.partition("?")[0], params=query))


async def test_an_expired_or_tampered_url_is_a_403_as_s3s_would_be(
    gateway: FakeGateway,
    http: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    recordings_dir: Path,
) -> None:
    recorded = Recorded(gateway)
    write_media(recordings_dir, recorded.mic, b"audio")
    write_media(recordings_dir, recorded.cam, b"video")
    signer = MediaUrlSigner(SECRET.encode())
    account = gateway.account.sid
    good = await _location(http, f"/v1/Recordings/{recorded.mic.sid}/Media")
    assert (await anonymous.get(good)).status_code == 200

    expired = signer.url(BASE, account, recorded.mic.sid, now=time.time() - 601)
    other = gateway.accounts.add_account("Other")
    query = dict(query_of(good))
    refused = [
        expired,
        _with(good, signature="0" * 64),
        _with(good, signature=query["signature"][:-1]),
        _with(good, signature="é" * 64),
        _with(good, expires=str(int(query["expires"]) + 3600)),  # a longer life, same signature
        _with(good, expires="\uff11\uff12"),  # digits, not ASCII ones
        _with(good, account=other.sid),
        good.replace(recorded.mic.sid, recorded.cam.sid),  # another recording, same signature
        good.partition("?")[0],  # no signature at all
        MediaUrlSigner(b"another secret").url(BASE, account, recorded.mic.sid, time.time()),
    ]
    for url in refused:
        response = await anonymous.get(url)
        body = assert_twilio_error(response, FORBIDDEN, 403)
        assert body["message"] == "The media URL is invalid or has expired"
    # Basic credentials do not stand in for a signature.
    assert_twilio_error(await http.get(good.partition("?")[0]), FORBIDDEN, 403)


async def test_a_well_signed_url_of_a_recording_that_is_gone_is_a_404(
    gateway: FakeGateway,
    http: httpx.AsyncClient,
    anonymous: httpx.AsyncClient,
    recordings_dir: Path,
) -> None:
    recorded = Recorded(gateway)
    media = write_media(recordings_dir, recorded.mic, b"audio")
    url = await _location(http, f"/v1/Recordings/{recorded.mic.sid}/Media")
    # The file went missing (the folder is not mounted here, say).
    media.unlink()
    assert_twilio_error(await anonymous.get(url), errors.NOT_FOUND, 404)
    write_media(recordings_dir, recorded.mic, b"audio")
    assert (await anonymous.get(url)).status_code == 200
    # Deleted: the URL stops working at once, before it expires.
    assert (await http.delete(f"/v1/Recordings/{recorded.mic.sid}")).status_code == 204
    body = assert_twilio_error(await anonymous.get(url), errors.NOT_FOUND, 404)
    assert recorded.mic.sid in body["message"]


async def test_a_signed_url_only_ever_serves_its_own_accounts_recording(
    gateway: FakeGateway, anonymous: httpx.AsyncClient, recordings_dir: Path
) -> None:
    """A URL signed for an account but naming another account's recording (what a leaked
    secret, or a bug issuing URLs, would give) still finds nothing: the recording service is
    asked as the URL's account."""
    other = gateway.accounts.add_account("Other")
    theirs = Recorded(gateway, other.sid)
    write_media(recordings_dir, theirs.mic, b"theirs")
    signer = MediaUrlSigner(SECRET.encode())
    url = signer.url(BASE, gateway.account.sid, theirs.mic.sid, time.time())
    assert_twilio_error(await anonymous.get(url), errors.NOT_FOUND, 404)
    own = signer.url(BASE, other.sid, theirs.mic.sid, time.time())
    assert (await anonymous.get(own)).content == b"theirs"


@pytest.mark.parametrize(
    "media_key",
    ["../outside.mka", "a/../../outside.mka", "{root}/../outside.mka", "/etc/passwd", "", "."],
)
async def test_a_media_key_never_leads_out_of_the_recordings_folder(
    gateway: FakeGateway,
    anonymous: httpx.AsyncClient,
    recordings_dir: Path,
    media_key: str,
) -> None:
    (recordings_dir.parent / "outside.mka").write_bytes(b"not yours")
    recorded = Recorded(gateway)
    key = media_key.format(root=recordings_dir)
    escaping = gateway.recordings.add(recorded.mic_track, media_key=key)
    url = MediaUrlSigner(SECRET.encode()).url(BASE, gateway.account.sid, escaping.sid, time.time())
    assert_twilio_error(await anonymous.get(url), errors.NOT_FOUND, 404)


async def test_a_symlink_out_of_the_folder_is_not_followed(
    gateway: FakeGateway, anonymous: httpx.AsyncClient, recordings_dir: Path
) -> None:
    outside = recordings_dir.parent / "outside.mka"
    outside.write_bytes(b"not yours")
    recorded = Recorded(gateway)
    link = recordings_dir / recorded.mic.media_key
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    url = MediaUrlSigner(SECRET.encode()).url(
        BASE, gateway.account.sid, recorded.mic.sid, time.time()
    )
    assert_twilio_error(await anonymous.get(url), errors.NOT_FOUND, 404)


async def test_replicas_accept_each_others_urls_only_with_a_shared_secret(
    tmp_path: Path,
) -> None:
    for secret, elsewhere in ((SECRET, 200), (None, 403)):
        settings = Settings(recordings_dir=str(tmp_path), media_url_secret=secret)
        issuing = fake_gateway(settings)
        # Another replica: its own process (so its own secret when none is set), the same
        # services behind it.
        serving = bootstrap(
            settings,
            accounts=issuing.accounts,
            rooms=issuing.rooms,
            participants=issuing.participants,
            tracks=issuing.tracks,
            recordings=issuing.recordings,
            signaling=issuing.workers,
            readiness=[issuing.readiness],
        )
        recorded = Recorded(issuing)
        write_media(tmp_path, recorded.mic, b"audio")
        async with issuing.client(BASE) as http:
            url = await _location(http, f"/v1/Recordings/{recorded.mic.sid}/Media")
            assert (await http.get(url)).status_code == 200  # where it was issued
        transport = httpx.ASGITransport(app=serving.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as anonymous:
            assert (await anonymous.get(url)).status_code == elsewhere


# RecordingRules -------------------------------------------------------------------------------
async def test_recording_rules_fetch_and_update(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup", record_participants_on_connect=True)
    fetched = await http.get("/v1/Rooms/standup/RecordingRules")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {
        "room_sid": room.sid,
        "date_created": None,
        "date_updated": None,
        "rules": [{"type": "include", "all": True}],
    }
    assert list(fetched.json()) == ["room_sid", "date_created", "date_updated", "rules"]

    rules = '[{"type": "include", "kind": "audio"}, {"type": "exclude", "publisher": "bob"}]'
    updated = await http.post(f"/v1/Rooms/{room.sid}/RecordingRules", data={"Rules": rules})
    assert updated.status_code == 200, updated.text
    assert updated.json() == {
        "room_sid": room.sid,
        "date_created": "2024-05-01T12:00:00Z",
        "date_updated": "2024-05-01T12:00:00Z",
        # Only the keys a rule sets: no nulls, no priority.
        "rules": [{"type": "include", "kind": "audio"}, {"type": "exclude", "publisher": "bob"}],
    }
    assert gateway.recordings.requests[-1] == SetRecordingRulesRequest(
        account_sid=gateway.account.sid, room_sid=room.sid, rules=rules
    )
    # twilio-java's form: an object with a rules array, passed on as sent.
    wrapped = '{"rules": [{"type": "exclude", "all": true}]}'
    response = await http.post("/v1/Rooms/standup/RecordingRules", data={"Rules": wrapped})
    assert response.json()["rules"] == [{"type": "exclude", "all": True}]
    assert gateway.recordings.requests[-1] == SetRecordingRulesRequest(
        account_sid=gateway.account.sid, room_sid="standup", rules=wrapped
    )


async def test_every_key_of_a_rule_shows_when_set(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    rule = RecordingRule(type="include", publisher="alice", track="cam", kind="video")
    gateway.recordings.rules[room.sid] = RecordingRules(
        account_sid=room.account_sid, room_sid=room.sid, rules=[rule]
    )
    body = (await http.get(f"/v1/Rooms/{room.sid}/RecordingRules")).json()
    assert body["rules"] == [
        {"type": "include", "publisher": "alice", "track": "cam", "kind": "video"}
    ]
    assert list(body["rules"][0]) == ["type", "publisher", "track", "kind"]


@pytest.mark.parametrize(
    "data",
    [{}, {"Rules": "[]"}, {"Rules": "{not json"}, {"Rules": '[{"type": "maybe"}]'}],
)
async def test_invalid_recording_rules_are_the_services_53120(
    gateway: FakeGateway, http: httpx.AsyncClient, data: dict[str, str]
) -> None:
    room = gateway.rooms.add(gateway.account.sid, "standup")
    response = await http.post(f"/v1/Rooms/{room.sid}/RecordingRules", data=data)
    body = assert_twilio_error(response, errors.RECORDING_RULES_INVALID, 400)
    assert body["message"] == "Invalid Recording Rule(s)"
    asked = gateway.recordings.requests[-1]
    assert isinstance(asked, SetRecordingRulesRequest)
    assert asked.rules == data.get("Rules")  # None when the form has none


async def test_recording_rules_of_a_completed_or_unknown_room(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    ended = gateway.rooms.add(gateway.account.sid, "ended", status="completed")
    response = await http.post(
        f"/v1/Rooms/{ended.sid}/RecordingRules",
        data={"Rules": '[{"type": "include", "all": true}]'},
    )
    assert_twilio_error(response, errors.ROOM_COMPLETED, 400)
    assert (await http.get(f"/v1/Rooms/{ended.sid}/RecordingRules")).status_code == 200
    body = assert_twilio_error(
        await http.get("/v1/Rooms/nowhere/RecordingRules"), errors.NOT_FOUND, 404
    )
    assert "/Rooms/nowhere/RecordingRules" in body["message"]


# RecordingSettings ----------------------------------------------------------------------------
SETTINGS_KEYS = [
    "account_sid", "friendly_name", "aws_credentials_sid", "aws_s3_url", "aws_storage_enabled",
    "encryption_key_sid", "encryption_enabled", "url",
]  # fmt: skip


async def test_recording_settings_fetch_and_create(
    gateway: FakeGateway, http: httpx.AsyncClient
) -> None:
    fetched = await http.get("/v1/RecordingSettings/Default")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {
        "account_sid": gateway.account.sid,
        "friendly_name": "Default",
        "aws_credentials_sid": None,
        "aws_s3_url": None,
        "aws_storage_enabled": False,
        "encryption_key_sid": None,
        "encryption_enabled": False,
        "url": f"{BASE}/v1/RecordingSettings/Default",
    }
    assert list(fetched.json()) == SETTINGS_KEYS

    credentials = "CR" + "a" * 32
    form = {
        "FriendlyName": "archive",
        "AwsCredentialsSid": credentials,
        "AwsS3Url": "https://my-bucket.s3.amazonaws.com/rooms",
        "AwsStorageEnabled": "true",
        "EncryptionEnabled": "false",
    }
    created = await http.post("/v1/RecordingSettings/Default", data=form)
    assert created.status_code == 200, created.text
    assert created.json() == {
        **fetched.json(),
        "friendly_name": "archive",
        "aws_credentials_sid": credentials,
        "aws_s3_url": "https://my-bucket.s3.amazonaws.com/rooms",
        "aws_storage_enabled": True,
    }
    assert gateway.recordings.requests[-1] == SetRecordingSettingsRequest(
        account_sid=gateway.account.sid,
        friendly_name="archive",
        aws_credentials_sid=credentials,
        aws_s3_url="https://my-bucket.s3.amazonaws.com/rooms",
        aws_storage_enabled=True,
        encryption_enabled=False,
    )
    assert (await http.get("/v1/RecordingSettings/Default")).json() == created.json()
    # Another account has its own.
    other = gateway.accounts.add_account("Other")
    theirs = await http.get("/v1/RecordingSettings/Default", auth=gateway.auth(other))
    assert (theirs.json()["account_sid"], theirs.json()["friendly_name"]) == (other.sid, "Default")


async def test_recording_settings_refusals(gateway: FakeGateway, http: httpx.AsyncClient) -> None:
    # FriendlyName is required: the service says so.
    response = await http.post("/v1/RecordingSettings/Default")
    assert_twilio_error(response, errors.INVALID_PARAMETER, 400)
    assert isinstance(gateway.recordings.requests[-1], SetRecordingSettingsRequest)
    asked = len(gateway.recordings.requests)
    for field in ("AwsStorageEnabled", "EncryptionEnabled"):
        response = await http.post(
            "/v1/RecordingSettings/Default", data={"FriendlyName": "x", field: "hunter2"}
        )
        body = assert_twilio_error(response, errors.INVALID_PARAMETER, 400)
        assert field in body["message"] and "hunter2" not in body["message"]
    assert len(gateway.recordings.requests) == asked  # never reached the service


async def test_recording_settings_never_echo_or_log_a_secret(
    gateway: FakeGateway, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
    form = {
        "FriendlyName": "archive",
        # Credentials put into the URL (the service refuses these; the fake keeps them) and
        # fields Twilio does not have.
        "AwsS3Url": f"https://AKIAEXAMPLE:{secret}@my-bucket.s3.amazonaws.com/rooms?token={secret}",
        "AwsSecretAccessKey": secret,
        "AwsStorageEnabled": "true",
    }
    created = await http.post("/v1/RecordingSettings/Default", data=form)
    assert created.status_code == 200, created.text
    fetched = await http.get("/v1/RecordingSettings/Default")
    for response in (created, fetched):
        assert secret not in response.text and "AKIAEXAMPLE" not in response.text
        assert response.json()["aws_s3_url"] == "https://my-bucket.s3.amazonaws.com/rooms"
    assert secret not in caplog.text


# The OpenAPI document -------------------------------------------------------------------------
async def test_the_openapi_document_names_twilios_recording_parameters(
    gateway: FakeGateway,
) -> None:
    paths = gateway.app.openapi()["paths"]
    listing = paths["/v1/Recordings"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {
        "Status", "SourceSid", "GroupingSid", "MediaType", "DateCreatedAfter",
        "DateCreatedBefore", "PageSize", "Page", "PageToken",
    }  # fmt: skip
    room_listing = paths["/v1/Rooms/{room}/Recordings"]["get"]
    assert {p["name"] for p in room_listing["parameters"]} == {
        "room", "Status", "SourceSid", "DateCreatedAfter", "DateCreatedBefore", "PageSize",
        "Page", "PageToken",
    }  # fmt: skip
    assert set(paths["/v1/Recordings/{recording}"]) == {"get", "delete"}
    assert set(paths["/v1/Rooms/{room}/RecordingRules"]) == {"get", "post"}
    assert set(paths["/v1/RecordingSettings/Default"]) == {"get", "post"}
    # The signed download is not part of Twilio's API.
    assert not [path for path in paths if path.endswith("/Media/file")]


# The NATS adapter -----------------------------------------------------------------------------
async def test_the_nats_adapter_asks_the_recording_service_on_its_subjects(
    gateway: FakeGateway,
) -> None:
    """Each call on its RECORDING_* subject, its reply typed; errors come back as AtriumError."""
    recorded = Recorded(gateway)
    service, account = gateway.recordings, gateway.account.sid
    broker = NatsBroker()
    for subject, answer in (
        (subjects.RECORDING_LIST, service.list_recordings),
        (subjects.RECORDING_FETCH, service.fetch),
        (subjects.RECORDING_DELETE, service.delete),
        (subjects.RECORDING_MEDIA, service.media),
        (subjects.RECORDING_RULES_GET, service.fetch_rules),
        (subjects.RECORDING_RULES_SET, service.set_rules),
        (subjects.RECORDING_SETTINGS_GET, service.fetch_settings),
        (subjects.RECORDING_SETTINGS_SET, service.set_settings),
    ):
        broker.subscriber(subject)(reply_handler(answer))

    async with TestNatsBroker(broker) as test_broker:
        client = nats.NatsRecordings(nats.NatsRpc(test_broker, 1.0))
        page = await client.list_recordings(ListRecordingsRequest(account_sid=account))
        assert [r.sid for r in page.items] == [recorded.cam.sid, recorded.mic.sid]
        one = FetchRecordingRequest(account_sid=account, recording_sid=recorded.mic.sid)
        assert await client.fetch(one) == recorded.mic
        location = await client.media(
            RecordingMediaRequest(account_sid=account, recording_sid=recorded.mic.sid)
        )
        assert location.media_key == recorded.mic.media_key
        deleted = await client.delete(
            DeleteRecordingRequest(account_sid=account, recording_sid=recorded.mic.sid)
        )
        assert deleted.status == "deleted"
        room = recorded.room.sid
        assert (
            await client.fetch_rules(FetchRecordingRulesRequest(account_sid=account, room_sid=room))
        ).room_sid == room
        rules = '[{"type": "include", "all": true}]'
        set_rules = SetRecordingRulesRequest(account_sid=account, room_sid=room, rules=rules)
        assert (await client.set_rules(set_rules)).rules == [
            RecordingRule(type="include", all=True)
        ]
        settings = SetRecordingSettingsRequest(account_sid=account, friendly_name="archive")
        assert (await client.set_settings(settings)).friendly_name == "archive"
        fetched = await client.fetch_settings(FetchRecordingSettingsRequest(account_sid=account))
        assert fetched.friendly_name == "archive"
        missing = await failure(
            client.fetch(one.model_copy(update={"account_sid": "AC" + "0" * 32}))
        )
        assert (missing.code, missing.status) == (errors.NOT_FOUND, 404)
        invalid = await failure(client.set_rules(set_rules.model_copy(update={"rules": "[]"})))
        assert (invalid.code, invalid.status) == (errors.RECORDING_RULES_INVALID, 400)
