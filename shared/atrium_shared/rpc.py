"""Request/reply over NATS with typed errors.

A handler returns :class:`RpcReply`: either ``result`` or a Twilio ``error``. Callers use
:func:`call`, which raises :class:`AtriumError` for error replies, so a service's typed failure
reaches the REST client unchanged.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from faststream.nats import NatsBroker
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel, ValidationError

from atrium_shared import errors
from atrium_shared.errors import AtriumError, ErrorBody
from atrium_shared.infra import UNREACHABLE, is_connected, unavailable

log = logging.getLogger("atrium.rpc")

ResultT = TypeVar("ResultT", bound=BaseModel)
P = ParamSpec("P")


class RpcReply(BaseModel):
    result: dict[str, Any] | None = None
    error: ErrorBody | None = None


def reply_handler(
    func: Callable[P, Awaitable[BaseModel]],
) -> Callable[P, Awaitable[RpcReply]]:
    """Wrap a handler so every outcome, failures included, is a typed reply."""

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> RpcReply:
        try:
            result = await func(*args, **kwargs)
        except AtriumError as exc:
            return RpcReply(error=exc.body())
        except ValidationError as exc:
            return RpcReply(error=AtriumError(errors.INVALID_PARAMETER, str(exc), 400).body())
        except UNREACHABLE as exc:
            # Redis (or NATS) is down or restarting: a 503 the caller may retry, not a bug.
            log.warning("handler %s: %s unreachable: %s", func.__name__, type(exc).__name__, exc)
            return RpcReply(error=unavailable(exc).body())
        except Exception:
            log.exception("handler %s failed", func.__name__)
            return RpcReply(error=AtriumError(errors.INTERNAL, "Internal error", 500).body())
        return RpcReply(result=result.model_dump(mode="json"))

    # FastStream reads the signature to decode requests and to describe replies; the reply is
    # always an RpcReply, whatever the wrapped function returns.
    wrapper.__signature__ = inspect.signature(func).replace(  # type: ignore[attr-defined]
        return_annotation=RpcReply
    )
    return wrapper


async def call(
    broker: NatsBroker,
    subject: str,
    request: BaseModel,
    result_type: type[ResultT],
    timeout: float = 5.0,
) -> ResultT:
    """Send ``request`` to ``subject`` and return the typed result, or raise AtriumError.

    While the connection to NATS is down the request is refused at once (20503) rather than
    queued: the NATS client would send its queue after reconnecting, and a request the caller
    was told failed must not take effect later (a room created after its 503).
    """
    if not is_connected(broker):
        raise AtriumError(errors.SERVICE_UNAVAILABLE, "Service unavailable (NATS)", 503)
    try:
        message = await broker.request(request, subject, timeout=timeout)
    except (NoRespondersError, NatsTimeoutError, TimeoutError) as exc:
        raise AtriumError(
            errors.SERVICE_UNAVAILABLE, f"Service unavailable ({type(exc).__name__})", 503
        ) from exc
    except UNREACHABLE as exc:
        raise unavailable(exc) from exc
    reply = RpcReply.model_validate_json(message.body)
    if reply.error is not None:
        raise AtriumError.from_body(reply.error)
    return result_type.model_validate(reply.result or {})
