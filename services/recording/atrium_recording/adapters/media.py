"""Where recordings' files are, behind :class:`atrium_recording.ports.MediaStore`.

- :class:`LocalMediaStore`: the recordings folder (``Settings.recordings_dir``) that the media
  workers write and the gateway serves from; this service only removes files from it.
- S3: :class:`atrium_recording.adapters.s3.S3MediaStore` (presigned URLs, deletion) is the ``s3``
  store of :class:`MediaStores`. Without one, :class:`NoS3MediaStore` refuses, so a recording in
  a bucket is never reported deleted while its file stays there.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from atrium_recording.ports import MediaStore
from atrium_shared import errors
from atrium_shared.errors import AtriumError
from atrium_shared.recording_api import RecordingInfo

log = logging.getLogger("atrium.recording")


def storage_unavailable(detail: str) -> AtriumError:
    return AtriumError(errors.SERVICE_UNAVAILABLE, f"Recording storage unavailable: {detail}", 503)


def _may_have_a_file(recording: RecordingInfo) -> bool:
    """A worker reported it started (or finished) writing it."""
    return recording.status == "completed" or recording.codec is not None


class LocalMediaStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path_of(self, recording: RecordingInfo) -> Path:
        """The file of a recording; a key that would leave the folder is refused."""
        root = self.root.resolve()
        path = (root / recording.media_key).resolve()
        if root not in path.parents:
            raise ValueError(f"media key {recording.media_key!r} leaves the recordings folder")
        return path

    def _delete(self, recording: RecordingInfo) -> None:
        if not self.root.is_dir():
            if _may_have_a_file(recording):
                # The workers' folder is not mounted here: the file cannot be removed.
                raise storage_unavailable("the recordings folder is not reachable")
            return
        self.path_of(recording).unlink(missing_ok=True)

    async def delete(self, recording: RecordingInfo) -> None:
        await asyncio.to_thread(self._delete, recording)

    async def presign(self, recording: RecordingInfo, expires_in: int) -> str | None:
        return None  # the gateway signs its own download URL for local files


class NoS3MediaStore:
    """S3 storage without a client: refuses (503)."""

    async def delete(self, recording: RecordingInfo) -> None:
        raise storage_unavailable("no S3 client is configured")

    async def presign(self, recording: RecordingInfo, expires_in: int) -> str | None:
        raise storage_unavailable("no S3 client is configured")


class MediaStores:
    """Routes each recording to the store of its storage target's kind."""

    def __init__(self, local: MediaStore, s3: MediaStore | None = None) -> None:
        self.local = local
        self.s3 = s3 if s3 is not None else NoS3MediaStore()

    def _of(self, recording: RecordingInfo) -> MediaStore:
        return self.s3 if recording.storage.kind == "s3" else self.local

    async def delete(self, recording: RecordingInfo) -> None:
        await self._of(recording).delete(recording)

    async def presign(self, recording: RecordingInfo, expires_in: int) -> str | None:
        return await self._of(recording).presign(recording, expires_in)
