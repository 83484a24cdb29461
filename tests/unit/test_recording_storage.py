"""Recording storage: media keys, the local folder, and choosing a storage from a target."""

from __future__ import annotations

from pathlib import Path

import pytest

from atrium_media.recording import (
    LocalStorage,
    S3Storage,
    StorageError,
    media_key,
    parse_s3_url,
    storage_for,
)
from atrium_shared.recording_api import StorageTarget

ACCOUNT = "AC" + "a" * 32
RECORDING = "RT" + "b" * 32


def test_media_keys_are_account_then_recording() -> None:
    assert media_key(ACCOUNT, RECORDING, "mkv") == f"{ACCOUNT}/{RECORDING}.mkv"


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../x.mka", "a/../../x.mka", "a//b.mka", "a/./b.mka", "a\\b.mka"]
)
def test_keys_cannot_leave_the_folder(key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad media key"):
        LocalStorage(tmp_path).local_path(key)


async def test_local_storage_keeps_the_file_where_it_was_written(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "recordings")
    key = media_key(ACCOUNT, RECORDING, "mka")
    path = storage.local_path(key)
    assert path == tmp_path / "recordings" / ACCOUNT / f"{RECORDING}.mka"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 123)
    stored = await storage.store(key)
    assert (stored.key, stored.size, stored.external_location) == (key, 123, None)
    assert path.exists()
    assert await storage.presign(key, 600) is None  # the gateway serves local files
    await storage.delete(key)
    assert not path.exists()
    await storage.delete(key)  # already gone: fine


async def test_storing_a_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        await LocalStorage(tmp_path).store(media_key(ACCOUNT, RECORDING, "mka"))


def test_storage_for_a_target(tmp_path: Path) -> None:
    local = storage_for(StorageTarget(), tmp_path)
    assert isinstance(local, LocalStorage) and local.root == tmp_path
    s3 = storage_for(
        StorageTarget(kind="s3", bucket="b", prefix="/p/q/", region="eu-west-1"),
        tmp_path,
        default_endpoint_url="http://127.0.0.1:9000",
    )
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix, s3.region, s3.endpoint_url) == (
        "b",
        "p/q",
        "eu-west-1",
        "http://127.0.0.1:9000",
    )
    key = media_key(ACCOUNT, RECORDING, "mkv")
    assert s3.location(key) == f"s3://b/p/q/{key}"
    assert s3.local_path(key) == tmp_path / ".s3-staging" / ACCOUNT / f"{RECORDING}.mkv"
    with pytest.raises(ValueError, match="bucket"):
        storage_for(StorageTarget(kind="s3"), tmp_path)


def test_parse_s3_url() -> None:
    assert parse_s3_url("s3://bucket") == ("bucket", "")
    assert parse_s3_url("s3://bucket/a/b/") == ("bucket", "a/b")
    with pytest.raises(ValueError):
        parse_s3_url("https://bucket")
    with pytest.raises(ValueError):
        parse_s3_url("s3:///x")
