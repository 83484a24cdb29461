"""The `atrium` command: run the stack, manage accounts and API keys, inspect status callbacks,
list and download recordings.

Commands other than `run` find NATS and Redis through --nats-url/--redis-url, then NATS_URL /
REDIS_URL, then the `.atrium/run.env` that a running `atrium run` writes in its directory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from atrium_cli import admin
from atrium_cli.connection import CliError

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atrium",
        description="Atrium: self-hosted rooms, wire-compatible with Twilio Programmable Video.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "run",
        help="run NATS, Redis and every service here, for development (`make run`)",
        description="Start embedded NATS/Redis (unless NATS_URL/REDIS_URL are set), provision "
        "credentials, run gateway, room and callback, and stop them all on Ctrl-C or SIGTERM.",
    )

    redis_option = argparse.ArgumentParser(add_help=False)
    redis_option.add_argument("--redis-url", help="default: $REDIS_URL, then .atrium/run.env")
    nats_option = argparse.ArgumentParser(add_help=False)
    nats_option.add_argument("--nats-url", help="default: $NATS_URL, then .atrium/run.env")

    accounts = commands.add_parser("accounts", help="create, list and close accounts")
    account_commands = accounts.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = account_commands.add_parser(
        "create", parents=[redis_option], help="create an account; prints its Auth Token once"
    )
    create.add_argument("--name", help="friendly name")
    create.set_defaults(handler=admin.accounts_create)
    listing = account_commands.add_parser("list", parents=[redis_option], help="list accounts")
    listing.set_defaults(handler=admin.accounts_list)
    close = account_commands.add_parser(
        "close", parents=[redis_option], help="close an account (its credentials stop working)"
    )
    close.add_argument("sid", metavar="SID", help="Account SID (AC...)")
    close.set_defaults(handler=admin.accounts_close)
    set_callback = account_commands.add_parser(
        "set-callback",
        parents=[redis_option],
        help="set or clear the StatusCallback of rooms created ad hoc by a client's connect",
        description="Rooms created over REST use their own StatusCallback; rooms created when "
        "a client connects to a new name use this one.",
    )
    set_callback.add_argument("sid", metavar="SID", help="Account SID (AC...)")
    set_callback.add_argument("url", metavar="URL", nargs="?", help="the StatusCallback URL")
    set_callback.add_argument(
        "--method",
        choices=("GET", "POST"),
        default="POST",
        type=str.upper,
        help="StatusCallbackMethod (default POST)",
    )
    set_callback.add_argument(
        "--clear", action="store_true", help="remove the default StatusCallback"
    )
    set_callback.set_defaults(handler=admin.accounts_set_callback)
    set_ad_hoc = account_commands.add_parser(
        "set-ad-hoc",
        parents=[redis_option],
        help="turn client-side (ad-hoc) room creation on or off",
        description="On (the default), a token's connect to a name no in-progress room holds "
        "creates the room; off, it is refused with 53106 (Room not found) and only rooms "
        "created over REST can be joined, as with Twilio's console setting.",
    )
    set_ad_hoc.add_argument("sid", metavar="SID", help="Account SID (AC...)")
    set_ad_hoc.add_argument("state", choices=("on", "off"), help="on or off")
    set_ad_hoc.set_defaults(handler=admin.accounts_set_ad_hoc)

    keys = commands.add_parser("keys", help="create, list and revoke API keys")
    key_commands = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = key_commands.add_parser(
        "create", parents=[redis_option], help="create an API key; prints its Secret once"
    )
    create.add_argument("--account", required=True, metavar="SID", help="Account SID (AC...)")
    create.add_argument("--name", help="friendly name")
    create.set_defaults(handler=admin.keys_create)
    listing = key_commands.add_parser(
        "list", parents=[redis_option], help="list an account's API keys"
    )
    listing.add_argument("--account", required=True, metavar="SID", help="Account SID (AC...)")
    listing.set_defaults(handler=admin.keys_list)
    revoke = key_commands.add_parser("revoke", parents=[redis_option], help="revoke an API key")
    revoke.add_argument("sid", metavar="SID", help="API Key SID (SK...)")
    revoke.set_defaults(handler=admin.keys_revoke)

    from atrium_cli.provision import provision_command

    provision = commands.add_parser(
        "provision",
        parents=[redis_option],
        help="create or update the account and API key given by ATRIUM_ACCOUNT_SID, "
        "ATRIUM_AUTH_TOKEN, ATRIUM_API_KEY_SID, ATRIUM_API_KEY_SECRET, then exit (deployments)",
    )
    provision.set_defaults(handler=provision_command)

    from atrium_cli.loadtest import add_parser as add_loadtest

    add_loadtest(commands)

    from atrium_cli.recordings import add_parser as add_recordings

    add_recordings(commands, nats_option, redis_option)

    callbacks = commands.add_parser("callbacks", help="inspect status callback deliveries")
    callback_commands = callbacks.add_subparsers(dest="action", required=True, metavar="ACTION")
    for kind, help_text in (
        ("deliveries", "recent status callback deliveries, newest first"),
        ("dead-letters", "status callbacks that failed after every retry"),
    ):
        log_parser = callback_commands.add_parser(kind, parents=[nats_option], help=help_text)
        log_parser.add_argument("--account", metavar="SID", help="only this Account SID")
        log_parser.add_argument("--room", metavar="SID", help="only this Room SID")
        log_parser.add_argument("--limit", type=int, default=50, help="at most N (default 50)")
        log_parser.set_defaults(handler=admin.callback_log, kind=kind)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        from atrium_cli.supervisor import run_stack

        return run_stack()

    logging.basicConfig(level=logging.WARNING, format="atrium: %(levelname)s %(message)s")
    handler: Command = args.handler
    try:
        return asyncio.run(handler(args))
    except CliError as exc:
        print(f"atrium: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
