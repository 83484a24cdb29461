"""Fixtures of the integration tests that run `atrium run` itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.atrium_run import AtriumRun


@pytest.fixture
def atrium_runs() -> Iterator[list[AtriumRun]]:
    """The `atrium run` processes a test starts; each is torn down with all it started."""
    runs: list[AtriumRun] = []
    yield runs
    for run in runs:
        run.kill_everything()
