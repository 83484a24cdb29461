"""Recording storage against a real S3-protocol server: moto's standalone server
(``moto.server.ThreadedMotoServer``), started by the test on a free port on 127.0.0.1.

A recorded file goes up (one PUT, or a multipart upload), comes back through a presigned URL over
plain HTTP, and is deleted; the local copy is gone after a successful upload and kept after a
failed one.
"""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from atrium_media.recording import (
    RecorderPool,
    S3Storage,
    StorageError,
    TrackRecorder,
    media_key,
    storage_for,
)
from atrium_shared.recording_api import StorageTarget
from tests.support.rtp_media import audio_stream, decode_file

pytestmark = pytest.mark.timeout(120)

BUCKET = "atrium-recordings"
ACCOUNT = "AC" + "0" * 32
KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
async def bucket(s3_endpoint: str) -> AsyncIterator[str]:
    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        await client.create_bucket(Bucket=BUCKET)
    yield BUCKET


def storage(endpoint: str, tmp_path: Path, bucket: str = BUCKET, **options: object) -> S3Storage:
    return S3Storage(
        bucket,
        staging_dir=tmp_path / "staging",
        prefix="rec/",
        endpoint_url=endpoint,
        region="us-east-1",
        **KEYS,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


async def test_a_recording_is_uploaded_presigned_downloaded_and_deleted(
    s3_endpoint: str, bucket: str, tmp_path: Path
) -> None:
    s3 = storage(s3_endpoint, tmp_path)
    key = media_key(ACCOUNT, "RT" + "1" * 32, "mka")
    path = s3.local_path(key)
    assert path == tmp_path / "staging" / ACCOUNT / f"RT{'1' * 32}.mka"

    stream = audio_stream(3.0)
    pool = RecorderPool(threads=1, interval=0.01)
    try:
        recorder = TrackRecorder(path, stream.mime_type, stream.clock_rate, pool=pool)
        for packet, arrival in stream.packets:
            recorder.feed(packet, arrival)
        result = await recorder.stop()
    finally:
        pool.close(timeout=5)
    original = path.read_bytes()
    assert result.size == len(original)

    stored = await s3.store(key)
    assert stored.key == key
    assert stored.size == len(original)
    assert stored.external_location == f"s3://{BUCKET}/rec/{key}"
    assert not path.exists()  # the local copy goes once the upload is confirmed

    url = await s3.presign(key, expires_in=300)
    assert url is not None and url.startswith(s3_endpoint) and "X-Amz-Signature" in url
    status, body = await asyncio.to_thread(http_get, url)
    assert (status, body) == (200, original)
    downloaded = tmp_path / "downloaded.mka"
    downloaded.write_bytes(body)
    decoded = decode_file(str(downloaded))
    assert decoded.codec == "opus" and decoded.duration == pytest.approx(3.0, abs=0.1)

    unsigned = url.split("?")[0]
    assert (await asyncio.to_thread(http_get, unsigned))[0] == 403  # the signature is the key

    await s3.delete(key)
    status, _ = await asyncio.to_thread(http_get, await s3.presign(key, expires_in=300) or "")
    assert status == 404
    await s3.delete(key)  # deleting again is fine


async def test_big_files_go_up_in_parts(s3_endpoint: str, bucket: str, tmp_path: Path) -> None:
    s3 = storage(
        s3_endpoint, tmp_path, multipart_threshold=5 * 1024 * 1024, part_size=5 * 1024 * 1024
    )
    key = media_key(ACCOUNT, "RT" + "2" * 32, "mkv")
    path = s3.local_path(key)
    path.parent.mkdir(parents=True)
    data = bytes(range(256)) * (11 * 1024 * 1024 // 256 + 7)  # 11 MiB and a bit: three parts
    path.write_bytes(data)

    stored = await s3.store(key)
    assert stored.size == len(data)
    url = await s3.presign(key, expires_in=60)
    assert url is not None
    status, body = await asyncio.to_thread(http_get, url)
    assert status == 200 and body == data


async def test_a_failed_upload_keeps_the_local_file(s3_endpoint: str, tmp_path: Path) -> None:
    s3 = storage(s3_endpoint, tmp_path, bucket="never-created")
    key = media_key(ACCOUNT, "RT" + "3" * 32, "mka")
    path = s3.local_path(key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"matroska")
    with pytest.raises(StorageError, match="NoSuchBucket"):
        await s3.store(key)
    assert path.read_bytes() == b"matroska"


async def test_storage_for_an_s3_target(
    s3_endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    target = StorageTarget(kind="s3", bucket=BUCKET, prefix="team-a")
    s3 = storage_for(target, tmp_path, default_endpoint_url=s3_endpoint)
    assert isinstance(s3, S3Storage)
    key = media_key(ACCOUNT, "RT" + "4" * 32, "mka")
    path = s3.local_path(key)
    assert path.is_relative_to(tmp_path / ".s3-staging")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 1000)
    stored = await s3.store(key)
    assert stored.external_location == f"s3://{BUCKET}/team-a/{key}"
