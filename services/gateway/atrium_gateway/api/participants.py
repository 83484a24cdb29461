"""REST v1 Participants of a room: list, fetch by SID or identity, kick."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from atrium_gateway import wire
from atrium_gateway.api.dependencies import (
    BaseUrl,
    Participants,
    ParticipantsQuery,
    PathParticipant,
    PathRoom,
    StatusField,
    json_response,
    rest_router,
)
from atrium_shared.participant_api import (
    AnonymizeParticipantRequest,
    ListParticipantsRequest,
    UpdateParticipantRequest,
)

router = rest_router("/v1/Rooms/{room}")


@router.get("/Participants", response_model=wire.ParticipantList)
async def list_participants(
    query: ParticipantsQuery, room: PathRoom, participants: Participants, base: BaseUrl
) -> JSONResponse:
    # Twilio lists connected participants of a live room, and only the disconnected ones of an
    # ended room.
    default_status = "connected" if room.status == "in-progress" else "disconnected"
    request = ListParticipantsRequest(
        account_sid=room.account_sid,
        room_sid=room.sid,
        **query.request_fields(status=default_status),
    )
    found = await participants.list_participants(request)
    url = f"{wire.room_url(base, room.sid)}/Participants"
    return json_response(
        wire.render_page(wire.ParticipantList, wire.render_participant, found, query, base, url)
    )


@router.get("/Participants/{participant}", response_model=wire.ParticipantResource)
async def fetch_participant(found: PathParticipant, base: BaseUrl) -> JSONResponse:
    return json_response(wire.render_participant(found, base))


# 202, as Twilio's spec answers an update.
@router.post(
    "/Participants/{participant}", status_code=202, response_model=wire.ParticipantResource
)
async def update_participant(
    room: PathRoom, participants: Participants, base: BaseUrl, participant: str, form: StatusField
) -> JSONResponse:
    """``Status=disconnected`` removes the participant from the room."""
    update = UpdateParticipantRequest(
        account_sid=room.account_sid,
        room_sid=room.sid,
        sid_or_identity=participant,
        status=form.Status,
    )
    return json_response(wire.render_participant(await participants.update(update), base), 202)


@router.post("/Participants/{participant}/Anonymize", response_model=wire.AnonymizeResource)
async def anonymize_participant(
    room: PathRoom, participants: Participants, base: BaseUrl, participant: str
) -> JSONResponse:
    """The participant's identity becomes its SID in REST, stored callbacks and recordings
    (200, as Twilio's spec); a participant still connected is a 400."""
    request = AnonymizeParticipantRequest(
        account_sid=room.account_sid, room_sid=room.sid, sid_or_identity=participant
    )
    return json_response(wire.render_anonymized(await participants.anonymize(request), base))
