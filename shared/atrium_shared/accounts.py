"""Accounts and API keys, kept in Redis and shared by every service that authenticates or signs.

Secrets are :class:`SecretStr` so they never print by accident.
"""

from __future__ import annotations

import hmac
import json
import secrets
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from redis.asyncio import Redis
from redis.exceptions import WatchError

from atrium_shared import sids
from atrium_shared.callbacks import is_valid_status_callback
from atrium_shared.models import CallbackMethod
from atrium_shared.timefmt import utcnow

ACCOUNTS_SET = "atrium:accounts"
# Which account and key `atrium run` made for development, so restarts reuse them and the
# gateway's dev-mode token endpoint signs with them.
DEV_ACCOUNT_KEY = "atrium:dev-account"


def _account_key(sid: str) -> str:
    return f"atrium:account:{sid}"


def _account_keys_set(sid: str) -> str:
    return f"atrium:account:{sid}:api-keys"


def _api_key_key(sid: str) -> str:
    return f"atrium:api-key:{sid}"


class Account(BaseModel):
    sid: str
    friendly_name: str
    auth_token: SecretStr
    status: Literal["active", "closed"] = "active"
    date_created: datetime = Field(default_factory=utcnow)
    # Where rooms created ad hoc (by a client's connect, not over REST) send status callbacks,
    # like the default room settings of Twilio's console. REST rooms name their own.
    default_status_callback: str | None = None
    default_status_callback_method: CallbackMethod = "POST"
    # Twilio console's "Client-side Room creation": whether a token's connect to a name no
    # in-progress room holds creates the room (on by default), or is refused (53106).
    ad_hoc_rooms: bool = True

    def dump(self) -> str:
        data = self.model_dump(mode="json")
        data["auth_token"] = self.auth_token.get_secret_value()
        return _json(data)


class ApiKey(BaseModel):
    sid: str
    account_sid: str
    friendly_name: str
    secret: SecretStr
    status: Literal["active", "revoked"] = "active"
    date_created: datetime = Field(default_factory=utcnow)

    def dump(self) -> str:
        data = self.model_dump(mode="json")
        data["secret"] = self.secret.get_secret_value()
        return _json(data)


def _json(data: dict[str, object]) -> str:
    return json.dumps(data)


def secret_matches(expected: str, given: str) -> bool:
    """Whether ``given`` is the secret, in constant time. As UTF-8 bytes: ``compare_digest``
    refuses ``str`` with non-ASCII characters, and Basic credentials can carry any."""
    return hmac.compare_digest(expected.encode(), given.encode())


def new_secret() -> str:
    """32 characters, like Twilio's auth tokens and API key secrets."""
    return secrets.token_hex(16)


class AccountStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    # Accounts ---------------------------------------------------------------------------------
    async def create_account(
        self, friendly_name: str, sid: str | None = None, auth_token: str | None = None
    ) -> Account:
        account = Account(
            sid=sid or sids.new_sid(sids.ACCOUNT),
            friendly_name=friendly_name,
            auth_token=SecretStr(auth_token or new_secret()),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_account_key(account.sid), account.dump())
            pipe.sadd(ACCOUNTS_SET, account.sid)
            await pipe.execute()
        return account

    async def get_account(self, sid: str) -> Account | None:
        raw = await self._redis.get(_account_key(sid))
        return Account.model_validate_json(raw) if raw else None

    async def list_accounts(self) -> list[Account]:
        found = []
        for sid in sorted(await self._redis.smembers(ACCOUNTS_SET)):
            account = await self.get_account(sid)
            if account is not None:
                found.append(account)
        return found

    async def close_account(self, sid: str) -> bool:
        account = await self.get_account(sid)
        if account is None:
            return False
        account.status = "closed"
        await self._redis.set(_account_key(sid), account.dump())
        return True

    async def set_default_status_callback(
        self, account_sid: str, url: str | None, method: CallbackMethod = "POST"
    ) -> Account | None:
        """Set (or, with ``url`` None, clear) the account's default StatusCallback.

        Returns the updated account, None if there is no such account. Raises ValueError for a
        URL REST would refuse as a StatusCallback, or a method other than GET and POST.
        """
        if url is not None and not is_valid_status_callback(url):
            raise ValueError(f"not a valid StatusCallback URL: {url!r}")
        if method not in ("GET", "POST"):
            raise ValueError(f"StatusCallbackMethod must be GET or POST, not {method!r}")
        return await self._update_account(
            account_sid,
            {
                "default_status_callback": url,
                "default_status_callback_method": method if url else "POST",
            },
        )

    async def set_ad_hoc_rooms(self, account_sid: str, enabled: bool) -> Account | None:
        """Allow or refuse rooms created by a client's connect; None if there is no account."""
        return await self._update_account(account_sid, {"ad_hoc_rooms": enabled})

    async def _update_account(self, account_sid: str, update: dict[str, object]) -> Account | None:
        key = _account_key(account_sid)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH: a concurrent change (e.g. closing) is not overwritten.
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if not raw:
                        await pipe.reset()
                        return None
                    account = Account.model_validate_json(raw).model_copy(update=update)
                    pipe.multi()
                    pipe.set(key, account.dump())
                    await pipe.execute()
                    return account
                except WatchError:
                    continue

    # API keys ---------------------------------------------------------------------------------
    async def create_api_key(
        self,
        account_sid: str,
        friendly_name: str,
        sid: str | None = None,
        secret: str | None = None,
    ) -> ApiKey:
        if await self.get_account(account_sid) is None:
            raise KeyError(account_sid)
        key = ApiKey(
            sid=sid or sids.new_sid(sids.API_KEY),
            account_sid=account_sid,
            friendly_name=friendly_name,
            secret=SecretStr(secret or new_secret()),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(_api_key_key(key.sid), key.dump())
            pipe.sadd(_account_keys_set(account_sid), key.sid)
            await pipe.execute()
        return key

    async def get_api_key(self, sid: str) -> ApiKey | None:
        raw = await self._redis.get(_api_key_key(sid))
        return ApiKey.model_validate_json(raw) if raw else None

    async def list_api_keys(self, account_sid: str) -> list[ApiKey]:
        found = []
        for sid in sorted(await self._redis.smembers(_account_keys_set(account_sid))):
            key = await self.get_api_key(sid)
            if key is not None:
                found.append(key)
        return found

    async def revoke_api_key(self, sid: str) -> bool:
        key = await self.get_api_key(sid)
        if key is None:
            return False
        key.status = "revoked"
        await self._redis.set(_api_key_key(sid), key.dump())
        return True

    # The dev account ---------------------------------------------------------------------------
    async def remember_dev_account(self, account_sid: str, api_key_sid: str) -> None:
        await self._redis.set(
            DEV_ACCOUNT_KEY, json.dumps({"account_sid": account_sid, "api_key_sid": api_key_sid})
        )

    async def dev_account(self) -> tuple[Account, ApiKey] | None:
        """The remembered dev account and key, if both still exist, are active and belong
        together; None otherwise (closed or revoked with the CLI, or never made)."""
        raw = await self._redis.get(DEV_ACCOUNT_KEY)
        if not raw:
            return None
        try:
            remembered = json.loads(raw)
            account = await self.get_account(str(remembered["account_sid"]))
            key = await self.get_api_key(str(remembered["api_key_sid"]))
        except (ValueError, KeyError, TypeError):
            return None
        if (
            account is None
            or key is None
            or account.status != "active"
            or key.status != "active"
            or key.account_sid != account.sid
        ):
            return None
        return account, key

    # Authentication ---------------------------------------------------------------------------
    async def authenticate(self, username: str, password: str) -> Account | None:
        """Basic auth as Twilio takes it: Account SID + Auth Token, or API Key SID + Secret."""
        if username.startswith(sids.ACCOUNT):
            account = await self.get_account(username)
            if account is None or account.status != "active":
                return None
            expected = account.auth_token.get_secret_value()
            return account if secret_matches(expected, password) else None
        if username.startswith(sids.API_KEY):
            key = await self.get_api_key(username)
            if key is None or key.status != "active":
                return None
            if not secret_matches(key.secret.get_secret_value(), password):
                return None
            account = await self.get_account(key.account_sid)
            return account if account is not None and account.status == "active" else None
        return None
