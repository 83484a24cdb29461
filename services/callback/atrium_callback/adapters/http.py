"""HTTP: sends one status-callback request and reports how it went, never raising.

The client is instrumented with OpenTelemetry, so each request is a span of the current trace
(the delivery makes the event's consume span current before sending).
"""

from __future__ import annotations

import asyncio

import httpx
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

from atrium_callback.domain import AttemptResult, CallbackRequest, Timeouts

USER_AGENT = "Atrium-Callbacks/1.0"


class HttpCallbackSender:
    def __init__(self) -> None:
        # No pooled connection lives long: a webhook that restarts must not see stale sockets.
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=20, keepalive_expiry=5.0),
            headers={"User-Agent": USER_AGENT},
        )
        HTTPXClientInstrumentor.instrument_client(self._client)

    async def send(self, request: CallbackRequest, timeouts: Timeouts) -> AttemptResult:
        headers = {"X-Twilio-Signature": request.signature}
        timeout = httpx.Timeout(
            connect=timeouts.connect_s,
            read=timeouts.read_s,
            write=timeouts.read_s,
            pool=timeouts.connect_s,
        )
        try:
            async with asyncio.timeout(timeouts.total_s):
                response = await self._client.request(
                    request.method,
                    request.url,
                    data=request.form,
                    headers=headers,
                    auth=request.basic_auth,
                    timeout=timeout,
                )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return AttemptResult(failure="ct", error=_describe(exc))
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            return AttemptResult(failure="ct", error=_describe(exc), permanent=True)
        except (httpx.TransportError, TimeoutError) as exc:
            # Connected, then the response did not come (timeout, reset, protocol error).
            return AttemptResult(failure="rt", error=_describe(exc))
        return AttemptResult(status=response.status_code)

    async def close(self) -> None:
        await self._client.aclose()


def _describe(exc: BaseException) -> str:
    # The exception text can hold the URL; the URL we send has no credentials in it.
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
