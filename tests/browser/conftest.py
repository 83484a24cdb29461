"""Fixtures for tests that run the unmodified twilio-video.js SDK in headless Chromium.

Without Chromium or the pinned SDK these tests skip, unless ``CI`` is set: in CI they fail
(``.ci/run`` runs ``scripts/install-browser-deps.sh`` first).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest

from tests.browser.harness import Browser, StaticServer, require_chromium

_REPORT_KEY = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep the call-phase report so the ``browser`` fixture knows whether the test failed."""
    report = yield
    if report.when == "call":
        item.stash[_REPORT_KEY] = report
    return report


@pytest.fixture
async def web_server() -> AsyncIterator[StaticServer]:
    """``web/`` over HTTP on 127.0.0.1; ``web_server.url()`` is the test page."""
    server = await StaticServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def browser(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Browser]:
    """A fresh headless Chromium. At teardown: a failed test leaves a screenshot and the
    console of every page in ``tmp_path``; an uncaught page error fails a passing test."""
    binary = require_chromium()
    instance = await Browser(binary).start()
    try:
        yield instance
        report = request.node.stash.get(_REPORT_KEY, None)
        failed = report is not None and report.failed
        if failed:
            for index, page in enumerate(instance.pages):
                name = re.sub(r"\W+", "_", request.node.name)[:60]
                (tmp_path / f"{name}-page{index}-console.log").write_text(page.console_text())
                try:
                    await page.screenshot(tmp_path / f"{name}-page{index}.png")
                except Exception as exc:  # the page may be gone; the log is what matters
                    (tmp_path / f"{name}-page{index}-screenshot-error.txt").write_text(repr(exc))
            print(f"browser artifacts in {tmp_path}")
            for index, page in enumerate(instance.pages):
                print(f"--- page {index} console ---\n{page.console_text()}")
        else:
            errors = [f"page {i}: {e}" for i, p in enumerate(instance.pages) for e in p.errors]
            if errors:
                pytest.fail("uncaught errors in the page:\n" + "\n".join(errors), pytrace=False)
    finally:
        await instance.close()
