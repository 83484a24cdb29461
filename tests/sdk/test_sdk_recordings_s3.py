"""Recordings in an S3-compatible bucket, end to end: the stack is configured with a bucket on
moto's standalone server (``moto.server.ThreadedMotoServer`` on a free port on 127.0.0.1), an SDK
participant publishes audio and video in a recorded room, the media worker uploads each track's
file, ``/Media`` redirects to the bucket's presigned URL, the file downloads and decodes, and
deleting the recording deletes the object. Credentials and region come from the standard AWS_*
variables only."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiobotocore.session import get_session
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from atrium_cli.embedded import free_port
from atrium_video import create_local_audio_track, create_local_video_track
from tests.support.rtp_media import decode_file
from tests.support.sdk import join
from tests.support.stack import RECORDED, Stack, StackFactory
from tests.support.tenants import Tenant
from tests.support.waiting import eventually

BUCKET = "bucket"
PREFIX = "rec"
REGION = "eu-west-1"
KEY_ID = "AKIATESTINGATRIUM"
SECRET = "atrium-test-secret-never-shown"
SECONDS = 3.0  # how long the participant publishes

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@dataclass
class S3Server:
    endpoint: str
    client: Any  # aiobotocore's S3 client on it

    async def size(self, key: str) -> int | None:
        """The size of the object ``key`` of the bucket, None when there is none."""
        try:
            head = await self.client.head_object(Bucket=BUCKET, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
                return None
            raise
        size: int = head["ContentLength"]
        return size


@pytest.fixture
async def s3(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[S3Server]:
    """moto's server with the bucket, and the AWS_* variables the services' botocore reads
    (set before the stack's settings are made, so AWS_REGION reaches Settings too)."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", REGION)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        async with get_session().create_client(
            "s3", region_name=REGION, endpoint_url=endpoint
        ) as client:
            await client.create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
            )
            yield S3Server(endpoint, client)
    finally:
        server.stop()


@pytest.fixture
async def s3_stack(s3: S3Server, stacks: StackFactory) -> Stack:
    """The recorded stack on the bucket: what the ``stack`` fixture does with a marker's
    settings, here because moto's port is known only once it runs."""
    return await stacks.start(
        RECORDED,
        recordings_s3_url=f"s3://{BUCKET}/{PREFIX}",
        recordings_s3_endpoint_url=s3.endpoint,
    )


async def test_recordings_go_to_the_bucket_download_presigned_and_delete_there(
    s3: S3Server, s3_stack: Stack, tenant: Tenant
) -> None:
    stack = s3_stack
    assert stack.settings.recordings_s3_region == REGION  # from AWS_REGION, through Settings
    client = stack.rest(tenant)
    await asyncio.to_thread(
        lambda: client.video.v1.rooms.create(
            unique_name="recorded-s3", record_participants_on_connect=True
        )
    )
    tracks = [create_local_audio_track(name="mic"), create_local_video_track(name="cam")]
    alice, _ = await join(stack, tenant, "alice", "recorded-s3", tracks=tracks)
    try:

        async def two_processing() -> bool:
            found = await asyncio.to_thread(lambda: client.video.v1.recordings.list())
            return len(found) == 2

        await eventually(two_processing, timeout=20, message="two recordings started")
        await eventually(lambda: alice.is_recording, timeout=10, message="the SDK sees recording")
        published_at = time.monotonic()
        await asyncio.sleep(SECONDS)  # the media being recorded: real time passing is the point
    finally:
        await alice.disconnect()
    published_for = time.monotonic() - published_at

    async def all_completed() -> list[Any]:
        found = await asyncio.to_thread(lambda: client.video.v1.recordings.list())
        return found if found and all(r.status == "completed" for r in found) else []

    recordings = await eventually(all_completed, timeout=30, message="two recordings completed")
    assert sorted(r.type for r in recordings) == ["audio", "video"]
    account = tenant.account.sid
    staging = Path(stack.settings.recordings_dir) / ".s3-staging"
    auth = (tenant.api_key.sid, tenant.key_secret)
    keys: dict[str, str] = {}
    for recording in recordings:
        container = "mka" if recording.type == "audio" else "mkv"
        assert recording.container_format == container
        key = keys[recording.sid] = f"{PREFIX}/{account}/{recording.sid}.{container}"
        assert recording.media_external_location == f"s3://{BUCKET}/{key}"
        assert await s3.size(key) == recording.size > 0
        # The upload removed the local copy, and nothing was written to the local folder.
        assert not (staging / account / f"{recording.sid}.{container}").exists()
        assert not (Path(stack.settings.recordings_dir) / account).exists()

        # /Media: a 302 to the bucket's presigned URL (signed for the deployment's region, no
        # secret in it), from which the file downloads and decodes.
        media = f"{stack.base_url}/v1/Recordings/{recording.sid}/Media"
        async with httpx.AsyncClient() as http:
            redirect = await http.get(media, auth=auth)
            assert redirect.status_code == 302, redirect.text
            location = redirect.headers["location"]
            download = await http.get(location)
        url = urlsplit(location)
        assert f"{url.scheme}://{url.netloc}" == s3.endpoint
        assert url.path == f"/{BUCKET}/{key}"
        query = parse_qs(url.query)
        assert query["X-Amz-Credential"][0].startswith(f"{KEY_ID}/")
        assert f"/{REGION}/s3/aws4_request" in query["X-Amz-Credential"][0]
        assert SECRET not in location
        assert download.status_code == 200, download.text
        assert len(download.content) == recording.size
        path = staging.parent / f"downloaded-{recording.sid}.{container}"
        path.write_bytes(download.content)
        decoded = decode_file(str(path))
        if recording.type == "audio":
            assert decoded.codec == "opus" and decoded.rms > 0.01
        else:
            assert decoded.codec == "vp8" and decoded.distinct_pictures >= 10
        assert published_for - 1.0 <= decoded.duration <= published_for + 6.0, decoded

    # Deleting a recording deletes its object, and only its object.
    gone, kept = recordings
    await asyncio.to_thread(lambda: client.video.v1.recordings(gone.sid).delete())
    fetched = await asyncio.to_thread(lambda: client.video.v1.recordings(gone.sid).fetch())
    assert fetched.status == "deleted"
    assert await s3.size(keys[gone.sid]) is None
    assert await s3.size(keys[kept.sid]) == kept.size
    async with httpx.AsyncClient() as http:
        after = await http.get(f"{stack.base_url}/v1/Recordings/{gone.sid}/Media", auth=auth)
    assert after.status_code == 404
