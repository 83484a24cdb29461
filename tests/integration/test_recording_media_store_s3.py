"""The recording service's side of S3 storage: which bucket a new recording gets
(``domain.storage_target``), and :class:`S3MediaStore` presigning and deleting against moto's
standalone server (``ThreadedMotoServer`` on a free port on 127.0.0.1), addressing the object
exactly as the media worker's upload (:class:`atrium_media.recording.S3Storage`) does."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from moto.server import ThreadedMotoServer

from atrium_cli.embedded import free_port
from atrium_media.recording import media_key, storage_for
from atrium_recording import domain
from atrium_recording.adapters.s3 import S3MediaStore
from atrium_shared.errors import AtriumError
from atrium_shared.recording_api import RecordingInfo, RecordingSettings, StorageTarget
from atrium_shared.s3 import S3Bucket
from atrium_shared.settings import Settings

pytestmark = pytest.mark.timeout(120)

BUCKET = "atrium-rec"
ACCOUNT = "AC" + "a" * 32
SECRET = "atrium-test-secret"


# Which storage a new recording gets ----------------------------------------------------------
def test_the_deployments_bucket_by_default_an_accounts_own_over_it_else_local() -> None:
    ops = "s3://ops/rec"
    endpoint = "http://127.0.0.1:9000"
    local = StorageTarget(kind="local")
    assert domain.storage_target(None, None, None, None) == local
    assert domain.storage_target(None, None, endpoint, "eu-west-1") == local
    deployment = StorageTarget(
        kind="s3", bucket="ops", prefix="rec", endpoint_url=endpoint, region="eu-west-1"
    )
    assert domain.storage_target(None, ops, endpoint, "eu-west-1") == deployment
    # An account's settings: only once enabled, with a URL.
    off = RecordingSettings(account_sid=ACCOUNT, aws_s3_url="https://mine.s3.amazonaws.com/a")
    assert domain.storage_target(off, ops, endpoint, "eu-west-1") == deployment
    assert domain.storage_target(off, None, None, None) == local
    on = off.model_copy(update={"aws_storage_enabled": True})
    # The account's own bucket wins, even without a deployment bucket; the deployment's region
    # fills in what the URL does not say, a region in the URL stays.
    mine = StorageTarget(kind="s3", bucket="mine", prefix="a", region="eu-west-1")
    assert domain.storage_target(on, ops, endpoint, "eu-west-1") == mine
    assert domain.storage_target(on, None, None, "eu-west-1") == mine
    assert domain.storage_target(on, None, None, None) == mine.model_copy(update={"region": None})
    regional = on.model_copy(update={"aws_s3_url": "https://mine.s3.us-west-2.amazonaws.com/a"})
    assert domain.storage_target(regional, ops, endpoint, "eu-west-1").region == "us-west-2"


def test_the_region_setting_reads_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATRIUM_RECORDINGS_S3_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    assert Settings().recordings_s3_region == "ap-south-1"
    monkeypatch.setenv("ATRIUM_RECORDINGS_S3_REGION", "eu-north-1")
    assert Settings().recordings_s3_region == "eu-north-1"
    assert Settings(recordings_s3_region="us-east-2").recordings_s3_region == "us-east-2"


def test_a_bucket_as_both_services_address_it() -> None:
    target = StorageTarget(kind="s3", bucket="b", prefix="/p/q/")
    bucket = S3Bucket.of(target, default_endpoint_url="http://h:9000", default_region="r")
    assert (bucket.name, bucket.prefix, bucket.endpoint_url, bucket.region) == (
        "b",
        "p/q",
        "http://h:9000",
        "r",
    )
    assert bucket.location("AC/RT.mka") == "s3://b/p/q/AC/RT.mka"
    assert bucket.config_args()["s3"] == {"addressing_style": "path"}
    aws = S3Bucket.of(StorageTarget(kind="s3", bucket="b", region="eu-west-1"))
    assert aws.client_args() == {"region_name": "eu-west-1", "endpoint_url": None}
    assert aws.config_args()["s3"] == {"addressing_style": "auto"}
    assert S3Bucket.of(target, default_region="r").object_key("k") == "p/q/k"
    with pytest.raises(ValueError, match="bucket"):
        S3Bucket.of(StorageTarget(kind="s3"))


# S3MediaStore against moto --------------------------------------------------------------------
@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATESTING")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)


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
async def s3(s3_endpoint: str, credentials: None) -> AsyncIterator[Any]:
    async with get_session().create_client(
        "s3", region_name="us-east-1", endpoint_url=s3_endpoint
    ) as client:
        await client.create_bucket(Bucket=BUCKET)
        yield client


def recording(storage: StorageTarget, sid: str = "RT" + "1" * 32) -> RecordingInfo:
    now = datetime.now(UTC)
    return RecordingInfo(
        sid=sid,
        account_sid=ACCOUNT,
        room_sid="RM" + "1" * 32,
        participant_sid="PA" + "1" * 32,
        participant_identity="alice",
        source_sid="MT" + "1" * 32,
        track_name="mic",
        type="audio",
        status="completed",
        codec="OPUS",
        container_format="mka",
        date_created=now,
        date_updated=now,
        storage=storage,
        media_key=media_key(ACCOUNT, sid, "mka"),
    )


def download(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_presign_and_delete_the_object_the_worker_uploaded(
    s3: Any, s3_endpoint: str, tmp_path: Path
) -> None:
    # As the recording service makes targets: the deployment's bucket, endpoint and region.
    target = domain.storage_target(None, f"s3://{BUCKET}/team", s3_endpoint, "us-east-1")
    rec = recording(target)
    worker = storage_for(target, tmp_path)  # the media worker's upload, on the same target
    path = worker.local_path(rec.media_key)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"matroska" * 100)
    stored = await worker.store(rec.media_key)
    assert stored.external_location == f"s3://{BUCKET}/team/{rec.media_key}"

    store = S3MediaStore()  # the target carries the endpoint and region
    url = await store.presign(rec, 60)
    assert url is not None and url.startswith(f"{s3_endpoint}/{BUCKET}/team/{rec.media_key}?")
    assert SECRET not in url and "X-Amz-Expires=60" in url
    assert await asyncio.to_thread(download, url) == (200, b"matroska" * 100)

    other = recording(target, "RT" + "2" * 32)
    await store.delete(other)  # nothing there: not an error
    await store.delete(rec)
    listed = await s3.list_objects_v2(Bucket=BUCKET)
    assert listed.get("KeyCount", 0) == 0


async def test_a_target_without_endpoint_uses_the_deployments(s3: Any, s3_endpoint: str) -> None:
    # An account's s3:// URL names no endpoint: it is on the deployment's S3 server.
    rec = recording(StorageTarget(kind="s3", bucket=BUCKET, prefix="acct"))
    await s3.put_object(Bucket=BUCKET, Key=f"acct/{rec.media_key}", Body=b"x")
    store = S3MediaStore(default_endpoint_url=s3_endpoint, default_region="us-east-1")
    url = await store.presign(rec, 30)
    assert url is not None and url.startswith(f"{s3_endpoint}/{BUCKET}/acct/")
    await store.delete(rec)
    assert (await s3.list_objects_v2(Bucket=BUCKET)).get("KeyCount", 0) == 0


async def test_an_unreachable_bucket_is_503_and_never_shows_the_secret(
    credentials: None, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    rec = recording(StorageTarget(kind="s3", bucket=BUCKET, endpoint_url=closed))
    with pytest.raises(AtriumError) as caught:
        await S3MediaStore().delete(rec)
    assert caught.value.status == 503 and "Recording storage unavailable" in caught.value.message
    assert SECRET not in caught.value.message and SECRET not in caplog.text


async def test_no_credentials_is_503(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    # Nothing else in botocore's chain: no shared files, no instance metadata.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    rec = recording(StorageTarget(kind="s3", bucket=BUCKET, endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(AtriumError) as caught:
        await S3MediaStore().presign(rec, 60)
    assert caught.value.status == 503
