"""`atrium accounts set-callback` and `set-ad-hoc`: an account's ad-hoc room settings, against a
real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from atrium_cli.main import main as atrium_main
from atrium_shared import sids
from atrium_shared.accounts import Account, AccountStore
from tests.support.stack import Servers

pytestmark = pytest.mark.integration


def _account(servers: Servers, sid: str) -> Account:
    async def read() -> Account | None:
        client = Redis.from_url(servers.redis.url, decode_responses=True)
        try:
            return await AccountStore(client).get_account(sid)
        finally:
            await client.aclose()

    account = asyncio.run(read())
    assert account is not None
    return account


def _created_sid(out: str) -> str:
    for line in out.splitlines():
        label, _, value = line.partition(":")
        if label.strip() == "Account SID":
            return value.strip()
    raise AssertionError(f"no Account SID in {out!r}")


def test_set_and_clear_the_default_status_callback(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_option = ["--redis-url", servers.redis.url]
    assert atrium_main(["accounts", "create", "--name", "Acme", *redis_option]) == 0
    sid = _created_sid(capsys.readouterr().out)
    before = _account(servers, sid)
    assert before.default_status_callback is None

    url = "https://hooks.example.com/video?app=1#rc=2"
    assert atrium_main(["accounts", "set-callback", sid, url, *redis_option]) == 0
    assert f"POST {url}" in capsys.readouterr().out
    account = _account(servers, sid)
    assert (account.default_status_callback, account.default_status_callback_method) == (
        url,
        "POST",
    )
    # Nothing else of the account changes.
    assert account.auth_token == before.auth_token and account.status == "active"

    secret_url = "http://user:s3cret@127.0.0.1:9000/hook"
    assert (
        atrium_main(["accounts", "set-callback", sid, secret_url, "--method", "get", *redis_option])
        == 0
    )
    assert "s3cret" not in capsys.readouterr().out
    account = _account(servers, sid)
    assert (account.default_status_callback, account.default_status_callback_method) == (
        secret_url,
        "GET",
    )
    assert atrium_main(["accounts", "list", *redis_option]) == 0
    listing = capsys.readouterr().out
    assert "GET http://***@127.0.0.1:9000/hook" in listing and "s3cret" not in listing

    # Refused like a REST StatusCallback; the stored one stays.
    for bad in ("ftp://example.com/x", "example.com/no-scheme", "https://exa mple.com/"):
        assert atrium_main(["accounts", "set-callback", sid, bad, *redis_option]) == 1
        assert "not a valid StatusCallback" in capsys.readouterr().err
    assert _account(servers, sid).default_status_callback == secret_url

    # Exactly one of URL and --clear; a known account.
    assert atrium_main(["accounts", "set-callback", sid, *redis_option]) == 1
    assert "either a URL or --clear" in capsys.readouterr().err
    assert atrium_main(["accounts", "set-callback", sid, url, "--clear", *redis_option]) == 1
    assert "either a URL or --clear" in capsys.readouterr().err
    nobody = sids.new_sid(sids.ACCOUNT)
    assert atrium_main(["accounts", "set-callback", nobody, url, *redis_option]) == 1
    assert f"no account {nobody}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        atrium_main(["accounts", "set-callback", sid, url, "--method", "PUT", *redis_option])
    capsys.readouterr()

    assert atrium_main(["accounts", "set-callback", sid, "--clear", *redis_option]) == 0
    assert "Cleared" in capsys.readouterr().out
    account = _account(servers, sid)
    assert (account.default_status_callback, account.default_status_callback_method) == (
        None,
        "POST",
    )


def test_turn_ad_hoc_room_creation_off_and_on(
    servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    redis_option = ["--redis-url", servers.redis.url]
    assert atrium_main(["accounts", "create", "--name", "Acme", *redis_option]) == 0
    sid = _created_sid(capsys.readouterr().out)
    assert _account(servers, sid).ad_hoc_rooms is True  # Twilio's default: on

    assert atrium_main(["accounts", "set-ad-hoc", sid, "off", *redis_option]) == 0
    assert "53106" in capsys.readouterr().out
    account = _account(servers, sid)
    assert account.ad_hoc_rooms is False and account.status == "active"
    assert atrium_main(["accounts", "list", *redis_option]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if sid in line)
    assert " off " in row

    assert atrium_main(["accounts", "set-ad-hoc", sid, "on", *redis_option]) == 0
    capsys.readouterr()
    assert _account(servers, sid).ad_hoc_rooms is True
    nobody = sids.new_sid(sids.ACCOUNT)
    assert atrium_main(["accounts", "set-ad-hoc", nobody, "off", *redis_option]) == 1
    assert f"no account {nobody}" in capsys.readouterr().err
