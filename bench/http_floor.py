"""The floor: the same HTTP stack as the gateway (FastAPI on uvicorn), one Redis SET, JSON out.

Run as ``python -m bench.http_floor`` with REDIS_URL and ATRIUM_HTTP_PORT; listens on 127.0.0.1.
It takes the same POST /v1/Rooms form the gateway does but neither parses nor authenticates it:
it stores the raw body under a fresh key and answers 201 with a small JSON object.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from redis.asyncio import Redis


def create_app(redis_url: str) -> FastAPI:
    redis = Redis.from_url(redis_url, decode_responses=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await redis.ping()
        try:
            yield
        finally:
            await redis.aclose()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/Rooms")
    async def create(request: Request) -> JSONResponse:
        body = await request.body()
        sid = "RM" + uuid.uuid4().hex
        await redis.set(f"bench:floor:{sid}", body)
        return JSONResponse({"sid": sid, "status": "in-progress"}, status_code=201)

    @app.get("/readyz")
    async def readyz() -> PlainTextResponse:
        await redis.ping()
        return PlainTextResponse("ready")

    return app


def main() -> None:
    uvicorn.run(
        create_app(os.environ["REDIS_URL"]),
        host="127.0.0.1",
        port=int(os.environ["ATRIUM_HTTP_PORT"]),
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
