"""The official twilio package, unchanged, against the gateway's recording resources, over real
HTTP: the real app (bootstrap()) on the in-memory fakes, served by uvicorn on loopback in a
thread, so twilio-python's own requests session, URL building, paging and parsing are exercised.

The recording service is not wired into tests/support/stack.py yet; once it is,
tests/compat/test_twilio_recordings.py should run the same calls against the whole stack with
real recordings.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from atrium_shared import errors
from atrium_shared.settings import Settings
from tests.support.fakes.gateway import FakeGateway, fake_gateway
from tests.unit.test_gateway_recordings import Recorded, write_media

pytestmark = pytest.mark.timeout(60)


@contextlib.contextmanager
def serving(gateway: FakeGateway) -> Iterator[str]:
    """The app on a free loopback port until the block ends; its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(gateway.app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def gateway(tmp_path: Path) -> FakeGateway:
    return fake_gateway(Settings(recordings_dir=str(tmp_path), media_url_secret="twilio-compat"))


@pytest.fixture
def base_url(gateway: FakeGateway) -> Iterator[str]:
    with serving(gateway) as url:
        yield url


def client_of(gateway: FakeGateway, base_url: str, account_index: int = 0) -> Client:
    account = list(gateway.accounts.accounts.values())[account_index]
    client = Client(*gateway.auth(account))
    client.video.base_url = base_url
    return client


def test_recordings_list_fetch_filter_and_delete(gateway: FakeGateway, base_url: str) -> None:
    recorded = Recorded(gateway)
    client = client_of(gateway, base_url)
    recordings = client.video.v1.recordings

    listed = recordings.list(page_size=1)  # one per page: the library follows next_page_url
    assert [r.sid for r in listed] == [recorded.cam.sid, recorded.mic.sid]
    mic = recordings(recorded.mic.sid).fetch()
    assert (mic.sid, mic.account_sid, mic.source_sid) == (
        recorded.mic.sid,
        gateway.account.sid,
        recorded.mic_track.sid,
    )
    assert (mic.status, mic.type, mic.codec, mic.container_format) == (
        "completed",
        "audio",
        "OPUS",
        "mka",
    )
    assert (mic.duration, mic.size, mic.offset, mic.track_name) == (7, 4096, 1250, "mic")
    assert mic.grouping_sids == {
        "room_sid": recorded.room.sid,
        "participant_sid": recorded.alice.sid,
    }
    assert mic.date_created == datetime(2024, 5, 1, 12, 1, tzinfo=UTC)
    assert mic.status_callback_method == "POST"
    assert mic.url == f"{base_url}/v1/Recordings/{recorded.mic.sid}"
    assert mic.links == {"media": f"{mic.url}/Media"}

    filtered = recordings.list(
        status="completed",
        source_sid=recorded.mic_track.sid,
        grouping_sid=[recorded.room.sid, recorded.alice.sid],
        media_type="audio",
        date_created_after=datetime(2024, 1, 1, tzinfo=UTC),
        date_created_before=datetime(2030, 1, 1, tzinfo=UTC),
    )
    assert [r.sid for r in filtered] == [recorded.mic.sid]
    assert [r.sid for r in recordings.list(media_type="video")] == [recorded.cam.sid]

    assert recordings(recorded.mic.sid).delete() is True
    assert recordings(recorded.mic.sid).fetch().status == "deleted"
    assert [r.sid for r in recordings.list(status="deleted")] == [recorded.mic.sid]


def test_room_recordings_through_the_rooms_api(gateway: FakeGateway, base_url: str) -> None:
    recorded = Recorded(gateway)
    room = client_of(gateway, base_url).video.v1.rooms(recorded.room.sid)
    listed = room.recordings.list()
    assert [r.sid for r in listed] == [recorded.cam.sid, recorded.mic.sid]
    assert all(r.room_sid == recorded.room.sid for r in listed)
    cam = room.recordings(recorded.cam.sid).fetch()
    assert (cam.type, cam.codec, cam.container_format) == ("video", "VP8", "mkv")
    assert cam.links == {
        "media": f"{base_url}/v1/Rooms/{recorded.room.sid}/Recordings/{recorded.cam.sid}/Media"
    }
    only_mic = room.recordings.list(source_sid=recorded.mic_track.sid, status="completed")
    assert [r.sid for r in only_mic] == [recorded.mic.sid]
    assert room.recordings(recorded.cam.sid).delete() is True
    assert room.recordings(recorded.cam.sid).fetch().status == "deleted"


def test_another_accounts_recordings_are_not_found(gateway: FakeGateway, base_url: str) -> None:
    other = gateway.accounts.add_account("Other")
    theirs = Recorded(gateway, other.sid)
    client = client_of(gateway, base_url)
    assert client.video.v1.recordings.list() == []
    for call in (
        client.video.v1.recordings(theirs.mic.sid).fetch,
        client.video.v1.recordings(theirs.mic.sid).delete,
        client.video.v1.rooms(theirs.room.sid).recordings(theirs.mic.sid).fetch,
        client.video.v1.rooms(theirs.room.sid).recording_rules.fetch,
    ):
        with pytest.raises(TwilioRestException) as raised:
            call()
        assert (raised.value.status, raised.value.code) == (404, errors.NOT_FOUND)
    theirs_client = client_of(gateway, base_url, account_index=1)
    assert [r.sid for r in theirs_client.video.v1.recordings.list()] == [
        theirs.cam.sid,
        theirs.mic.sid,
    ]


def test_media_redirect_and_download(gateway: FakeGateway, base_url: str, tmp_path: Path) -> None:
    """As Twilio's docs download media: ``client.request`` (which does not follow redirects),
    then the ``redirect_to`` URL without credentials."""
    recorded = Recorded(gateway)
    write_media(tmp_path, recorded.mic, b"\x1aE\xdf\xa3 opus in matroska")
    client = client_of(gateway, base_url)
    media = client.video.v1.recordings(recorded.mic.sid).fetch().links["media"]
    response = client.request("GET", media)
    assert response.status_code == 302
    location = json.loads(response.text)["redirect_to"]
    download = httpx.get(location)
    assert download.status_code == 200
    assert download.content == b"\x1aE\xdf\xa3 opus in matroska"
    assert download.headers["content-type"] == "audio/x-matroska"
    # A client that follows redirects gets the file from the media link directly.
    followed = httpx.get(media, auth=gateway.auth(), follow_redirects=True)
    assert followed.content == download.content


def test_recording_rules_fetch_and_update(gateway: FakeGateway, base_url: str) -> None:
    room_info = gateway.rooms.add(gateway.account.sid, "standup")
    rules = client_of(gateway, base_url).video.v1.rooms(room_info.sid).recording_rules
    fetched = rules.fetch()
    assert (fetched.room_sid, fetched.rules) == (room_info.sid, [])
    assert fetched.date_created is None
    wanted = [{"type": "include", "kind": "audio"}, {"type": "exclude", "publisher": "bob"}]
    updated = rules.update(rules=wanted)
    assert (updated.room_sid, updated.rules) == (room_info.sid, wanted)
    assert updated.date_updated == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert rules.fetch().rules == wanted
    # twilio-java's shape, sent from Python as a dict.
    assert rules.update(rules={"rules": [{"type": "exclude", "all": True}]}).rules == [
        {"type": "exclude", "all": True}
    ]
    with pytest.raises(TwilioRestException) as raised:
        rules.update(rules=[])
    assert (raised.value.status, raised.value.code) == (400, errors.RECORDING_RULES_INVALID)


def test_recording_settings_fetch_and_create(gateway: FakeGateway, base_url: str) -> None:
    settings = client_of(gateway, base_url).video.v1.recording_settings()
    fetched = settings.fetch()
    assert (fetched.account_sid, fetched.friendly_name) == (gateway.account.sid, "Default")
    assert (fetched.aws_storage_enabled, fetched.encryption_enabled) == (False, False)
    assert fetched.url == f"{base_url}/v1/RecordingSettings/Default"
    credentials = "CR" + "b" * 32
    created = settings.create(
        friendly_name="archive",
        aws_credentials_sid=credentials,
        aws_s3_url="https://my-bucket.s3.amazonaws.com/rooms",
        aws_storage_enabled=True,
    )
    assert (created.friendly_name, created.aws_credentials_sid) == ("archive", credentials)
    assert (created.aws_s3_url, created.aws_storage_enabled) == (
        "https://my-bucket.s3.amazonaws.com/rooms",
        True,
    )
    assert settings.fetch().friendly_name == "archive"
