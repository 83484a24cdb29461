"""The dev-mode demo page (web/demo), served by the gateway, in two headless Chromium tabs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from atrium_cli.provision import provision
from tests.browser.harness import Browser, Page
from tests.support.pictures import read_png
from tests.support.stack import REALTIME, Stack, StackFactory

PAGE_READY = "!!(window.Twilio && Twilio.Video && document.querySelector('#join'))"
ROOM = "demo-room"


@pytest.fixture
async def dev_stack(stacks: StackFactory, redis: Redis) -> Stack:
    await provision(redis, environ={})  # the dev account, as `atrium run` creates it
    return await stacks.start(REALTIME, dev_mode=True)


async def join(browser: Browser, stack: Stack, name: str) -> Page:
    """Open the demo, type a name and the room, click Join, wait until connected."""
    page = await browser.new_page(stack.base_url + "/", ready=PAGE_READY)
    await page.eval(
        f"document.querySelector('#identity').value = {json.dumps(name)};"
        f"document.querySelector('#room').value = {json.dumps(ROOM)};"
        "document.querySelector('#join').click();"
    )
    await page.wait_for("!document.querySelector('#leave').hidden", timeout=20)
    return page


def remote_video_playing(identity: str) -> str:
    """JS: exactly one remote tile, ``identity``'s, and its video decodes frames."""
    return (
        "(() => { const tiles = document.querySelectorAll('.tile.remote');"
        " if (tiles.length !== 1) return false;"
        f" if (tiles[0].dataset.identity !== {json.dumps(identity)}) return false;"
        " const video = tiles[0].querySelector('video');"
        " return !!(video && video.videoWidth > 0 && tiles[0].querySelector('audio')); })()"
    )


async def bounding_box(page: Page, selector: str) -> dict[str, Any]:
    """The element's box in CSS pixels of the viewport (the screenshot's, at scale 1)."""
    box: dict[str, Any] = await page.eval(
        f"(() => {{ const r = document.querySelector({json.dumps(selector)})"
        ".getBoundingClientRect(); return {left: r.left, top: r.top, right: r.right,"
        " bottom: r.bottom, width: r.width, height: r.height}; })()"
    )
    return box


def chat_has(text: str) -> str:
    return (
        "Array.from(document.querySelectorAll('#messages li'))"
        f".some(li => li.textContent === {json.dumps(text)})"
    )


async def test_two_people_see_and_chat_with_each_other(
    dev_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    alice = await join(browser, dev_stack, "alice")
    bob = await join(browser, dev_stack, "bob")

    await alice.wait_for(remote_video_playing("bob"), timeout=30)
    await bob.wait_for(remote_video_playing("alice"), timeout=30)
    for page in (alice, bob):
        assert await page.eval("document.querySelector('.tile.local video').videoWidth > 0"), (
            "own preview"
        )
        status = await page.eval("document.querySelector('#status').textContent")
        assert status.startswith(f"In room {ROOM} as "), status

    # Chat over the LocalDataTrack: bob's data track is subscribed once alice sees it.
    await bob.eval(
        "document.querySelector('#chat-input').value = 'hi alice';"
        "document.querySelector('#chat-form').requestSubmit();"
    )
    await bob.wait_for(chat_has("bob (you): hi alice"))
    await alice.wait_for(chat_has("bob: hi alice"), timeout=15)
    await alice.eval(
        "document.querySelector('#chat-input').value = 'hello bob';"
        "document.querySelector('#chat-form').requestSubmit();"
    )
    await bob.wait_for(chat_has("alice: hello bob"), timeout=15)

    for name, page in (("alice", alice), ("bob", bob)):
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 1280, "height": 720, "deviceScaleFactor": 1, "mobile": False},
        )
        picture = read_png(await page.screenshot(tmp_path / f"demo-{name}.png"))
        assert (picture.width, picture.height) == (1280, 720)
        # The page is painted (not one background colour), and so is each video: the fake
        # camera's moving test pattern, not a black or empty box.
        assert len(picture.colors()) > 50, picture.colors()
        for tile in (".tile.local video", ".tile.remote video"):
            box = await bounding_box(page, tile)
            assert box["width"] >= 100 and box["height"] >= 75, (tile, box)
            inside = picture.colors(box["left"], box["top"], box["right"], box["bottom"])
            assert len(inside) > 20, (name, tile, box, sorted(inside)[:10])
    print(f"screenshots in {tmp_path}")

    # Leave: bob's page empties, alice's remote tile goes.
    await bob.eval("document.querySelector('#leave').click()")
    await bob.wait_for(
        "document.querySelector('#tiles').children.length === 0"
        " && !document.querySelector('#join').hidden",
        timeout=15,
    )
    await alice.wait_for("document.querySelectorAll('.tile.remote').length === 0", timeout=20)
    await alice.wait_for(chat_has("bob left"))
