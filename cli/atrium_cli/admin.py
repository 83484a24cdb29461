"""`atrium accounts ...`, `atrium keys ...`, `atrium callbacks ...`: operate a running stack.

Secrets (auth tokens, API key secrets) are printed once, by the command that creates them.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.table import Table

from atrium_cli.connection import CliError, connected_broker, connected_redis, resolve_endpoint
from atrium_shared import rpc, subjects
from atrium_shared.accounts import AccountStore
from atrium_shared.callbacks import DeliveryList, DeliveryQuery, DeliveryRecord
from atrium_shared.errors import AtriumError

DEFAULT_ACCOUNT_NAME = "Atrium account"
DEFAULT_API_KEY_NAME = "Atrium API key"
# Without a terminal rich would wrap at 80 columns and cut SIDs; a file gets whole rows.
NON_TTY_WIDTH = 240


def console() -> Console:
    if sys.stdout.isatty():
        return Console()
    return Console(width=int(os.environ.get("COLUMNS", NON_TTY_WIDTH)), no_color=True)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _print_fields(fields: Sequence[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in fields) + 1
    for label, value in fields:
        print(f"{label + ':':<{width}} {value}")


# Accounts --------------------------------------------------------------------------------------
async def accounts_create(args: argparse.Namespace) -> int:
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        account = await AccountStore(redis).create_account(args.name or DEFAULT_ACCOUNT_NAME)
    _print_fields(
        [
            ("Account SID", account.sid),
            ("Friendly name", account.friendly_name),
            ("Auth Token", account.auth_token.get_secret_value()),
        ]
    )
    print("The Auth Token is shown only now: keep it.", file=sys.stderr)
    return 0


async def accounts_list(args: argparse.Namespace) -> int:
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        accounts = await AccountStore(redis).list_accounts()
    table = Table("Account SID", "Friendly name", "Status", "Created (UTC)",
                  "Ad-hoc rooms' StatusCallback")
    for account in accounts:
        callback = account.default_status_callback
        table.add_row(
            account.sid, account.friendly_name, account.status, _when(account.date_created),
            "-" if callback is None else
            f"{account.default_status_callback_method} {public_callback_url(callback)}",
        )
    console().print(table)
    return 0


async def accounts_close(args: argparse.Namespace) -> int:
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        closed = await AccountStore(redis).close_account(args.sid)
    if not closed:
        raise CliError(f"no account {args.sid}")
    print(f"Closed {args.sid}: its Auth Token and API keys no longer authenticate.")
    return 0


async def accounts_set_callback(args: argparse.Namespace) -> int:
    """Set or clear the StatusCallback that rooms created ad hoc (by a client's connect) use."""
    if args.clear == (args.url is not None):
        raise CliError("give either a URL or --clear")
    url: str | None = None if args.clear else args.url
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        try:
            account = await AccountStore(redis).set_default_status_callback(
                args.sid, url, args.method
            )
        except ValueError:
            raise CliError(
                f"{url!r} is not a valid StatusCallback: an http(s) URL with a host, "
                "without spaces, at most 4000 characters"
            ) from None
    if account is None:
        raise CliError(f"no account {args.sid}")
    if account.default_status_callback is None:
        print(f"Cleared the default StatusCallback of {account.sid}.")
    else:
        print(
            f"Rooms of {account.sid} created ad hoc now send status callbacks to "
            f"{account.default_status_callback_method} {public_callback_url(url or '')}."
        )
    return 0


def public_callback_url(url: str) -> str:
    """The URL as it may be shown: credentials (user:pass@) masked."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


# API keys --------------------------------------------------------------------------------------
async def keys_create(args: argparse.Namespace) -> int:
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        store = AccountStore(redis)
        account = await store.get_account(args.account)
        if account is None:
            raise CliError(f"no account {args.account}")
        if account.status != "active":
            raise CliError(f"account {args.account} is {account.status}")
        key = await store.create_api_key(args.account, args.name or DEFAULT_API_KEY_NAME)
    _print_fields(
        [
            ("API Key SID", key.sid),
            ("Account SID", key.account_sid),
            ("Friendly name", key.friendly_name),
            ("Secret", key.secret.get_secret_value()),
        ]
    )
    print("The Secret is shown only now: keep it.", file=sys.stderr)
    return 0


async def keys_list(args: argparse.Namespace) -> int:
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        store = AccountStore(redis)
        if await store.get_account(args.account) is None:
            raise CliError(f"no account {args.account}")
        keys = await store.list_api_keys(args.account)
    table = Table("API Key SID", "Friendly name", "Status", "Created (UTC)")
    for key in keys:
        table.add_row(key.sid, key.friendly_name, key.status, _when(key.date_created))
    console().print(table)
    return 0


async def keys_revoke(args: argparse.Namespace) -> int:
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        revoked = await AccountStore(redis).revoke_api_key(args.sid)
    if not revoked:
        raise CliError(f"no API key {args.sid}")
    print(f"Revoked {args.sid}.")
    return 0


# Callbacks -------------------------------------------------------------------------------------
async def callback_log(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    query = DeliveryQuery(
        kind=args.kind, account_sid=args.account, room_sid=args.room, limit=args.limit
    )
    endpoint = resolve_endpoint("NATS", args.nats_url)
    async with connected_broker(endpoint) as broker:
        try:
            found = await rpc.call(broker, subjects.CALLBACK_DELIVERIES, query, DeliveryList)
        except AtriumError as exc:
            if exc.status == 503:
                raise CliError(
                    f"the callback service does not answer on {endpoint.url}: "
                    "is `make run` (atrium run) running?"
                ) from None
            raise CliError(f"the callback service refused the query: {exc}") from None
    console().print(delivery_table(found.records, args.kind))
    return 0


def delivery_table(records: Sequence[DeliveryRecord], kind: str) -> Table:
    title = "Dead letters" if kind == "dead-letters" else "Status callback deliveries"
    table = Table(title=f"{title} ({len(records)})")
    for column in ("Finished (UTC)", "Room SID", "#", "Event", "Outcome", "Tries", "HTTP",
                   "URL", "Last error"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            _when(record.finished_at),
            record.room_sid,
            str(record.sequence_number),
            record.event_type,
            record.outcome,
            str(record.attempts),
            "-" if record.last_status is None else str(record.last_status),
            f"{record.method} {record.url}",
            record.last_error or "",
        )
    return table
