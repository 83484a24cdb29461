"""Status callbacks across services: what a StatusCallback URL must be (REST rooms and account
defaults alike), and the contract between the callback service and its readers (the CLI): the
delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel

MAX_CALLBACK_URL_LENGTH = 4000


def is_valid_status_callback(url: str) -> bool:
    """An absolute http(s) URL with a host, no whitespace, at most 4000 characters."""
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:  # e.g. a malformed IPv6 host or port
        return False
    return (
        len(url) <= MAX_CALLBACK_URL_LENGTH
        and parts.scheme in ("http", "https")
        and bool(hostname)
        and not any(ch.isspace() for ch in url)
    )


class DeliveryQuery(BaseModel):
    """Ask the callback service for its delivery log or its dead letters."""

    kind: Literal["deliveries", "dead-letters"] = "deliveries"
    account_sid: str | None = None
    room_sid: str | None = None
    limit: int = 50


class DeliveryRecord(BaseModel):
    """One status callback: where it went, how many tries, how it ended."""

    event_id: str
    account_sid: str
    room_sid: str
    event_type: str
    sequence_number: int
    url: str  # without query credentials; fragments (connection overrides) stripped
    method: Literal["GET", "POST"]
    outcome: Literal["delivered", "dead-letter"]
    attempts: int
    last_status: int | None = None  # HTTP status of the last try, None if no response
    last_error: str | None = None
    first_attempt_at: datetime
    finished_at: datetime


class DeliveryList(BaseModel):
    records: list[DeliveryRecord]
