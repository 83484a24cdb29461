"""REST v1 SubscribeRules of a participant: fetch and update (the track service owns them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form
from fastapi.responses import JSONResponse

from atrium_gateway import wire
from atrium_gateway.api.dependencies import (
    Participants,
    PathParticipant,
    PathRoom,
    Tracks,
    json_response,
    participant_of,
    rest_router,
)
from atrium_shared import errors
from atrium_shared.errors import SUBSCRIPTION_UNSUPPORTED, AtriumError
from atrium_shared.track_api import FetchSubscribeRulesRequest, SetSubscribeRulesRequest

router = rest_router("/v1/Rooms/{room}/Participants/{participant}")

# Twilio answers 53117 for subscription operations a room type does not support.
UNSUPPORTED_ROOM_TYPES = ("go", "peer-to-peer")  # media goes peer to peer: nothing to route


@router.get("/SubscribeRules", response_model=wire.SubscribeRulesResource)
async def fetch_subscribe_rules(owner: PathParticipant, tracks: Tracks) -> JSONResponse:
    rules = await tracks.fetch_rules(
        FetchSubscribeRulesRequest(
            account_sid=owner.account_sid, room_sid=owner.room_sid, participant_sid=owner.sid
        )
    )
    return json_response(wire.render_subscribe_rules(rules))


@router.post("/SubscribeRules", response_model=wire.SubscribeRulesResource)
async def update_subscribe_rules(
    room: PathRoom,
    participants: Participants,
    tracks: Tracks,
    participant: str,
    rules: Annotated[str | None, Form(alias="Rules")] = None,
) -> JSONResponse:
    """``Rules``: a JSON array of rules, or an object with a ``rules`` array (twilio-java);
    invalid rules are 53215 and change nothing."""
    if room.type in UNSUPPORTED_ROOM_TYPES:
        raise AtriumError(
            SUBSCRIPTION_UNSUPPORTED,
            "The subscription operation requested is not supported for the Room type",
            400,
        )
    owner = await participant_of(participants, room, participant)
    if owner.status == "disconnected":
        raise errors.not_found(f"/Rooms/{room.sid}/Participants/{owner.sid}/SubscribeRules")
    result = await tracks.set_rules(
        SetSubscribeRulesRequest(
            account_sid=owner.account_sid,
            room_sid=owner.room_sid,
            participant_sid=owner.sid,
            rules=rules,
        )
    )
    return json_response(wire.render_subscribe_rules(result.rules))
