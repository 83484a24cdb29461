"""What a use case raised or an RPC handler replied, for the unit tier's assertions.

Handler tests read the reply body as it travels (``RpcReply``), so they check what a caller gets
on the wire: the result, or Twilio's error body with its code, status and ``more_info``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from faststream.nats import NatsBroker
from pydantic import BaseModel

from atrium_shared.errors import MORE_INFO, AtriumError, ErrorBody
from atrium_shared.rpc import RpcReply

ResultT = TypeVar("ResultT", bound=BaseModel)


async def failure(call: Awaitable[Any]) -> AtriumError:
    """The AtriumError ``call`` raises (the test fails if it raises nothing)."""
    with pytest.raises(AtriumError) as caught:
        await call
    return caught.value


async def reply_to(broker: NatsBroker, subject: str, request: BaseModel) -> RpcReply:
    message = await broker.request(request, subject)
    return RpcReply.model_validate_json(message.body)


async def result_of(
    broker: NatsBroker, subject: str, request: BaseModel, result_type: type[ResultT]
) -> ResultT:
    """The reply's result, which must be there and without an error."""
    reply = await reply_to(broker, subject, request)
    assert reply.error is None and reply.result is not None, reply
    return result_type.model_validate(reply.result)


async def error_of(broker: NatsBroker, subject: str, request: BaseModel) -> ErrorBody:
    """The reply's Twilio error body, which must be there instead of a result."""
    reply = await reply_to(broker, subject, request)
    assert reply.result is None and reply.error is not None, reply
    assert reply.error.more_info == MORE_INFO.format(code=reply.error.code)
    return reply.error
