"""How Atrium addresses a recordings bucket, for every service that talks to one.

The media worker uploads a recording's file; the recording service presigns its download URL and
deletes it. Both must reach the same object on the same server in the same way, so both build
their aiobotocore client from :class:`S3Bucket`:

    bucket = S3Bucket.of(recording.storage, default_endpoint_url=..., default_region=...)
    async with session.create_client("s3", **bucket.client_args(),
                                     config=AioConfig(**bucket.config_args())) as client: ...

This module only computes the arguments (aiobotocore is a dependency of those services, not of
this package). Credentials are never part of them: botocore's own chain finds them
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, shared config, instance roles).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from atrium_shared.recording_api import StorageTarget


@dataclass(frozen=True)
class S3Bucket:
    """A bucket, the prefix recordings go under, and the server it is on (``endpoint_url``
    None: AWS itself; ``region`` None: botocore's own choice)."""

    name: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None

    @classmethod
    def of(
        cls,
        target: StorageTarget,
        *,
        default_endpoint_url: str | None = None,
        default_region: str | None = None,
    ) -> S3Bucket:
        """The bucket of an ``s3`` storage target; what the target leaves out comes from the
        deployment (``Settings.recordings_s3_endpoint_url``, ``Settings.recordings_s3_region``).
        """
        if target.kind != "s3" or not target.bucket:
            raise ValueError("an s3 storage target needs a bucket")
        return cls(
            name=target.bucket,
            prefix=target.prefix.strip("/"),
            endpoint_url=target.endpoint_url or default_endpoint_url,
            region=target.region or default_region,
        )

    def object_key(self, media_key: str) -> str:
        """``<prefix>/<media key>``: the object of a recording (the key is checked by the
        caller)."""
        return f"{self.prefix}/{media_key}" if self.prefix else media_key

    def location(self, media_key: str) -> str:
        """``s3://bucket/<object key>``: a recording's ``media_external_location``."""
        return f"s3://{self.name}/{self.object_key(media_key)}"

    def client_args(self) -> dict[str, Any]:
        """Keyword arguments of ``AioSession.create_client("s3", ...)`` (no credentials)."""
        return {"region_name": self.region, "endpoint_url": self.endpoint_url}

    def config_args(self) -> dict[str, Any]:
        """Keyword arguments of ``AioConfig``: SigV4, path-style addressing on a server other
        than AWS (what MinIO, Ceph and moto expect), a few retries."""
        return {
            "signature_version": "s3v4",
            "s3": {"addressing_style": "path" if self.endpoint_url else "auto"},
            "retries": {"max_attempts": 3, "mode": "standard"},
        }
