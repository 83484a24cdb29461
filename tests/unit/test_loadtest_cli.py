"""`atrium loadtest` argument checks and token minting (no server needed)."""

from __future__ import annotations

import pytest

from atrium_cli.connection import CliError
from atrium_cli.loadtest import LoadtestConfig, config_from_args, percentile
from atrium_cli.main import build_parser
from atrium_shared.access_tokens import mint_video_token as mint_token

CREDENTIALS = [
    "--account-sid",
    "AC" + "1" * 32,
    "--api-key-sid",
    "SK" + "2" * 32,
    "--api-key-secret",
    "s" * 32,
]


def parse(*argv: str) -> LoadtestConfig:
    return config_from_args(build_parser().parse_args(["loadtest", *argv]))


def test_defaults_are_small_and_bounded() -> None:
    config = parse("--url", "ws://127.0.0.1:8080/signaling", *CREDENTIALS)
    assert (config.rooms, config.participants, config.duration) == (2, 3, 15.0)


def test_only_loopback_unless_allowed() -> None:
    with pytest.raises(CliError, match="--allow-remote"):
        parse("--url", "ws://video.example.com/signaling", *CREDENTIALS)
    config = parse("--url", "wss://video.example.com/signaling", "--allow-remote", *CREDENTIALS)
    assert config.url == "wss://video.example.com/signaling"
    with pytest.raises(CliError, match="ws://"):
        parse("--url", "http://127.0.0.1:8080", *CREDENTIALS)


def test_credentials_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ATRIUM_ACCOUNT_SID", "ATRIUM_API_KEY_SID", "ATRIUM_API_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(CliError, match="--api-key-secret"):
        parse("--url", "ws://127.0.0.1:8080/signaling", *CREDENTIALS[:4])


def test_tokens_verify_like_twilio_tokens() -> None:
    from twilio.jwt import Jwt

    token = mint_token("AC" + "1" * 32, "SK" + "2" * 32, "s" * 32, "alice", "room-1")
    payload = Jwt.from_jwt(token, "s" * 32).payload
    assert payload["grants"] == {"identity": "alice", "video": {"room": "room-1"}}
    assert payload["iss"] == "SK" + "2" * 32 and payload["sub"] == "AC" + "1" * 32


def test_percentile_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(v) for v in range(1, 101)], 0.95) == 95.0
