"""Wires the gateway: the REST API and the signaling hub on real adapters, or on fakes.

Cosmic Python's ``bootstrap.py`` is the model: every port may be passed in (the unit tier passes
in-memory fakes, ``tests/support/fakes/gateway.py``); what is not is built on NATS and Redis from
``settings``, and a broker or Redis client is made only when a real adapter needs one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from faststream.nats import NatsBroker
from redis.asyncio import Redis

from atrium_gateway.adapters.nats import (
    BrokerReadiness,
    NatsParticipants,
    NatsRecordings,
    NatsRooms,
    NatsRpc,
    NatsSignalingPublisher,
    NatsTracks,
    subscribe_worker_frames,
)
from atrium_gateway.adapters.redis import RedisReadiness
from atrium_gateway.api.application import Step, build_application
from atrium_gateway.api.dependencies import GatewayPorts
from atrium_gateway.api.signaling import SignalingHub
from atrium_gateway.media_links import MediaUrlSigner, media_url_secret
from atrium_gateway.ports import (
    AccountsPort,
    ParticipantsPort,
    ReadinessProbe,
    RecordingsPort,
    RoomsPort,
    SessionsPort,
    SignalingPublisher,
    TracksPort,
)
from atrium_shared.accounts import AccountStore
from atrium_shared.infra import make_broker, make_redis
from atrium_shared.settings import Settings
from atrium_shared.workers import SessionDirectory


@dataclass
class GatewayService:
    settings: Settings
    app: FastAPI
    ports: GatewayPorts
    signaling: SignalingHub
    # The connections the real adapters use; None when every port using one was passed in.
    broker: NatsBroker | None
    redis: Redis | None


class _Connections:
    """The broker and the Redis client: the ones passed in, else made on first use."""

    def __init__(self, settings: Settings, broker: NatsBroker | None, redis: Redis | None):
        self.settings = settings
        self.broker = broker
        self.redis = redis
        self._rpc: NatsRpc | None = None

    def nats(self) -> NatsBroker:
        if self.broker is None:
            self.broker = make_broker(self.settings)
        return self.broker

    def rpc(self) -> NatsRpc:
        if self._rpc is None:
            self._rpc = NatsRpc(self.nats(), self.settings.rpc_timeout_seconds)
        return self._rpc

    def valkey(self) -> Redis:
        if self.redis is None:
            self.redis = make_redis(self.settings)
        return self.redis


def bootstrap(
    settings: Settings,
    *,
    broker: NatsBroker | None = None,
    redis: Redis | None = None,
    accounts: AccountsPort | None = None,
    rooms: RoomsPort | None = None,
    participants: ParticipantsPort | None = None,
    tracks: TracksPort | None = None,
    recordings: RecordingsPort | None = None,
    signaling: SignalingPublisher | None = None,
    sessions: SessionsPort | None = None,
    readiness: Sequence[ReadinessProbe] | None = None,
) -> GatewayService:
    """The gateway on the given ports, real ones for the rest.

    The app's lifespan starts the broker, and at shutdown stops it and closes Redis.
    ``readiness`` defaults to the connections in use: Redis answers a ping, NATS is connected.
    Recordings' download URLs are signed with ``settings.media_url_secret`` (a random secret of
    this process when unset: then only this replica accepts the URLs it issued).
    """
    made = _Connections(settings, broker, redis)
    accounts = accounts if accounts is not None else AccountStore(made.valkey())
    rooms = rooms if rooms is not None else NatsRooms(made.rpc())
    participants = participants if participants is not None else NatsParticipants(made.rpc())
    tracks = tracks if tracks is not None else NatsTracks(made.rpc())
    recordings = recordings if recordings is not None else NatsRecordings(made.rpc())
    signaling = signaling if signaling is not None else NatsSignalingPublisher(made.nats())
    sessions = sessions if sessions is not None else SessionDirectory(made.valkey())
    hub = SignalingHub(rooms, accounts, signaling, settings, sessions)

    probes: list[ReadinessProbe] = []
    on_startup: list[Step] = []
    on_shutdown: list[Step] = []
    if made.redis is not None:
        probes.append(RedisReadiness(made.redis))
    if made.broker is not None:
        subscribe_worker_frames(made.broker, hub)
        probes.append(BrokerReadiness(made.broker))
        on_startup.append(made.broker.start)
        on_shutdown.append(made.broker.stop)
    if made.redis is not None:
        on_shutdown.append(made.redis.aclose)
    ports = GatewayPorts(
        accounts,
        rooms,
        participants,
        tracks,
        recordings,
        probes if readiness is None else readiness,
    )
    signer = MediaUrlSigner(media_url_secret(settings))
    app = build_application(
        settings, ports, hub, signer, on_startup=on_startup, on_shutdown=on_shutdown
    )
    return GatewayService(settings, app, ports, hub, made.broker, made.redis)
