"""`atrium accounts ...`, `atrium keys ...`, `atrium callbacks ...`: operate a running stack.

Secrets (auth tokens, API key secrets) are printed once, by the command that creates them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.table import Table

from atrium_cli.connection import CliError, connected_broker, connected_redis, resolve_endpoint
from atrium_shared import rpc, subjects
from atrium_shared.accounts import Account, AccountStore
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


def _print_once(fields: Sequence[tuple[str, str]], secret: str) -> int:
    """What a create command made, ``secret`` among it: the only time it is shown."""
    _print_fields(fields)
    print(f"The {secret} is shown only now: keep it.", file=sys.stderr)
    return 0


def _print_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> int:
    table = Table(*columns)
    for row in rows:
        table.add_row(*row)
    console().print(table)
    return 0


@contextlib.asynccontextmanager
async def _account_store(args: argparse.Namespace) -> AsyncIterator[AccountStore]:
    """The accounts in the stack's Redis (``--redis-url``, else the running stack's)."""
    async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
        yield AccountStore(redis)


async def _existing_account(store: AccountStore, sid: str) -> Account:
    account = await store.get_account(sid)
    if account is None:
        raise CliError(f"no account {sid}")
    return account


async def _retire(
    args: argparse.Namespace,
    retire: Callable[[AccountStore, str], Awaitable[bool]],
    missing: str,
    done: str,
) -> int:
    """Close an account or revoke a key (``args.sid``); ``missing`` when there is no such one."""
    async with _account_store(args) as store:
        if not await retire(store, args.sid):
            raise CliError(missing)
    print(done)
    return 0


# Accounts --------------------------------------------------------------------------------------
async def accounts_create(args: argparse.Namespace) -> int:
    async with _account_store(args) as store:
        account = await store.create_account(args.name or DEFAULT_ACCOUNT_NAME)
    return _print_once(
        [
            ("Account SID", account.sid),
            ("Friendly name", account.friendly_name),
            ("Auth Token", account.auth_token.get_secret_value()),
        ],
        "Auth Token",
    )


def _default_callback(account: Account) -> str:
    callback = account.default_status_callback
    if callback is None:
        return "-"
    return f"{account.default_status_callback_method} {public_callback_url(callback)}"


async def accounts_list(args: argparse.Namespace) -> int:
    async with _account_store(args) as store:
        accounts = await store.list_accounts()
    return _print_table(
        (
            "Account SID",
            "Friendly name",
            "Status",
            "Created (UTC)",
            "Ad-hoc rooms",
            "Ad-hoc rooms' StatusCallback",
        ),
        [
            (
                a.sid,
                a.friendly_name,
                a.status,
                _when(a.date_created),
                "on" if a.ad_hoc_rooms else "off",
                _default_callback(a),
            )
            for a in accounts
        ],
    )


async def accounts_close(args: argparse.Namespace) -> int:
    done = f"Closed {args.sid}: its Auth Token and API keys no longer authenticate."
    return await _retire(args, AccountStore.close_account, f"no account {args.sid}", done)


async def accounts_set_callback(args: argparse.Namespace) -> int:
    """Set or clear the StatusCallback that rooms created ad hoc (by a client's connect) use."""
    if args.clear == (args.url is not None):
        raise CliError("give either a URL or --clear")
    url: str | None = None if args.clear else args.url
    async with _account_store(args) as store:
        try:
            account = await store.set_default_status_callback(args.sid, url, args.method)
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


async def accounts_set_ad_hoc(args: argparse.Namespace) -> int:
    """Turn client-side (ad-hoc) room creation on or off, as Twilio's console does."""
    enabled = args.state == "on"
    async with _account_store(args) as store:
        account = await store.set_ad_hoc_rooms(args.sid, enabled)
    if account is None:
        raise CliError(f"no account {args.sid}")
    if enabled:
        print(f"A client's connect to a new room name now creates the room in {account.sid}.")
    else:
        print(
            f"Clients of {account.sid} can only join rooms that exist (created over REST); "
            "a connect to any other name is refused with 53106."
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
    async with _account_store(args) as store:
        account = await _existing_account(store, args.account)
        if account.status != "active":
            raise CliError(f"account {args.account} is {account.status}")
        key = await store.create_api_key(args.account, args.name or DEFAULT_API_KEY_NAME)
    return _print_once(
        [
            ("API Key SID", key.sid),
            ("Account SID", key.account_sid),
            ("Friendly name", key.friendly_name),
            ("Secret", key.secret.get_secret_value()),
        ],
        "Secret",
    )


async def keys_list(args: argparse.Namespace) -> int:
    async with _account_store(args) as store:
        await _existing_account(store, args.account)
        keys = await store.list_api_keys(args.account)
    return _print_table(
        ("API Key SID", "Friendly name", "Status", "Created (UTC)"),
        [(key.sid, key.friendly_name, key.status, _when(key.date_created)) for key in keys],
    )


async def keys_revoke(args: argparse.Namespace) -> int:
    return await _retire(
        args, AccountStore.revoke_api_key, f"no API key {args.sid}", f"Revoked {args.sid}."
    )


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
    for column in (
        "Finished (UTC)",
        "Room SID",
        "#",
        "Event",
        "Outcome",
        "Tries",
        "HTTP",
        "URL",
        "Last error",
    ):
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
