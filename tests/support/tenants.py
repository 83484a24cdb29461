"""Accounts the tests act as, and Access Tokens minted the way an application mints them: with the
official ``twilio`` helper library, not Atrium's own minter."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from atrium_shared.accounts import Account, AccountStore, ApiKey

# For pages that never reach a server (the harness's own tests): any well-formed credentials.
FAKE_ACCOUNT_SID = "AC" + "0" * 31 + "1"
FAKE_API_KEY_SID = "SK" + "0" * 31 + "1"
FAKE_API_KEY_SECRET = "atrium-browser-test-secret-32chr"  # 32 characters


def mint_token(
    identity: str,
    room: str | None = None,
    *,
    account_sid: str = FAKE_ACCOUNT_SID,
    api_key_sid: str = FAKE_API_KEY_SID,
    api_key_secret: str = FAKE_API_KEY_SECRET,
    ttl: int = 3600,
) -> str:
    """An Access Token with a Video grant, minted by the official ``twilio`` helper library."""
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VideoGrant

    token = AccessToken(account_sid, api_key_sid, api_key_secret, identity=identity, ttl=ttl)
    token.add_grant(VideoGrant(room=room))
    jwt = token.to_jwt()
    return jwt.decode() if isinstance(jwt, bytes) else str(jwt)


@dataclass
class Tenant:
    account: Account
    api_key: ApiKey

    @property
    def auth_token(self) -> str:
        return self.account.auth_token.get_secret_value()

    @property
    def key_secret(self) -> str:
        return self.api_key.secret.get_secret_value()

    def token(
        self,
        identity: str,
        room: str | None = None,
        *,
        api_key_sid: str | None = None,
        secret: str | None = None,
        ttl: int = 3600,
    ) -> str:
        """An Access Token of this account (its API key unless another key or secret is given)."""
        return mint_token(
            identity,
            room,
            account_sid=self.account.sid,
            api_key_sid=api_key_sid or self.api_key.sid,
            api_key_secret=secret or self.key_secret,
            ttl=ttl,
        )


async def make_tenant(redis: Redis, name: str = "test") -> Tenant:
    store = AccountStore(redis)
    account = await store.create_account(name)
    key = await store.create_api_key(account.sid, f"{name} key")
    return Tenant(account, key)
