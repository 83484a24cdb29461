"""Dev mode: the gateway serves the demo page, twilio-video.js and dev tokens; off, it does not."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from redis.asyncio import Redis

from atrium_cli.provision import provision
from atrium_gateway import tokens
from atrium_shared.accounts import AccountStore
from atrium_shared.settings import Settings
from tests.browser.harness import TWILIO_VIDEO_BUNDLE
from tests.support.stack import StackFactory
from tests.support.tenants import Tenant, make_tenant

DEV_PATHS = ("/", "/demo/demo.js", "/demo/index.html", "/vendor/twilio-video.min.js")


async def verified(redis: Redis, token: str) -> tokens.VideoClaims:
    return await tokens.verify_video_token(token, AccountStore(redis).get_api_key)


def assert_twilio_404(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == 20404 and body["status"] == 404
    assert body["more_info"] == "https://www.twilio.com/docs/errors/20404"


async def test_dev_mode_serves_the_demo_and_the_sdk(stacks: StackFactory) -> None:
    async with (
        stacks.running((), dev_mode=True) as stack,
        httpx.AsyncClient(base_url=stack.base_url) as http,
    ):
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script src="/vendor/twilio-video.min.js">' in page.text
        assert '<script src="/demo/demo.js">' in page.text

        script = await http.get("/demo/demo.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
        assert "Twilio.Video.connect" in script.text
        assert (await http.get("/demo/demo.css")).headers["content-type"].startswith("text/css")

        assert_twilio_404(await http.get("/demo/nothing-here.js"))
        assert_twilio_404(await http.get("/demo/%2e%2e/package.json"))  # no way out of web/demo

        sdk = await http.get("/vendor/twilio-video.min.js")
        if TWILIO_VIDEO_BUNDLE.is_file() or os.environ.get("CI"):
            assert sdk.status_code == 200, sdk.text
            assert "javascript" in sdk.headers["content-type"]
            assert sdk.content == TWILIO_VIDEO_BUNDLE.read_bytes()
        else:
            assert_twilio_404(sdk)


async def test_the_sdk_404_says_how_to_install_it(stacks: StackFactory, tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "index.html").write_text("<!doctype html><title>elsewhere</title>")
    async with (
        stacks.running((), dev_mode=True, web_dir=str(tmp_path)) as stack,
        httpx.AsyncClient(base_url=stack.base_url) as http,
    ):
        assert "elsewhere" in (await http.get("/")).text
        missing = await http.get("/vendor/twilio-video.min.js")
        assert_twilio_404(missing)
        assert "install-browser-deps.sh" in missing.json()["message"]


async def test_dev_token_is_for_the_dev_account(
    stacks: StackFactory, redis: Redis, tenant: Tenant
) -> None:
    credentials = await provision(redis, environ={})  # as `atrium run` does: the dev account
    assert credentials.account.sid != tenant.account.sid
    async with (
        stacks.running((), dev_mode=True) as stack,
        httpx.AsyncClient(base_url=stack.base_url) as http,
    ):
        as_json = await http.post("/dev/token", json={"identity": "alice", "room": "standup"})
        assert as_json.status_code == 200, as_json.text
        body = as_json.json()
        ws_base = stack.base_url.replace("http://", "ws://")
        assert body | {"token": "-"} == {
            "token": "-",
            "identity": "alice",
            "room": "standup",
            "wsServer": f"{ws_base}/signaling",
        }
        claims = await verified(redis, body["token"])
        assert (claims.account_sid, claims.api_key_sid) == (
            credentials.account.sid,
            credentials.api_key.sid,
        )
        assert (claims.identity, claims.room) == ("alice", "standup")

        as_form = await http.post("/dev/token", data={"identity": " bob "})
        assert as_form.status_code == 200, as_form.text
        assert as_form.json()["identity"] == "bob" and as_form.json()["room"] is None
        claims = await verified(redis, as_form.json()["token"])
        assert (claims.account_sid, claims.identity, claims.room) == (
            credentials.account.sid,
            "bob",
            None,
        )

        for bad in ({}, {"identity": ""}, {"identity": 7}, {"identity": "x", "room": ["r"]}):
            response = await http.post("/dev/token", json=bad)
            assert response.status_code == 400, (bad, response.text)
            assert response.json()["code"] == 20001


async def test_without_a_dev_account_the_first_active_key_signs(
    stacks: StackFactory, redis: Redis
) -> None:
    async with (
        stacks.running((), dev_mode=True) as stack,
        httpx.AsyncClient(base_url=stack.base_url) as http,
    ):
        nobody = await http.post("/dev/token", json={"identity": "alice", "room": "r"})
        assert nobody.status_code == 503 and nobody.json()["code"] == 20503

        store = AccountStore(redis)
        tenant = await make_tenant(redis, "only")
        # A remembered dev account that has since been revoked is passed over.
        await store.revoke_api_key(tenant.api_key.sid)
        fresh = await store.create_api_key(tenant.account.sid, "second key")
        await store.remember_dev_account(tenant.account.sid, tenant.api_key.sid)
        response = await http.post("/dev/token", json={"identity": "alice", "room": "r"})
        assert response.status_code == 200, response.text
        claims = await verified(redis, response.json()["token"])
        assert (claims.account_sid, claims.api_key_sid) == (tenant.account.sid, fresh.sid)


async def test_without_dev_mode_none_of_it_exists(
    settings: Settings, stacks: StackFactory, redis: Redis
) -> None:
    await provision(redis, environ={})
    assert settings.dev_mode is False  # the default
    async with (
        stacks.running((), dev_mode=False) as stack,
        httpx.AsyncClient(base_url=stack.base_url) as http,
    ):
        for path in DEV_PATHS:
            assert_twilio_404(await http.get(path))
        assert_twilio_404(await http.post("/dev/token", json={"identity": "a", "room": "r"}))
        assert_twilio_404(await http.post("/dev/token", data={"identity": "a"}))
