"""The one settings object. Every process reads its configuration from the environment here."""

from __future__ import annotations

import json
from functools import lru_cache

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATRIUM_", extra="ignore")

    nats_url: str = Field(
        "nats://127.0.0.1:4222", validation_alias=AliasChoices("NATS_URL", "ATRIUM_NATS_URL")
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", validation_alias=AliasChoices("REDIS_URL", "ATRIUM_REDIS_URL")
    )

    # Gateway
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    public_url: str | None = None  # base of url/links/meta; default: from the request's Host
    rpc_timeout_seconds: float = 5.0
    # ICE servers handed to clients that ask over signaling (`iced`), as JSON: a list of
    # RTCIceServer objects, e.g. [{"urls": "turn:turn.example.com:3478", "username": ..}].
    ice_servers_json: str = "[]"
    # TURN with short-lived credentials (coturn's use-auth-secret): each client that asks gets
    # its own username and password for these URLs, valid for the TTL. Comma list of turn: URLs.
    turn_urls: str = ""
    turn_secret: SecretStr | None = None
    turn_credential_ttl_seconds: int = 3600
    # `atrium run` only: start coturn (Debian's turnserver, use-auth-secret with turn_secret, or a
    # secret it generates and keeps in .atrium/turn.secret) on this address and port (0: the
    # port of the last run when free, else a free one), and give the gateway its URLs and secret.
    turn_embedded: bool = False
    turn_embedded_address: str = "127.0.0.1"
    turn_embedded_port: int = 0
    # Dev mode: the gateway also serves the demo page (web/demo), twilio-video.js and
    # POST /dev/token, which mints tokens for the dev account without credentials. Never in
    # production. `atrium run` turns it on unless ATRIUM_DEV_MODE is set.
    dev_mode: bool = False

    # Dev account provisioned by `atrium run` when all four are set.
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    api_key_sid: str | None = None
    api_key_secret: SecretStr | None = None

    # Room lifecycle. Room timeouts are in minutes on the wire; tests shrink a minute here.
    minute_seconds: float = 60.0
    completed_room_retention_seconds: float = 7 * 24 * 3600.0
    timer_poll_seconds: float = 0.25
    # Media worker failover: how often the room service looks for gone workers, and how long a
    # ping (or, four times this, an adoption) may take.
    failover_poll_seconds: float = 0.5
    failover_timeout_seconds: float = 0.5

    # Status callbacks. Twilio tries twice at most; Atrium retries longer by default, and a URL's
    # own connection overrides (#rc=..&rp=..) win.
    callback_max_attempts: int = 6
    callback_backoff_initial_seconds: float = 1.0
    callback_backoff_max_seconds: float = 60.0
    callback_connect_timeout_ms: int = 5000
    callback_read_timeout_ms: int = 15000
    callback_total_timeout_ms: int = 15000
    callback_concurrency: int = 64
    callback_log_max_entries: int = 10000

    # Media worker. Capacity is in participants; the worker id names it in the registry and in
    # session strings (random when unset); the announced address replaces the gathered host
    # address in its candidates (1:1 NAT). Host addresses: the comma list ICE gathers on (unset:
    # the host's addresses plus 127.0.0.1).
    media_worker_id: str | None = None
    media_capacity: int = 200
    media_announced_address: str | None = None
    media_host_addresses: str = ""

    # Recordings: the local folder recordings are written to (``atrium run``: under its data
    # folder) and the secret that signs media download URLs (a random one per process when unset;
    # set it on every gateway replica and the recording service for URLs to work across them).
    recordings_dir: str = ".atrium/data/recordings"
    media_url_secret: SecretStr | None = None
    # An S3-compatible bucket for recordings when set (`s3://bucket/prefix`), the endpoint of a
    # server other than AWS, and the bucket's region (also read from AWS_REGION). Credentials
    # come from botocore's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, shared config,
    # instance roles), never from here.
    recordings_s3_url: str | None = None
    recordings_s3_endpoint_url: str | None = None
    recordings_s3_region: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "recordings_s3_region", "ATRIUM_RECORDINGS_S3_REGION", "AWS_REGION"
        ),
    )

    # Every service process: /livez, /readyz, /metrics and POST /drain on this port (0: off), and
    # how long SIGTERM / POST /drain lets in-flight work finish.
    health_port: int = 0
    drain_timeout_seconds: float = 0.0

    # Dev mode's static files: web/ of the checkout unless set.
    web_dir: str | None = None

    # Observability
    log_level: str = "INFO"
    log_format: str = "json"  # json or text
    otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )

    @field_validator(
        "health_port",
        "drain_timeout_seconds",
        "media_capacity",
        "turn_embedded_port",
        mode="before",
    )
    @classmethod
    def _empty_is_default(cls, value: object, info: ValidationInfo) -> object:
        # Images and manifests set some of these to "" to mean "not set".
        if value == "":
            return cls.model_fields[info.field_name or ""].default
        return value

    def ice_servers(self) -> list[dict[str, object]]:
        parsed = json.loads(self.ice_servers_json or "[]")
        return parsed if isinstance(parsed, list) else []


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
