"""The credentials `atrium run` prints: the ones given in the environment, or a dev account.

With ATRIUM_ACCOUNT_SID, ATRIUM_AUTH_TOKEN, ATRIUM_API_KEY_SID and ATRIUM_API_KEY_SECRET all set,
exactly those are created (or updated, so a changed token takes effect on the next start).
Otherwise a dev account and API key are created on the first start and remembered in Redis under
``atrium:dev-account``, so later starts print the same credentials and apps keep working.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass

from redis.asyncio import Redis

from atrium_cli.connection import CliError, connected_redis, resolve_endpoint
from atrium_shared import sids
from atrium_shared.accounts import DEV_ACCOUNT_KEY, Account, AccountStore, ApiKey

log = logging.getLogger("atrium.cli.provision")

DEV_ACCOUNT_NAME = "Atrium dev account"
DEV_API_KEY_NAME = "Atrium dev key"
PROVISIONED_ACCOUNT_NAME = "Atrium provisioned account"
PROVISIONED_API_KEY_NAME = "Atrium provisioned key"
CREDENTIAL_VARIABLES = (
    "ATRIUM_ACCOUNT_SID",
    "ATRIUM_AUTH_TOKEN",
    "ATRIUM_API_KEY_SID",
    "ATRIUM_API_KEY_SECRET",
)


@dataclass(frozen=True)
class Credentials:
    account: Account
    api_key: ApiKey
    origin: str  # "environment", "new dev account" or "existing dev account"


async def provision(redis: Redis, environ: dict[str, str] | None = None) -> Credentials:
    environ = dict(os.environ) if environ is None else environ
    given = {name: environ.get(name, "") for name in CREDENTIAL_VARIABLES}
    if all(given.values()):
        return await _provision_given(AccountStore(redis), given)
    if any(given.values()):
        missing = ", ".join(name for name, value in given.items() if not value)
        log.warning("ignoring the ATRIUM_* credentials: %s unset; using the dev account", missing)
    return await _dev_account(redis)


async def _provision_given(store: AccountStore, given: dict[str, str]) -> Credentials:
    account_sid = given["ATRIUM_ACCOUNT_SID"]
    key_sid = given["ATRIUM_API_KEY_SID"]
    # The gateway tells Account SIDs from API key SIDs by prefix; any other shape never logs in.
    if not sids.is_sid(account_sid, sids.ACCOUNT):
        raise CliError("ATRIUM_ACCOUNT_SID must be AC followed by 32 hex digits")
    if not sids.is_sid(key_sid, sids.API_KEY):
        raise CliError("ATRIUM_API_KEY_SID must be SK followed by 32 hex digits")
    existing_account = await store.get_account(account_sid)
    account = await store.create_account(
        existing_account.friendly_name if existing_account else PROVISIONED_ACCOUNT_NAME,
        sid=account_sid,
        auth_token=given["ATRIUM_AUTH_TOKEN"],
    )
    existing_key = await store.get_api_key(key_sid)
    api_key = await store.create_api_key(
        account_sid,
        existing_key.friendly_name if existing_key else PROVISIONED_API_KEY_NAME,
        sid=key_sid,
        secret=given["ATRIUM_API_KEY_SECRET"],
    )
    return Credentials(account, api_key, "environment")


async def _dev_account(redis: Redis) -> Credentials:
    store = AccountStore(redis)
    remembered = await store.dev_account()
    if remembered is not None:
        return Credentials(*remembered, "existing dev account")
    if await redis.exists(DEV_ACCOUNT_KEY):
        # Closed or revoked with the CLI: the dev account is replaced rather than resurrected.
        log.info("the remembered dev account is gone, closed or revoked; creating a new one")
    account = await store.create_account(DEV_ACCOUNT_NAME)
    api_key = await store.create_api_key(account.sid, DEV_API_KEY_NAME)
    await store.remember_dev_account(account.sid, api_key.sid)
    return Credentials(account, api_key, "new dev account")


async def provision_command(args: argparse.Namespace) -> int:
    """`atrium provision`: create or update the account and key given in the environment, exit.

    For deployments (the compose one-shot service, the Kubernetes bootstrap Job): all four
    ATRIUM_* credential variables are required, so a missing Secret fails loudly instead of
    quietly creating a dev account. Idempotent: run it on every deploy. Prints no secret.
    """
    missing = [name for name in CREDENTIAL_VARIABLES if not os.environ.get(name)]
    if missing:
        raise CliError(f"set {', '.join(missing)} (all four credential variables are required)", 2)
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        credentials = await provision(redis)
    print(f"Account SID: {credentials.account.sid} ({credentials.account.status})")
    print(f"API Key SID: {credentials.api_key.sid} ({credentials.api_key.status})")
    return 0
