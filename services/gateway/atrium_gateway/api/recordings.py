"""REST v1 Recordings: ``/v1/Recordings`` and ``/v1/Rooms/{RoomSid}/Recordings`` (list, fetch,
delete, the ``/Media`` redirect), and the signed download of files kept in the local folder.

The recording service owns the records; both paths show the same recordings, the room's path
with ``room_sid``, the account's with the status callback. ``/Media`` answers as Twilio does: a
302 to a time-limited URL (``Location``, and ``redirect_to`` in a JSON body for clients that do
not follow redirects, as twilio-python's ``client.request``). The URL is the bucket's presigned
one for S3, else the gateway's own signed ``.../Media/file`` (:mod:`atrium_gateway.media_links`),
served here without Basic auth.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, JSONResponse

from atrium_gateway import wire
from atrium_gateway.api.dependencies import (
    AppSettings,
    Auth,
    BaseUrl,
    MediaSigner,
    Recordings,
    RecordingsQuery,
    RecordingsRoom,
    RoomRecordingsQuery,
    json_response,
    rest_router,
)
from atrium_gateway.media_links import MediaUrlSigner
from atrium_gateway.ports import RecordingsPort
from atrium_shared import errors
from atrium_shared.recording_api import (
    DeleteRecordingRequest,
    FetchRecordingRequest,
    RecordingMediaRequest,
)

router = rest_router("/v1")
# The signed download: its URL is the credential, so no Basic auth (and not in the OpenAPI
# document of Twilio's API).
media_files = APIRouter(prefix="/v1")


def redirect(url: str) -> JSONResponse:
    return JSONResponse({"redirect_to": url}, status_code=302, headers={"Location": url})


async def _media_redirect(
    recordings: RecordingsPort,
    signer: MediaUrlSigner,
    base: str,
    account_sid: str,
    recording_sid: str,
    room_sid: str | None = None,
) -> JSONResponse:
    location = await recordings.media(
        RecordingMediaRequest(
            account_sid=account_sid,
            recording_sid=recording_sid,
            room_sid=room_sid,
            expires_in=signer.ttl_seconds,
        )
    )
    if location.url is not None:
        return redirect(location.url)
    return redirect(signer.url(base, account_sid, location.recording.sid, time.time()))


# /v1/Recordings -------------------------------------------------------------------------------
@router.get("/Recordings", response_model=wire.RecordingList)
async def list_recordings(
    account: Auth, query: RecordingsQuery, recordings: Recordings, base: BaseUrl
) -> JSONResponse:
    found = await recordings.list_recordings(wire.list_recordings_request(account.sid, query))
    url = f"{base}/v1/Recordings"
    return json_response(
        wire.render_page(wire.RecordingList, wire.render_recording, found, query, base, url)
    )


@router.get("/Recordings/{recording}", response_model=wire.RecordingResource)
async def fetch_recording(
    account: Auth, recordings: Recordings, base: BaseUrl, recording: str
) -> JSONResponse:
    found = await recordings.fetch(
        FetchRecordingRequest(account_sid=account.sid, recording_sid=recording)
    )
    return json_response(wire.render_recording(found, base))


@router.delete("/Recordings/{recording}", status_code=204, response_class=Response)
async def delete_recording(account: Auth, recordings: Recordings, recording: str) -> Response:
    """The media is removed; the recording stays listed, ``deleted``."""
    await recordings.delete(
        DeleteRecordingRequest(account_sid=account.sid, recording_sid=recording)
    )
    return Response(status_code=204)


@router.get("/Recordings/{recording}/Media", status_code=302)
async def recording_media(
    account: Auth, recordings: Recordings, signer: MediaSigner, base: BaseUrl, recording: str
) -> JSONResponse:
    return await _media_redirect(recordings, signer, base, account.sid, recording)


# /v1/Rooms/{RoomSid}/Recordings ----------------------------------------------------------------
@router.get("/Rooms/{room}/Recordings", response_model=wire.RoomRecordingList)
async def list_room_recordings(
    account: Auth,
    query: RoomRecordingsQuery,
    room: RecordingsRoom,
    recordings: Recordings,
    base: BaseUrl,
) -> JSONResponse:
    request = wire.list_recordings_request(account.sid, query, room_sid=room)
    found = await recordings.list_recordings(request)
    url = f"{wire.room_url(base, room)}/Recordings"
    return json_response(
        wire.render_page(
            wire.RoomRecordingList, wire.render_room_recording, found, query, base, url
        )
    )


@router.get("/Rooms/{room}/Recordings/{recording}", response_model=wire.RoomRecordingResource)
async def fetch_room_recording(
    account: Auth, room: RecordingsRoom, recordings: Recordings, base: BaseUrl, recording: str
) -> JSONResponse:
    found = await recordings.fetch(
        FetchRecordingRequest(account_sid=account.sid, recording_sid=recording, room_sid=room)
    )
    return json_response(wire.render_room_recording(found, base))


@router.delete("/Rooms/{room}/Recordings/{recording}", status_code=204, response_class=Response)
async def delete_room_recording(
    account: Auth, room: RecordingsRoom, recordings: Recordings, recording: str
) -> Response:
    await recordings.delete(
        DeleteRecordingRequest(account_sid=account.sid, recording_sid=recording, room_sid=room)
    )
    return Response(status_code=204)


@router.get("/Rooms/{room}/Recordings/{recording}/Media", status_code=302)
async def room_recording_media(
    account: Auth,
    room: RecordingsRoom,
    recordings: Recordings,
    signer: MediaSigner,
    base: BaseUrl,
    recording: str,
) -> JSONResponse:
    return await _media_redirect(recordings, signer, base, account.sid, recording, room)


# The signed download of a local file ------------------------------------------------------------
def local_file(root: str, media_key: str) -> tuple[Path, os.stat_result] | None:
    """The file ``media_key`` names under ``root`` and its size, or None: missing, not a
    regular file, or outside ``root`` (``..``, an absolute key, a symlink out)."""
    folder = Path(root).resolve()
    path = (folder / media_key).resolve()
    if folder not in path.parents:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    return path, stat


@media_files.api_route(
    "/Recordings/{recording}/Media/file", methods=["GET", "HEAD"], include_in_schema=False
)
async def recording_file(
    recordings: Recordings,
    signer: MediaSigner,
    settings: AppSettings,
    recording: str,
    account: Annotated[str | None, Query()] = None,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query()] = None,
) -> Response:
    """A bad or expired signature is a 403 (as S3's); a recording that is gone (deleted, of
    another account, its file missing) a 404. The recording service is asked each time, so a
    URL stops working as soon as its recording is deleted."""
    account_sid = signer.check(account, recording, expires, signature, time.time())
    location = await recordings.media(
        RecordingMediaRequest(account_sid=account_sid, recording_sid=recording)
    )
    if location.url is not None:
        return redirect(location.url)
    found = location.recording
    missing = errors.not_found(f"/Recordings/{recording}/Media")
    if location.media_key is None:
        raise missing
    served = await asyncio.to_thread(local_file, settings.recordings_dir, location.media_key)
    if served is None:
        raise missing
    path, stat = served
    return FileResponse(
        path,
        stat_result=stat,
        media_type=wire.MEDIA_CONTENT_TYPES[found.container_format],
        filename=f"{found.sid}.{found.container_format}",
    )
