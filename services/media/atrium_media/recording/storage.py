"""Where a finished recording's file goes: a local folder, or an S3-compatible bucket.

A recorder always writes a local file (:meth:`RecordingStorage.local_path`); :meth:`store` then
makes it the recording's media:

* :class:`LocalStorage` (the default): the file is written in place, at
  ``Settings.recordings_dir/<account_sid>/<recording_sid>.<mka|mkv>``; the media key is that
  relative path. Downloads are served by the gateway (``presign`` answers None).
* :class:`S3Storage`: the file is written under a staging folder, uploaded with aiobotocore (one
  PUT, or a multipart upload for big files, read from disk in parts on a thread so the event loop
  never reads the file), checked by size, and the local copy is deleted after a successful upload.
  The object key is ``<prefix>/<media key>``, ``media_external_location`` ``s3://bucket/<key>``,
  and downloads are presigned GET URLs. The client is built as the recording service builds its
  own (:class:`atrium_shared.s3.S3Bucket`). Credentials come from botocore's usual chain (the
  ``AWS_*`` variables, shared config, instance roles) unless given.

Keys are validated (relative, no ``..``), so a key can never point outside the folder.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from atrium_shared.recording_api import StorageTarget
from atrium_shared.s3 import S3Bucket

S3_STAGING_FOLDER = ".s3-staging"
MULTIPART_THRESHOLD = 64 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024  # S3's minimum for every part but the last is 5 MiB


def media_key(account_sid: str, recording_sid: str, container: str) -> str:
    """The media key of a recording: ``<account_sid>/<recording_sid>.<container>``."""
    key = f"{account_sid}/{recording_sid}.{container}"
    check_key(key)
    return key


def check_key(key: str) -> PurePosixPath:
    path = PurePosixPath(key)
    if (
        not key
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in key.split("/"))
        or "\\" in key
        or "\x00" in key
    ):
        raise ValueError(f"bad media key {key!r}")
    return path


@dataclass(frozen=True)
class StoredMedia:
    key: str  # the media key (relative; without the S3 prefix)
    size: int  # bytes
    external_location: str | None = None  # s3://bucket/object-key for S3 storage


class StorageError(RuntimeError):
    """The media could not be stored (the recording fails with RecordingUpload)."""


class RecordingStorage(Protocol):
    def local_path(self, key: str) -> Path:
        """Where the recorder writes the file of ``key``."""
        ...

    async def store(self, key: str) -> StoredMedia:
        """Make the finished file at ``local_path(key)`` the recording's media."""
        ...

    async def presign(self, key: str, expires_in: int) -> str | None:
        """A time-limited download URL, or None when the gateway serves the file itself."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the media (a missing one is not an error)."""
        ...


