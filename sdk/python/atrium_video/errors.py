"""Errors carrying Twilio's error codes, as twilio-video.js's ``TwilioError`` does."""

from __future__ import annotations

# The codes a client meets most, with twilio-video.js's messages.
MESSAGES: dict[int, str] = {
    20101: "Invalid Access Token",
    20102: "Invalid Access Token header",
    20103: "Invalid Access Token issuer/subject",
    20104: "Access Token expired or expiration date invalid",
    20105: "Access Token not yet valid",
    20106: "Invalid Access Token grants",
    20107: "Invalid Access Token signature",
    53000: "Signaling connection error",
    53001: "Signaling connection disconnected",
    53002: "Signaling connection timed out",
    53003: "Client received an invalid signaling message",
    53006: "Video server is busy",
    53100: "Room name is invalid",
    53105: "Room contains too many Participants",
    53106: "Room not found",
    53118: "Room completed",
    53205: "Participant disconnected because of duplicate identity",
    53400: "Client is unable to create or apply a local media description",
    53405: "Media connection failed or Media activity ceased",
}

SIGNALING_CONNECTION_ERROR = 53000
SIGNALING_DISCONNECTED = 53001
SIGNALING_TIMEOUT = 53002
INVALID_SIGNALING_MESSAGE = 53003
SERVER_BUSY = 53006
ROOM_COMPLETED = 53118
MEDIA_CONNECTION_ERROR = 53405


class TwilioError(Exception):
    """An error with Twilio's numeric ``code`` (see twilio.com/docs/api/errors)."""

    def __init__(self, code: int, message: str | None = None) -> None:
        self.code = code
        self.message = message or MESSAGES.get(code, "Unknown error")
        super().__init__(f"{self.code}: {self.message}")

    def __repr__(self) -> str:
        return f"TwilioError({self.code!r}, {self.message!r})"


class TrackEnded(Exception):
    """Raised by ``recv()`` on a remote media track that was unsubscribed or whose room ended."""
