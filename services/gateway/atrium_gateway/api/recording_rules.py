"""REST v1 RecordingRules of a room: fetch and update (the recording service owns and validates
them: 53120 for invalid rules, 53118 once the room is completed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form
from fastapi.responses import JSONResponse

from atrium_gateway import wire
from atrium_gateway.api.dependencies import Auth, Recordings, json_response, rest_router
from atrium_shared.recording_api import FetchRecordingRulesRequest, SetRecordingRulesRequest

router = rest_router("/v1/Rooms/{room}")


@router.get("/RecordingRules", response_model=wire.RecordingRulesResource)
async def fetch_recording_rules(account: Auth, recordings: Recordings, room: str) -> JSONResponse:
    """``{room}``: a SID or an in-progress room's UniqueName, as the recording service resolves
    it (another account's room is a 20404)."""
    rules = await recordings.fetch_rules(
        FetchRecordingRulesRequest(account_sid=account.sid, room_sid=room)
    )
    return json_response(wire.render_recording_rules(rules))


@router.post("/RecordingRules", response_model=wire.RecordingRulesResource)
async def update_recording_rules(
    account: Auth,
    recordings: Recordings,
    room: str,
    rules: Annotated[str | None, Form(alias="Rules")] = None,
) -> JSONResponse:
    """``Rules``: a JSON array of rules, or an object with a ``rules`` array (twilio-java),
    passed on as sent. 200, as Twilio's spec says for this update."""
    result = await recordings.set_rules(
        SetRecordingRulesRequest(account_sid=account.sid, room_sid=room, rules=rules)
    )
    return json_response(wire.render_recording_rules(result))