class LocalStorage:
    """Recordings stay where they were written, under ``root``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def local_path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).parts)

    async def store(self, key: str) -> StoredMedia:
        path = self.local_path(key)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
        except OSError as exc:
            raise StorageError(f"{key}: {exc}") from exc
        return StoredMedia(key=key, size=size)

    async def presign(self, key: str, expires_in: int) -> str | None:
        check_key(key)
        return None

    async def delete(self, key: str) -> None:
        path = self.local_path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)


class S3Storage:
    """An S3-compatible bucket, through aiobotocore (a client per operation)."""

    def __init__(
        self,
        bucket: str,
        *,
        staging_dir: Path | str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session: AioSession | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        part_size: int = PART_SIZE,
    ) -> None:
        if not bucket:
            raise ValueError("S3 storage needs a bucket")
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 parts are at least 5 MiB")
        self._bucket = S3Bucket(bucket, prefix.strip("/"), endpoint_url, region)
        self.bucket = bucket
        self.prefix = self._bucket.prefix
        self.endpoint_url = endpoint_url
        self.region = region  # None: botocore's own choice (AWS_DEFAULT_REGION, shared config)
        self.staging_dir = Path(staging_dir)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self._credentials = (access_key_id, secret_access_key)
        self._session = session or get_session()
        self._config = AioConfig(**self._bucket.config_args())

    def object_key(self, key: str) -> str:
        check_key(key)
        return self._bucket.object_key(key)

    def location(self, key: str) -> str:
        check_key(key)
        return self._bucket.location(key)

    def local_path(self, key: str) -> Path:
        return self.staging_dir.joinpath(*check_key(key).parts)

    def _client(self) -> AbstractAsyncContextManager[Any]:
        access_key_id, secret_access_key = self._credentials
        return self._session.create_client(  # type: ignore[no-any-return]
            "s3",
            **self._bucket.client_args(),
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=self._config,
        )

    async def store(self, key: str) -> StoredMedia:
        path = self.local_path(key)
        object_key = self.object_key(key)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
            async with self._client() as client:
                if size <= self.multipart_threshold:
                    body = await asyncio.to_thread(path.read_bytes)
                    await client.put_object(
                        Bucket=self.bucket, Key=object_key, Body=body, ContentType=_mime(key)
                    )
                else:
                    await self._multipart(client, path, object_key, size, _mime(key))
                head = await client.head_object(Bucket=self.bucket, Key=object_key)
        except Exception as exc:  # botocore and aiohttp errors alike; the file stays for a retry
            raise StorageError(f"upload of {key} to {self.location(key)} failed: {exc}") from exc
        if head.get("ContentLength") != size:
            raise StorageError(
                f"upload of {key}: stored {head.get('ContentLength')} bytes of {size}"
            )
        await asyncio.to_thread(path.unlink, missing_ok=True)
        return StoredMedia(key=key, size=size, external_location=self.location(key))

    async def _multipart(
        self, client: Any, path: Path, object_key: str, size: int, content_type: str
    ) -> None:
        created = await client.create_multipart_upload(
            Bucket=self.bucket, Key=object_key, ContentType=content_type
        )
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            with path.open("rb") as file:
                number = 1
                while True:
                    chunk = await asyncio.to_thread(file.read, self.part_size)
                    if not chunk:
                        break
                    answer = await client.upload_part(
                        Bucket=self.bucket,
                        Key=object_key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                    )
                    parts.append({"ETag": answer["ETag"], "PartNumber": number})
                    number += 1
            await client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=object_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            try:
                await client.abort_multipart_upload(
                    Bucket=self.bucket, Key=object_key, UploadId=upload_id
                )
            except Exception:  # the original error is what matters
                pass
            raise

    async def presign(self, key: str, expires_in: int) -> str | None:
        async with self._client() as client:
            url: str = await client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": self.object_key(key)},
                ExpiresIn=expires_in,
            )
        return url

    async def delete(self, key: str) -> None:
        async with self._client() as client:
            await client.delete_object(Bucket=self.bucket, Key=self.object_key(key))
        await asyncio.to_thread(self.local_path(key).unlink, missing_ok=True)


def _mime(key: str) -> str:
    return "video/x-matroska" if key.endswith(".mkv") else "audio/x-matroska"


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, prefix = url[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def storage_for(
    target: StorageTarget,
    recordings_dir: Path | str,
    *,
    default_endpoint_url: str | None = None,
    default_region: str | None = None,
    session: AioSession | None = None,
) -> RecordingStorage:
    """The storage a recording command names (``StorageTarget``), with the worker's settings
    (``Settings.recordings_dir``, ``Settings.recordings_s3_endpoint_url`` and
    ``Settings.recordings_s3_region`` for what the target leaves out; the recording service
    writes the deployment's region into the targets it makes)."""
    root = Path(recordings_dir)
    if target.kind == "local":
        return LocalStorage(root)
    bucket = S3Bucket.of(
        target, default_endpoint_url=default_endpoint_url, default_region=default_region
    )
    return S3Storage(
        bucket.name,
        staging_dir=root / S3_STAGING_FOLDER,
        prefix=bucket.prefix,
        endpoint_url=bucket.endpoint_url,
        region=bucket.region,
        session=session,
    )
