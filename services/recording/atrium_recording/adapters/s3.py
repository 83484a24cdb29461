"""Recordings kept in an S3-compatible bucket: presigned download URLs and deletion, through
aiobotocore.

The media worker uploaded the file to ``<prefix>/<media key>`` of the recording's storage target;
this store addresses the same object the same way (:class:`atrium_shared.s3.S3Bucket`). What a
target leaves out (endpoint, region) comes from the deployment's settings, as on the worker.
Credentials come from botocore's own chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
shared config, instance roles); they never pass through here, and no error message carries them.
A bucket that cannot be reached answers 503, so a recording is never reported deleted while its
object stays.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from atrium_recording.adapters.media import storage_unavailable
from atrium_shared.recording_api import RecordingInfo
from atrium_shared.s3 import S3Bucket

log = logging.getLogger("atrium.recording")


class S3MediaStore:
    """A client per operation (presigning is local; deletes are rare)."""

    def __init__(
        self,
        *,
        default_endpoint_url: str | None = None,
        default_region: str | None = None,
        session: AioSession | None = None,
    ) -> None:
        self.default_endpoint_url = default_endpoint_url
        self.default_region = default_region
        self._session = session or get_session()

    def bucket_of(self, recording: RecordingInfo) -> S3Bucket:
        return S3Bucket.of(
            recording.storage,
            default_endpoint_url=self.default_endpoint_url,
            default_region=self.default_region,
        )

    def _client(self, bucket: S3Bucket) -> AbstractAsyncContextManager[Any]:
        return self._session.create_client(  # type: ignore[no-any-return]
            "s3", **bucket.client_args(), config=AioConfig(**bucket.config_args())
        )

    async def presign(self, recording: RecordingInfo, expires_in: int) -> str | None:
        bucket = self.bucket_of(recording)
        try:
            async with self._client(bucket) as client:
                url: str = await client.generate_presigned_url(
                    "get_object",
                    Params={"Bucket": bucket.name, "Key": bucket.object_key(recording.media_key)},
                    ExpiresIn=expires_in,
                )
        except Exception as exc:  # botocore's errors (no credentials, a bad endpoint) alike
            raise self._unavailable("presigning", recording, bucket, exc) from exc
        return url

    async def delete(self, recording: RecordingInfo) -> None:
        """Delete the object (S3 answers a missing one as deleted too)."""
        bucket = self.bucket_of(recording)
        try:
            async with self._client(bucket) as client:
                await client.delete_object(
                    Bucket=bucket.name, Key=bucket.object_key(recording.media_key)
                )
        except Exception as exc:  # botocore and aiohttp errors alike
            raise self._unavailable("deleting", recording, bucket, exc) from exc

    @staticmethod
    def _unavailable(
        doing: str, recording: RecordingInfo, bucket: S3Bucket, exc: Exception
    ) -> Exception:
        log.warning(
            "%s %s of %s failed: %s",
            doing,
            bucket.location(recording.media_key),
            recording.sid,
            exc,
        )
        return storage_unavailable(f"{doing} the media in its bucket failed")
