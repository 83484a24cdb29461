"""Access Tokens minted by the official twilio package, checked by the gateway's verifier."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant, VideoGrant

from atrium_gateway import tokens
from atrium_shared import errors
from atrium_shared.accounts import ApiKey

ACCOUNT = "AC" + "a" * 32
KEY_SID = "SK" + "b" * 32
SECRET = "s" * 32
KEY = ApiKey(sid=KEY_SID, account_sid=ACCOUNT, friendly_name="k", secret=SecretStr(SECRET))


async def lookup(sid: str) -> ApiKey | None:
    return KEY if sid == KEY_SID else None


def mint(
    identity: str | None = "alice",
    room: str | None = "standup",
    *,
    account: str = ACCOUNT,
    key_sid: str = KEY_SID,
    secret: str = SECRET,
    ttl: int = 3600,
    nbf: int | None = None,
    video: bool = True,
) -> str:
    token = AccessToken(
        account,
        key_sid,
        secret,
        identity=identity,
        ttl=ttl,
        **({"nbf": nbf} if nbf is not None else {}),
    )
    token.add_grant(VideoGrant(room=room) if video else ChatGrant(service_sid="IS" + "0" * 32))
    return str(token.to_jwt())


async def code_of(token: str, now: float | None = None) -> int:
    with pytest.raises(tokens.TokenError) as caught:
        await tokens.verify_video_token(token, lookup, now=now)
    return caught.value.code


async def test_a_good_token_yields_account_identity_and_room() -> None:
    claims = await tokens.verify_video_token(mint(), lookup)
    assert (claims.account_sid, claims.api_key_sid, claims.identity, claims.room) == (
        ACCOUNT,
        KEY_SID,
        "alice",
        "standup",
    )
    assert (await tokens.verify_video_token(mint(room=None), lookup)).room is None


async def test_each_defect_has_its_code() -> None:
    good = mint()
    header, payload, signature = good.split(".")
    assert await code_of("not-a-jwt") == errors.TOKEN_INVALID
    assert await code_of(f"{header}.{payload}") == errors.TOKEN_INVALID
    assert await code_of(f"e30.{payload}.{signature}") == errors.TOKEN_INVALID_HEADER  # {} header
    assert await code_of(f"%%%.{payload}.{signature}") == errors.TOKEN_INVALID_HEADER
    assert await code_of(mint(key_sid="SK" + "c" * 32)) == errors.TOKEN_INVALID_ISSUER
    assert await code_of(mint(account="AC" + "d" * 32)) == errors.TOKEN_INVALID_ISSUER
    assert await code_of(mint(secret="x" * 32)) == errors.TOKEN_INVALID_SIGNATURE
    assert (
        await code_of(f"{header}.{payload}.{signature[:-4]}AAAA") == errors.TOKEN_INVALID_SIGNATURE
    )
    assert await code_of(mint(ttl=1), now=time.time() + 3600) == errors.TOKEN_EXPIRED
    assert await code_of(mint(nbf=int(time.time()) + 3600)) == errors.TOKEN_NOT_YET_VALID
    assert await code_of(mint(identity=None)) == errors.TOKEN_INVALID_GRANTS
    assert await code_of(mint(video=False)) == errors.TOKEN_INVALID_GRANTS


async def test_a_revoked_key_stops_working() -> None:
    revoked = KEY.model_copy(update={"status": "revoked"})

    async def lookup_revoked(sid: str) -> ApiKey | None:
        return revoked

    with pytest.raises(tokens.TokenError) as caught:
        await tokens.verify_video_token(mint(), lookup_revoked)
    assert caught.value.code == errors.TOKEN_INVALID_ISSUER
