"""The dev-mode token minter (no twilio package at runtime) makes tokens that the gateway's
verifier accepts and that match what twilio-python's AccessToken mints."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from pydantic import SecretStr
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VideoGrant

from atrium_gateway import tokens
from atrium_shared import errors
from atrium_shared.access_tokens import mint_video_token
from atrium_shared.accounts import ApiKey

ACCOUNT = "AC" + "a" * 32
KEY_SID = "SK" + "b" * 32
SECRET = "s" * 32
KEY = ApiKey(sid=KEY_SID, account_sid=ACCOUNT, friendly_name="k", secret=SecretStr(SECRET))


async def lookup(sid: str) -> ApiKey | None:
    return KEY if sid == KEY_SID else None


def header_of(token: str) -> dict[str, Any]:
    segment = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * 4))
    return decoded


async def test_the_gateway_verifier_accepts_a_minted_token() -> None:
    token = mint_video_token(ACCOUNT, KEY_SID, SECRET, "alice", "standup")
    claims = await tokens.verify_video_token(token, lookup)
    assert (claims.account_sid, claims.api_key_sid, claims.identity, claims.room) == (
        ACCOUNT,
        KEY_SID,
        "alice",
        "standup",
    )
    assert claims.expires_at - time.time() == pytest.approx(3600, abs=5)
    no_room = mint_video_token(ACCOUNT, KEY_SID, SECRET, "bob")
    assert (await tokens.verify_video_token(no_room, lookup)).room is None


async def test_the_verifier_rejects_it_when_it_should() -> None:
    wrong_secret = mint_video_token(ACCOUNT, KEY_SID, "x" * 32, "alice", "r")
    with pytest.raises(tokens.TokenError) as caught:
        await tokens.verify_video_token(wrong_secret, lookup)
    assert caught.value.code == errors.TOKEN_INVALID_SIGNATURE

    expired = mint_video_token(ACCOUNT, KEY_SID, SECRET, "alice", "r", now=time.time() - 7200)
    with pytest.raises(tokens.TokenError) as caught:
        await tokens.verify_video_token(expired, lookup)
    assert caught.value.code == errors.TOKEN_EXPIRED


def test_pyjwt_and_twilio_python_read_it_like_their_own(monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_700_000_000
    monkeypatch.setattr(time, "time", lambda: float(now))
    ours = mint_video_token(ACCOUNT, KEY_SID, SECRET, "alice", "standup")
    reference = AccessToken(ACCOUNT, KEY_SID, SECRET, identity="alice", ttl=3600)
    reference.add_grant(VideoGrant(room="standup"))
    theirs = str(reference.to_jwt())

    # Both decoded with their signatures checked; the clock is frozen, so not exp/nbf.
    our_claims = jwt.decode(ours, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    their_claims = jwt.decode(theirs, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert our_claims == their_claims
    assert our_claims == {
        "jti": f"{KEY_SID}-{now}",
        "iss": KEY_SID,
        "sub": ACCOUNT,
        "nbf": now,
        "exp": now + 3600,
        "grants": {"identity": "alice", "video": {"room": "standup"}},
    }
    assert (
        header_of(ours)
        == header_of(theirs)
        == {
            "alg": "HS256",
            "typ": "JWT",
            "cty": "twilio-fpa;v=1",
        }
    )

    # twilio-python's own decoder checks signature, exp and nbf (against the real clock).
    monkeypatch.undo()
    decoded = AccessToken.from_jwt(mint_video_token(ACCOUNT, KEY_SID, SECRET, "alice"), SECRET)
    assert (decoded.issuer, decoded.subject) == (KEY_SID, ACCOUNT)


def test_no_room_means_an_empty_video_grant_as_twilio_python_mints() -> None:
    ours = mint_video_token(ACCOUNT, KEY_SID, SECRET, "alice")
    reference = AccessToken(ACCOUNT, KEY_SID, SECRET, identity="alice")
    reference.add_grant(VideoGrant())
    ours_grants = jwt.decode(ours, SECRET, algorithms=["HS256"])["grants"]
    theirs_grants = jwt.decode(str(reference.to_jwt()), SECRET, algorithms=["HS256"])["grants"]
    assert ours_grants == theirs_grants == {"identity": "alice", "video": {}}
