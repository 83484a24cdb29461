"""Twilio's error body and the error codes Atrium uses.

Every service raises :class:`AtriumError`; the RPC layer carries it as :class:`ErrorBody` and the
gateway renders it as Twilio's JSON body with the matching HTTP status.
"""

from __future__ import annotations

from pydantic import BaseModel

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


class ErrorBody(BaseModel):
    """Twilio's error body. No ``type``/``title``: twilio-python would treat it as RFC 9457."""

    code: int
    message: str
    more_info: str
    status: int


class AtriumError(Exception):
    """A failure with a Twilio error code, safe to show to the caller."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status

    def body(self) -> ErrorBody:
        return ErrorBody(
            code=self.code,
            message=self.message,
            more_info=MORE_INFO.format(code=self.code),
            status=self.status,
        )

    @classmethod
    def from_body(cls, body: ErrorBody) -> AtriumError:
        return cls(body.code, body.message, body.status)


# Codes, with the HTTP status Twilio answers them with. Every code Atrium raises is defined here,
# once; services import it by name.
AUTHENTICATE = 20003  # 401
NOT_FOUND = 20404  # 404
FORBIDDEN = 20403  # 403: e.g. an expired or tampered signed media URL
METHOD_NOT_ALLOWED = 20004  # 405
INVALID_PARAMETER = 20001  # 400, a malformed parameter without a more specific code
SERVICE_UNAVAILABLE = 20503  # 503
INTERNAL = 20500  # 500

# Access Tokens (reach the client over signaling).
TOKEN_INVALID = 20101
TOKEN_INVALID_HEADER = 20102
TOKEN_INVALID_ISSUER = 20103
TOKEN_EXPIRED = 20104
TOKEN_NOT_YET_VALID = 20105
TOKEN_INVALID_GRANTS = 20106
TOKEN_INVALID_SIGNATURE = 20107

# Signaling.
SIGNALING_ERROR = 53000
SESSION_NOT_FOUND = 53001
SIGNALING_INVALID_MESSAGE = 53003

# Media (the server's side of the offer/answer).
SERVER_REMOTE_DESCRIPTION_FAILED = 53403

# Rooms.
ROOM_NAME_INVALID = 53100
ROOM_NAME_TOO_LONG = 53101
ROOM_NAME_INVALID_CHARS = 53102
ROOM_CREATE_FAILED = 53103
ROOM_CONNECT_FAILED = 53104
ROOM_FULL = 53105
ROOM_NOT_FOUND = 53106
MAX_PARTICIPANTS_OUT_OF_RANGE = 53107
ROOM_TYPE_INVALID = 53108
TIMEOUT_OUT_OF_RANGE = 53109
STATUS_CALLBACK_METHOD_INVALID = 53110
STATUS_CALLBACK_INVALID = 53111
STATUS_INVALID = 53112
ROOM_EXISTS = 53113
ROOM_PARAMS_INCOMPATIBLE = 53114
MEDIA_REGION_INVALID = 53115
NO_MEDIA_SERVERS = 53116
SUBSCRIPTION_UNSUPPORTED = 53117
ROOM_COMPLETED = 53118
RECORDING_RULES_INVALID = 53120
MAX_PARTICIPANT_DURATION_OUT_OF_RANGE = 53123
AUDIO_ONLY_UNSUPPORTED = 53124
TRACK_KIND_UNSUPPORTED = 53125  # e.g. a video track in an AudioOnly room

# Participants.
IDENTITY_INVALID = 53200
IDENTITY_TOO_LONG = 53201
MAX_PUBLISHED_TRACKS_REACHED = 53203
PARTICIPANT_NOT_FOUND = 53204
DUPLICATE_IDENTITY = 53205
SUBSCRIBE_RULES_INVALID = 53215

# Tracks.
TRACK_INVALID = 53300
TRACK_NAME_INVALID = 53301
TRACK_NAME_TOO_LONG = 53302
TRACK_NAME_DUPLICATED = 53304


def not_found(path: str) -> AtriumError:
    return AtriumError(NOT_FOUND, f"The requested resource {path} was not found", 404)
