"""Access Tokens minted by the official twilio package, checked by the gateway's verifier."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from pydantic import SecretStr
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import ChatGrant, VideoGrant

from atrium_gateway import tokens
from atrium_shared import errors
from atrium_shared.accounts import Account, ApiKey

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
    assert await code_of(mint(key_sid="SK" + "c" * 32)) == errors.TOKEN_INVALID_SIGNATURE
    # Signed with the key's secret, for another account: the minter knows the secret.
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
    # Without its secret, a revoked key is as unknown as one that never existed.
    with pytest.raises(tokens.TokenError) as caught:
        await tokens.verify_video_token(mint(secret="x" * 32), lookup_revoked)
    assert caught.value.code == errors.TOKEN_INVALID_SIGNATURE


async def test_which_key_sids_exist_is_not_revealed() -> None:
    """Without a key's secret, an existing key SID and a made-up one get the same answer,
    whatever else the token says (another account, a lifetime over 24 h, no exp)."""
    unknown = "SK" + "c" * 32
    forgeries: list[tuple[str, str]] = [
        (mint(secret="x" * 32), mint(key_sid=unknown, secret="x" * 32)),
        (
            mint(secret="x" * 32, account="AC" + "d" * 32),
            mint(key_sid=unknown, secret="x" * 32, account="AC" + "d" * 32),
        ),
        (mint(secret="x" * 32, ttl=30 * 24 * 3600), mint(key_sid=unknown, ttl=30 * 24 * 3600)),
    ]
    without_exp = claims()
    del without_exp["exp"]
    forgeries.append(
        (signed(without_exp, "x" * 32), signed({**without_exp, "iss": unknown}, "x" * 32))
    )
    for of_known_key, of_unknown_key in forgeries:
        answers = []
        for token in (of_known_key, of_unknown_key):
            with pytest.raises(tokens.TokenError) as caught:
                await tokens.verify_video_token(token, lookup)
            answers.append((caught.value.code, caught.value.message))
        assert (
            answers[0]
            == answers[1]
            == (
                errors.TOKEN_INVALID_SIGNATURE,
                "Invalid Access Token signature",
            )
        )


def signed(payload: dict[str, object], secret: str = SECRET) -> str:
    """A token of this payload, signed as Twilio's helper libraries sign."""
    headers = {"cty": "twilio-fpa;v=1"}
    return jwt.encode(payload, secret, algorithm="HS256", headers=headers)


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    grants = {"identity": "alice", "video": {"room": "standup"}}
    return {"iss": KEY_SID, "sub": ACCOUNT, "exp": now + 3600, "grants": grants, **overrides}


async def test_a_lifetime_over_24_hours_is_20104() -> None:
    day = 24 * 3600
    assert await code_of(mint(ttl=30 * day)) == errors.TOKEN_EXPIRED
    assert await code_of(mint(ttl=day + 120)) == errors.TOKEN_EXPIRED
    assert (await tokens.verify_video_token(mint(ttl=day), lookup)).identity == "alice"
    now = int(time.time())
    # With iat, exp - iat counts (however much is left).
    assert await code_of(signed(claims(iat=now - day, exp=now + 60))) == errors.TOKEN_EXPIRED
    accepted = signed(claims(iat=now - 60, exp=now - 60 + day))
    assert (await tokens.verify_video_token(accepted, lookup)).identity == "alice"
    for bad in ("soon", True, 1.5):
        assert await code_of(signed(claims(exp=bad))) == errors.TOKEN_EXPIRED
    assert await code_of(signed(claims(iat="then"))) == errors.TOKEN_EXPIRED
    without_exp = claims()
    del without_exp["exp"]
    assert await code_of(signed(without_exp)) == errors.TOKEN_EXPIRED


async def test_only_hs256_is_taken() -> None:
    payload = claims()
    assert await code_of(jwt.encode(payload, SECRET * 2, algorithm="HS512")) == (
        errors.TOKEN_INVALID_HEADER
    )
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    body = signed(payload).split(".")[1]
    assert await code_of(f"{header}.{body}.") == errors.TOKEN_INVALID
    assert await code_of(f"{header}.{body}.x") == errors.TOKEN_INVALID_HEADER


async def test_a_token_over_8_kib_is_20101_even_validly_signed() -> None:
    big = mint(identity="a" * 12_000)
    assert len(big) > tokens.MAX_TOKEN_LENGTH
    assert await code_of(big) == errors.TOKEN_INVALID
    fits = mint(identity="a" * 4_000)
    assert len(fits) <= tokens.MAX_TOKEN_LENGTH
    assert (await tokens.verify_video_token(fits, lookup)).identity == "a" * 4_000


async def test_deeply_nested_segments_are_refused_not_raised() -> None:
    deep = "[" * 2_000 + "]" * 2_000  # json.loads: RecursionError; the token fits in 8 KiB
    segment = base64.urlsafe_b64encode(deep.encode()).rstrip(b"=").decode()
    header, payload, signature = mint().split(".")
    assert await code_of(f"{segment}.{payload}.{signature}") == errors.TOKEN_INVALID_HEADER
    assert await code_of(f"{header}.{segment}.{signature}") == errors.TOKEN_INVALID


async def test_a_closed_accounts_keys_sign_nothing() -> None:
    account = Account(sid=ACCOUNT, friendly_name="Acme", auth_token=SecretStr("t" * 32))

    async def active(sid: str) -> Account | None:
        return account if sid == ACCOUNT else None

    async def closed(sid: str) -> Account | None:
        return account.model_copy(update={"status": "closed"})

    async def gone(sid: str) -> Account | None:
        return None

    assert (await tokens.verify_video_token(mint(), lookup, lookup_account=active)).identity
    for lookup_account in (closed, gone):
        with pytest.raises(tokens.TokenError) as caught:
            await tokens.verify_video_token(mint(), lookup, lookup_account=lookup_account)
        assert caught.value.code == errors.TOKEN_INVALID_ISSUER
