"""`atrium loadtest` (atrium_cli.loadtest): a tiny run against the real stack."""

from __future__ import annotations

import json
import os
import sys

import pytest

from atrium_cli.loadtest import LoadtestConfig, run_loadtest
from tests.support.processes import run_to_end
from tests.support.stack import REALTIME, Stack
from tests.support.tenants import Tenant

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.stack(REALTIME)]


async def test_a_tiny_loadtest_joins_everyone_and_receives_frames(
    stack: Stack, tenant: Tenant
) -> None:
    config = LoadtestConfig(
        url=stack.signaling_url,
        account_sid=tenant.account.sid,
        api_key_sid=tenant.api_key.sid,
        api_key_secret=tenant.key_secret,
        rooms=1,
        participants=2,
        duration=4.0,
        join_timeout=20.0,
    )
    result = await run_loadtest(config)
    print(result.as_dict())
    assert result.joins_attempted == 2 and result.joins_ok == 2 and result.failed_joins == 0
    assert result.join_p50_ms is not None and result.join_p95_ms is not None
    assert 0 < result.join_p50_ms <= result.join_p95_ms < 20_000
    assert result.video_subscriptions_expected == 2 and result.video_subscriptions == 2
    assert result.video_fps_min is not None and result.video_fps_min > 5
    assert result.audio_fps_mean is not None and result.audio_fps_mean > 10
    assert result.dropped_connections == 0 and result.errors == []
    rows = dict(result.rows())
    assert rows["joins ok"] == "2 / 2" and rows["failed joins"] == "0"


async def test_the_atrium_loadtest_command(stack: Stack, tenant: Tenant) -> None:
    """The CLI end to end: flags and env, progress, the table, --json, exit code 0."""
    env = {
        **os.environ,
        "ATRIUM_ACCOUNT_SID": tenant.account.sid,
        "ATRIUM_API_KEY_SID": tenant.api_key.sid,
        "ATRIUM_API_KEY_SECRET": tenant.key_secret,
        "COLUMNS": "120",
    }
    code, text = await run_to_end(
        sys.executable,
        "-m",
        "atrium_cli.main",
        "loadtest",
        "--url",
        stack.signaling_url,
        "--rooms",
        "1",
        "--participants",
        "2",
        "--duration",
        "3",
        "--json",
        env=env,
        timeout=60,
    )
    assert code == 0, text
    assert "join latency p50" in text and "dropped connections" in text, text
    figures = json.loads(text[text.index("\n{") + 1 :])
    assert figures["joins_ok"] == 2 and figures["video_subscriptions"] == 2, figures
