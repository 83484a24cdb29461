"""Contract between the callback service and its readers (the CLI): the delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


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
