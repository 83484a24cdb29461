"""REST v1 RecordingSettings/Default: an account's storage target for recordings.

The recording service validates (FriendlyName required, the bucket URL, CR SIDs) and stores;
nothing here logs the form, and the resource shows SIDs of credentials, never a secret.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form
from fastapi.responses import JSONResponse

from atrium_gateway import wire
from atrium_gateway.api.dependencies import Auth, BaseUrl, Recordings, json_response, rest_router
from atrium_shared.recording_api import FetchRecordingSettingsRequest

router = rest_router("/v1/RecordingSettings")


@router.get("/Default", response_model=wire.RecordingSettingsResource)
async def fetch_recording_settings(
    account: Auth, recordings: Recordings, base: BaseUrl
) -> JSONResponse:
    found = await recordings.fetch_settings(FetchRecordingSettingsRequest(account_sid=account.sid))
    return json_response(wire.render_recording_settings(found, base))


@router.post("/Default", response_model=wire.RecordingSettingsResource)
async def update_recording_settings(
    account: Auth,
    recordings: Recordings,
    base: BaseUrl,
    form: Annotated[wire.RecordingSettingsForm, Form()],
) -> JSONResponse:
    """twilio-python's ``recording_settings().create(...)``. 200: the spec's status (an older
    fixture shows 201; twilio-python takes any 2xx)."""
    request = wire.set_recording_settings_request(account.sid, form)
    return json_response(
        wire.render_recording_settings(await recordings.set_settings(request), base)
    )
