"""REST v1 SubscribeRules of a participant: fetch and update (the track service owns them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from atrium_gateway.common import Auth, json_response, rpc
from atrium_gateway.participants import participant_of, room_of
from atrium_shared import errors, subjects
from atrium_shared.errors import SUBSCRIPTION_UNSUPPORTED, AtriumError
from atrium_shared.models import ParticipantInfo
from atrium_shared.timefmt import to_json_date
from atrium_shared.track_api import (
    FetchSubscribeRulesRequest,
    SetSubscribeRulesRequest,
    SetSubscribeRulesResult,
    SubscribeRules,
)

router = APIRouter(prefix="/v1/Rooms/{room}/Participants/{participant}")

# Twilio answers 53117 for subscription operations a room type does not support.
UNSUPPORTED_ROOM_TYPES = ("peer-to-peer",)


class SubscribeRuleResource(BaseModel):
    """One rule with every key present, null when unused (as Twilio's fixture shows it)."""

    type: str
    all: bool | None
    publisher: str | None
    track: str | None
    kind: str | None
    priority: str | None


class SubscribeRulesResource(BaseModel):
    participant_sid: str
    room_sid: str
    date_created: str | None
    date_updated: str | None
    rules: list[SubscribeRuleResource]


def render(rules: SubscribeRules) -> SubscribeRulesResource:
    return SubscribeRulesResource(
        participant_sid=rules.participant_sid,
        room_sid=rules.room_sid,
        date_created=to_json_date(rules.date_created),
        date_updated=to_json_date(rules.date_updated),
        rules=[SubscribeRuleResource(**rule.model_dump()) for rule in rules.rules],
    )


async def _participant(
    request: Request, account_sid: str, room: str, participant: str, *, updating: bool
) -> ParticipantInfo:
    found = await room_of(request, account_sid, room)
    if updating and found.type in UNSUPPORTED_ROOM_TYPES:
        raise AtriumError(
            SUBSCRIPTION_UNSUPPORTED,
            "The subscription operation requested is not supported for the Room type", 400,
        )
    owner = await participant_of(request, account_sid, found, participant)
    if updating and owner.status == "disconnected":
        raise errors.not_found(f"/Rooms/{found.sid}/Participants/{owner.sid}/SubscribeRules")
    return owner


@router.get("/SubscribeRules", response_model=SubscribeRulesResource)
async def fetch_subscribe_rules(
    request: Request, account: Auth, room: str, participant: str
) -> JSONResponse:
    owner = await _participant(request, account.sid, room, participant, updating=False)
    result = await rpc(
        request, subjects.TRACK_RULES_GET,
        FetchSubscribeRulesRequest(account_sid=account.sid, room_sid=owner.room_sid,
                                   participant_sid=owner.sid),
        SubscribeRules,
    )
    return json_response(render(result), 200)


@router.post("/SubscribeRules", response_model=SubscribeRulesResource)
async def update_subscribe_rules(
    request: Request,
    account: Auth,
    room: str,
    participant: str,
    rules: Annotated[str | None, Form(alias="Rules")] = None,
) -> JSONResponse:
    """``Rules``: a JSON array of rules, or an object with a ``rules`` array (twilio-java);
    invalid rules are 53215 and change nothing."""
    owner = await _participant(request, account.sid, room, participant, updating=True)
    result = await rpc(
        request, subjects.TRACK_RULES_SET,
        SetSubscribeRulesRequest(account_sid=account.sid, room_sid=owner.room_sid,
                                 participant_sid=owner.sid, rules=rules),
        SetSubscribeRulesResult,
    )
    return json_response(render(result.rules), 200)
