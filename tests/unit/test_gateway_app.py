"""The gateway around its REST API: probes, dev mode, the /signaling socket and the NATS adapters.

The app is bootstrap()'s on fakes (tests/support/fakes/gateway.py); the NATS adapters run under
FastStream's TestNatsBroker. No NATS or Redis process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from pydantic import SecretStr
from redis.asyncio import Redis

from atrium_gateway import tokens
from atrium_gateway.adapters import nats
from atrium_gateway.adapters.redis import RedisReadiness
from atrium_gateway.api.signaling import Connection, SignalingHub
from atrium_gateway.bootstrap import bootstrap
from atrium_shared import errors, subjects
from atrium_shared.access_tokens import mint_video_token
from atrium_shared.accounts import AccountStore, ApiKey
from atrium_shared.models import RoomInfo
from atrium_shared.room_api import FetchRoomRequest, JoinRoomRequest
from atrium_shared.rpc import reply_handler
from atrium_shared.settings import Settings
from atrium_shared.signaling_api import ClientFrame, WorkerFrame
from tests.support.fakes.gateway import (
    EPOCH,
    FakeGateway,
    FakeSignalingPublisher,
    SocketClosed,
    WebSocketClient,
    fake_gateway,
)
from tests.support.replies import failure
from tests.support.waiting import eventually


# Probes ---------------------------------------------------------------------------------------
async def test_ready_only_while_started_and_every_probe_answers() -> None:
    gateway = fake_gateway()
    transport = httpx.ASGITransport(app=gateway.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as unstarted:
        assert (await unstarted.get("/readyz")).status_code == 503
        assert (await unstarted.get("/livez")).text == "ok"
    async with gateway.client() as http:
        ready = await http.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready")
        gateway.readiness.state = False
        assert (await http.get("/readyz")).status_code == 503
        gateway.readiness.state = ConnectionError("Redis is gone")
        assert (await http.get("/readyz")).text == "not ready"
        for path in ("/livez", "/healthz"):
            assert (await http.get(path)).text == "ok"
        metrics = await http.get("/metrics")
        assert metrics.status_code == 200 and "process_" in metrics.text
        assert "/readyz" not in str(gateway.app.openapi()["paths"])


async def test_bootstrap_wires_nats_and_redis_for_what_is_not_passed() -> None:
    service = bootstrap(Settings())
    try:
        assert isinstance(service.broker, NatsBroker) and isinstance(service.redis, Redis)
        ports = service.ports
        assert isinstance(ports.accounts, AccountStore)
        assert isinstance(ports.rooms, nats.NatsRooms)
        assert isinstance(ports.participants, nats.NatsParticipants)
        assert isinstance(ports.tracks, nats.NatsTracks)
        assert isinstance(ports.recordings, nats.NatsRecordings)
        assert [type(probe) for probe in ports.readiness] == [RedisReadiness, nats.BrokerReadiness]
        assert isinstance(service.signaling.publisher, nats.NatsSignalingPublisher)
        assert service.app.state.signaling is service.signaling
    finally:
        await service.redis.aclose()  # type: ignore[union-attr]

    faked = fake_gateway().service
    assert (faked.broker, faked.redis) == (None, None)  # nothing to connect to


# Dev mode -------------------------------------------------------------------------------------
def dev_gateway(tmp_path: Path, **settings: Any) -> FakeGateway:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "index.html").write_text("<title>demo</title>")
    (tmp_path / "secret.txt").write_text("not for you")
    return fake_gateway(Settings(dev_mode=True, web_dir=str(tmp_path), **settings))


@pytest.fixture
async def gateway_http() -> AsyncIterator[httpx.AsyncClient]:
    async with fake_gateway().client() as http:
        yield http


async def test_without_dev_mode_there_is_no_dev_route(gateway_http: httpx.AsyncClient) -> None:
    for response in (
        await gateway_http.post("/dev/token", json={"identity": "alice"}),
        await gateway_http.get("/"),
        await gateway_http.get("/demo/index.html"),
    ):
        assert response.status_code == 404 and response.json()["code"] == errors.NOT_FOUND


async def test_the_dev_token_is_signed_with_the_dev_account(tmp_path: Path) -> None:
    gateway = dev_gateway(tmp_path, public_url="https://video.example.com")
    key = gateway.accounts.add_api_key(gateway.account.sid)
    gateway.accounts.dev = (gateway.account.sid, key.sid)
    async with gateway.client() as http:
        response = await http.post("/dev/token", json={"identity": " alice ", "room": "standup"})
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert body | {"token": "-"} == {
            "token": "-",
            "identity": "alice",
            "room": "standup",
            "wsServer": "wss://video.example.com/signaling",
        }
        claims = await tokens.verify_video_token(body["token"], gateway.accounts.get_api_key)
        assert (claims.account_sid, claims.api_key_sid, claims.identity, claims.room) == (
            gateway.account.sid,
            key.sid,
            "alice",
            "standup",
        )
        as_form = await http.post("/dev/token", data={"identity": "bob", "room": ""})
        assert as_form.json()["room"] is None

        for bad in (
            {},
            {"identity": "  "},
            {"identity": 7},
            {"identity": "x" * 257},
            {"identity": "x", "room": ["r"]},
        ):
            refused = await http.post("/dev/token", json=bad)
            assert refused.status_code == 400 and refused.json()["code"] == errors.INVALID_PARAMETER
        for raw in ("[1]", "{"):
            refused = await http.post(
                "/dev/token", content=raw, headers={"content-type": "application/json"}
            )
            assert refused.status_code == 400, raw


async def test_dev_tokens_fall_back_to_the_configured_key_then_any_active_one(
    tmp_path: Path,
) -> None:
    gateway = dev_gateway(tmp_path)
    async with gateway.client() as http:
        nobody = await http.post("/dev/token", json={"identity": "alice"})
        assert nobody.status_code == 503 and nobody.json()["code"] == errors.SERVICE_UNAVAILABLE

        revoked = gateway.accounts.add_api_key(gateway.account.sid)
        gateway.accounts.api_keys[revoked.sid] = revoked.model_copy(update={"status": "revoked"})
        gateway.accounts.dev = (gateway.account.sid, revoked.sid)  # no longer usable
        active = gateway.accounts.add_api_key(gateway.account.sid)
        signed_by = await _signer(gateway, http)
        assert signed_by == active.sid

    other = gateway.accounts.add_account("configured")
    configured = gateway.accounts.add_api_key(other.sid)
    settings = Settings(
        dev_mode=True, web_dir=str(tmp_path), api_key_sid=configured.sid, account_sid=other.sid
    )
    rewired = bootstrap(
        settings,
        accounts=gateway.accounts,
        rooms=gateway.rooms,
        participants=gateway.participants,
        tracks=gateway.tracks,
        recordings=gateway.recordings,
        signaling=gateway.workers,
        sessions=gateway.sessions,
        readiness=[gateway.readiness],
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=rewired.app), base_url="http://gw"
    ) as http:
        response = await http.post("/dev/token", json={"identity": "alice"})
        claims = await tokens.verify_video_token(
            response.json()["token"], gateway.accounts.get_api_key
        )
        assert claims.api_key_sid == configured.sid


async def _signer(gateway: FakeGateway, http: httpx.AsyncClient) -> str:
    response = await http.post("/dev/token", json={"identity": "alice"})
    assert response.status_code == 200, response.text
    claims = await tokens.verify_video_token(response.json()["token"], gateway.accounts.get_api_key)
    return claims.api_key_sid


async def test_the_demo_files_and_no_way_out_of_them(tmp_path: Path) -> None:
    async with dev_gateway(tmp_path).client() as http:
        page = await http.get("/")
        assert page.status_code == 200 and "demo" in page.text
        assert (await http.get("/demo/index.html")).text == page.text
        for escape in ("/demo/../secret.txt", "/demo/%2e%2e/secret.txt", "/demo/missing.js"):
            missing = await http.get(escape)
            assert missing.status_code == 404 and missing.json()["code"] == errors.NOT_FOUND
        sdk = await http.get("/vendor/twilio-video.min.js")
        assert sdk.status_code == 404 and "install-browser-deps.sh" in sdk.json()["message"]


# The signaling socket -------------------------------------------------------------------------
class AnsweringWorker(FakeSignalingPublisher):
    """A media worker that answers each ``connect`` with a ``connected`` body."""

    hub: SignalingHub

    async def to_worker(self, worker_id: str, frame: ClientFrame) -> None:
        await super().to_worker(worker_id, frame)
        if frame.body.get("type") == "connect":
            reply = {"type": "connected", "session": f"{worker_id}.s1"}
            self.hub.deliver(WorkerFrame(connection_id=frame.connection_id, bodies=[reply]))


@pytest.fixture
def signaling(request: pytest.FixtureRequest) -> tuple[FakeGateway, AnsweringWorker, ApiKey]:
    workers = AnsweringWorker()
    gateway = fake_gateway()
    overrides = getattr(request, "param", {})
    gateway.service = bootstrap(
        Settings().model_copy(update=overrides),
        accounts=gateway.accounts,
        rooms=gateway.rooms,
        participants=gateway.participants,
        tracks=gateway.tracks,
        recordings=gateway.recordings,
        signaling=workers,
        sessions=gateway.sessions,
        readiness=[gateway.readiness],
    )
    workers.hub = gateway.service.signaling
    return gateway, workers, gateway.accounts.add_api_key(gateway.account.sid)


def token(key: ApiKey, identity: str = "alice", room: str | None = "standup") -> str:
    return mint_video_token(key.account_sid, key.sid, key.secret.get_secret_value(), identity, room)


async def test_connect_is_verified_joined_and_relayed_to_the_rooms_worker(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
) -> None:
    gateway, workers, key = signaling
    async with WebSocketClient(gateway.app, "/signaling/") as socket:
        await socket.send_json({"type": "hello", "timeout": 60_000, "version": 2})
        assert await socket.receive_json() == {"type": "welcome", "negotiatedTimeout": 30_000}
        connect = {"type": "connect", "token": token(key), "name": "standup"}
        await socket.send_json({"type": "msg", "body": connect})
        assert await socket.receive_json() == {
            "type": "msg",
            "body": {"type": "connected", "session": "media-1.s1"},
        }
        ((worker_id, frame),) = workers.frames
        assert worker_id == gateway.rooms.worker_id
        assert gateway.rooms.requests == [
            JoinRoomRequest(account_sid=gateway.account.sid, room="standup")
        ]
        assert frame.body == connect
        assert frame.caller is not None and frame.room is not None
        assert (frame.caller.account_sid, frame.caller.identity, frame.caller.api_key_sid) == (
            gateway.account.sid,
            "alice",
            key.sid,
        )
        assert frame.room.unique_name == "standup"
        assert frame.reply_subject == subjects.gateway_subject(
            gateway.service.signaling.gateway_id, frame.connection_id
        )

        await socket.send_json({"type": "heartbeat"})
        await socket.send_json({"type": "msg", "body": {"type": "update", "participant": {}}})
        await socket.send_json({"type": "bye"})
        with pytest.raises(SocketClosed) as closed:
            await socket.receive_json()
        assert closed.value.code == 1000
    kinds = [(f.kind, f.body.get("type")) for _, f in workers.frames]
    assert kinds == [("rsp", "connect"), ("rsp", "update"), ("socket-closed", None)]
    assert gateway.service.signaling.connections == {}


async def test_one_session_per_socket_and_a_session_names_a_real_subject(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
) -> None:
    """A sync's session string becomes part of a NATS subject: one naming no plain worker id
    (wildcards, spaces, line breaks) goes nowhere. And a socket carries one session: a second
    connect or sync would take its frames, its close included, away from the first one's worker."""
    gateway, workers, key = signaling
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        await socket.send_json({"type": "hello", "timeout": 60_000})
        assert (await socket.receive_json())["type"] == "welcome"

        async def answer(body: dict[str, Any]) -> dict[str, Any]:
            await socket.send_json({"type": "msg", "body": body})
            reply: dict[str, Any] = (await socket.receive_json())["body"]
            return reply

        for session in ("*.s1", ">.s1", "media 1.s1", "media-1\r\nPUB x 1.s1", "a..b.s1", ".s1"):
            sync = {"type": "sync", "token": token(key), "session": session}
            assert (await answer(sync))["code"] == errors.SIGNALING_INVALID_MESSAGE, session
        not_text: list[Any] = [{"id": "media-1.s1"}, ["media-1.s1"], 7]
        for wrong in not_text:
            sync = {"type": "sync", "token": token(key), "session": wrong}
            assert (await answer(sync))["code"] == errors.SIGNALING_INVALID_MESSAGE, wrong
        assert workers.frames == []

        assert (await answer({"type": "connect", "token": token(key)}))["type"] == "connected"
        for again in (
            {"type": "connect", "token": token(key)},
            {"type": "sync", "token": token(key), "session": "media-2.s9"},
        ):
            assert (await answer(again))["code"] == errors.SIGNALING_INVALID_MESSAGE
    await eventually(lambda: len(workers.frames) == 2, timeout=2, interval=0.001, message="close")
    assert [(w, f.kind, f.body.get("type")) for w, f in workers.frames] == [
        (gateway.rooms.worker_id, "rsp", "connect"),
        (gateway.rooms.worker_id, "socket-closed", None),
    ]
    assert len(gateway.rooms.requests) == 1


async def test_signaling_errors_come_back_as_rsp_error_bodies(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
) -> None:
    gateway, workers, key = signaling
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        await socket.send_json({"type": "hello", "timeout": 10})
        assert (await socket.receive_json())["negotiatedTimeout"] == 1000

        async def answer(body: dict[str, Any]) -> dict[str, Any]:
            await socket.send_json({"type": "msg", "body": body})
            reply: dict[str, Any] = (await socket.receive_json())["body"]
            return reply

        assert (await answer({"type": "update"}))["code"] == errors.SIGNALING_INVALID_MESSAGE
        assert (await answer({"type": "connect", "token": 7}))["code"] == errors.TOKEN_INVALID
        elsewhere = {"type": "connect", "token": token(key), "name": "other"}
        assert (await answer(elsewhere))["code"] == errors.TOKEN_INVALID_GRANTS
        nameless = {"type": "connect", "token": token(key, room=None)}
        assert (await answer(nameless))["code"] == errors.ROOM_NAME_INVALID
        unknown = {"type": "sync", "token": token(key), "session": "nodot"}
        assert (await answer(unknown))["code"] == errors.SIGNALING_INVALID_MESSAGE
        gateway.rooms.fail_with = errors.not_found("/Rooms/standup")
        refused = await answer({"type": "connect", "token": token(key)})
        assert refused["code"] == errors.NOT_FOUND
        assert workers.frames == []

        # ICE servers (and TURN credentials) only for a valid token.
        assert (await answer({"type": "ice"}))["code"] == errors.TOKEN_INVALID
        assert (await answer({"type": "ice", "token": "x.y.z"}))[
            "code"
        ] == errors.TOKEN_INVALID_HEADER
        ice = await answer({"type": "ice", "token": token(key)})
        assert ice["type"] == "iced" and isinstance(ice["ice_servers"], list)

        workers.reachable = False
        assert await answer({"type": "connect", "token": token(key)}) == {
            "type": "error",
            "code": errors.SIGNALING_ERROR,
            "message": "Signaling connection error",
        }
        await socket.send_text("not json")
        assert await socket.receive_json() == {"type": "bad", "reason": "not JSON"}
        await socket.send_json({"type": "shout"})
        assert await socket.receive_json() == {"type": "bad", "reason": "unknown frame"}


@pytest.mark.parametrize(
    ("frame", "reason", "code"),
    [
        (b"\x00\x01binary", "binary frame", 1003),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply", 1008),  # RecursionError
        (
            '{"type": "msg", "body": {"type": "update", "x": ' + "[" * 100 + "]" * 100 + "}}",
            "nested too deeply",
            1008,
        ),
    ],
)
async def test_frames_no_tcmp_client_sends_get_bad_and_a_close(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
    frame: str | bytes,
    reason: str,
    code: int,
) -> None:
    gateway, workers, _key = signaling
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        await socket.send_json({"type": "hello", "timeout": 60_000})
        assert (await socket.receive_json())["type"] == "welcome"
        if isinstance(frame, bytes):
            await socket.send_bytes(frame)
        else:
            await socket.send_text(frame)
        assert await socket.receive_json() == {"type": "bad", "reason": reason}
        with pytest.raises(SocketClosed) as closed:
            await socket.receive_json()
        assert closed.value.code == code
    assert [f.kind for _, f in workers.frames] in ([], ["socket-closed"])
    assert gateway.service.signaling.connections == {}


async def test_a_closed_accounts_tokens_join_nothing(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
) -> None:
    gateway, workers, key = signaling
    gateway.accounts.close(gateway.account.sid)
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        await socket.send_json({"type": "hello", "timeout": 60_000})
        assert (await socket.receive_json())["type"] == "welcome"
        for body in (
            {"type": "connect", "token": token(key)},
            {"type": "sync", "token": token(key), "session": "media-1.s1"},
        ):
            await socket.send_json({"type": "msg", "body": body})
            reply = (await socket.receive_json())["body"]
            assert (reply["type"], reply["code"]) == ("error", errors.TOKEN_INVALID_ISSUER)
    assert workers.frames == [] and gateway.rooms.requests == []


async def test_a_sync_goes_to_the_worker_its_session_names(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
) -> None:
    gateway, workers, key = signaling
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        sync = {"type": "sync", "token": token(key), "session": "media-7.abc"}
        await socket.send_json({"type": "hello", "body": sync})
        assert (await socket.receive_json())["type"] == "welcome"
        # The worker answers on the socket; here the hub is handed its frame as NATS would.
        await eventually(lambda: workers.frames, timeout=2, interval=0.001, message="a frame")
        ((worker_id, frame),) = workers.frames
        assert (worker_id, frame.room) == ("media-7", None)
        assert frame.caller is not None and frame.caller.identity == "alice"
        assert gateway.rooms.requests == []  # no join: the session has its room
        gateway.service.signaling.deliver(
            WorkerFrame(
                connection_id=frame.connection_id, bodies=[{"type": "synced"}], close_code=4000
            )
        )
        assert await socket.receive_json() == {"type": "msg", "body": {"type": "synced"}}
        with pytest.raises(SocketClosed) as closed:
            await socket.receive_json()
        assert closed.value.code == 4000


async def test_a_sync_of_an_adopted_session_goes_to_the_worker_that_adopted_it(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
) -> None:
    gateway, workers, key = signaling
    gateway.sessions.moved["abc"] = "media-9"  # media-7 died; media-9 resumed the session
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        sync = {"type": "sync", "token": token(key), "session": "media-7.abc"}
        await socket.send_json({"type": "hello", "body": sync})
        assert (await socket.receive_json())["type"] == "welcome"
        await eventually(lambda: workers.frames, timeout=2, interval=0.001, message="a frame")
        ((worker_id, _),) = workers.frames
        assert worker_id == "media-9"


async def test_a_frame_from_the_adopting_worker_moves_the_connection_and_replays_recent_frames(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
) -> None:
    gateway, workers, key = signaling
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        sync = {"type": "sync", "token": token(key), "session": "media-7.abc"}
        await socket.send_json({"type": "hello", "body": sync})
        assert (await socket.receive_json())["type"] == "welcome"
        await eventually(lambda: workers.frames, timeout=2, interval=0.001, message="the sync")
        connection_id = workers.frames[0][1].connection_id
        # An ICE restart offer the dying worker never handled.
        restart = {"type": "update", "peer_connections": [{"id": "pc", "description": {}}]}
        await socket.send_json({"type": "msg", "body": restart})
        await eventually(lambda: len(workers.frames) == 2, timeout=2, interval=0.001)
        assert workers.frames[1][0] == "media-7"

        gateway.service.signaling.deliver(
            WorkerFrame(
                connection_id=connection_id,
                worker_id="media-9",
                bodies=[{"type": "update", "peer_connections": []}],
            )
        )
        assert (await socket.receive_json())["body"]["type"] == "update"
        # The update is sent again, to the adopter (the sync is not: it would start over).
        await eventually(lambda: len(workers.frames) == 3, timeout=2, interval=0.001)
        assert workers.frames[2][0] == "media-9" and workers.frames[2][1].body == restart
        await socket.send_json({"type": "msg", "body": {"type": "disconnect"}})
        await eventually(lambda: len(workers.frames) == 4, timeout=2, interval=0.001)
        assert workers.frames[3][0] == "media-9"


# The NATS adapters ----------------------------------------------------------------------------
async def test_the_nats_clients_are_request_reply_with_typed_errors() -> None:
    broker = NatsBroker()
    room = RoomInfo(
        sid="RM" + "1" * 32,
        account_sid="AC" + "a" * 32,
        unique_name="standup",
        date_created=EPOCH,
        date_updated=EPOCH,
    )

    @broker.subscriber(subjects.ROOM_FETCH)
    @reply_handler
    async def fetch(request: FetchRoomRequest) -> RoomInfo:
        if request.sid_or_name != room.unique_name:
            raise errors.not_found(f"/Rooms/{request.sid_or_name}")
        return room

    async with TestNatsBroker(broker) as test_broker:
        rooms = nats.NatsRooms(nats.NatsRpc(test_broker, 1.0))
        request = FetchRoomRequest(account_sid=room.account_sid, sid_or_name="standup")
        assert await rooms.fetch(request) == room
        missing = await failure(rooms.fetch(request.model_copy(update={"sid_or_name": "x"})))
        assert (missing.code, missing.status) == (errors.NOT_FOUND, 404)
        assert await nats.BrokerReadiness(test_broker).ready()


async def test_a_service_whose_redis_is_down_replies_20503_not_500() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    broker = NatsBroker()

    @broker.subscriber(subjects.ROOM_FETCH)
    @reply_handler
    async def fetch(request: FetchRoomRequest) -> RoomInfo:
        raise RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    async with TestNatsBroker(broker) as test_broker:
        rooms = nats.NatsRooms(nats.NatsRpc(test_broker, 1.0))
        down = await failure(
            rooms.fetch(FetchRoomRequest(account_sid="AC" + "a" * 32, sid_or_name="x"))
        )
    assert (down.code, down.status, down.message) == (
        errors.SERVICE_UNAVAILABLE,
        503,
        "Service unavailable (Redis)",
    )


async def test_rest_and_signaling_answer_20503_while_the_account_store_is_unreachable() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    gateway = fake_gateway()
    account = gateway.accounts.add_account()
    key = gateway.accounts.add_api_key(account.sid)

    async def unreachable(*args: object) -> None:
        raise RedisConnectionError("Connection refused.")

    gateway.accounts.authenticate = unreachable  # type: ignore[method-assign, assignment]
    gateway.accounts.get_api_key = unreachable  # type: ignore[method-assign, assignment]
    async with gateway.client() as http:
        response = await http.get(
            "/v1/Rooms", auth=(account.sid, account.auth_token.get_secret_value())
        )
    assert response.status_code == 503
    assert response.json() == {
        "code": errors.SERVICE_UNAVAILABLE,
        "message": "Service unavailable (Redis)",
        "more_info": "https://www.twilio.com/docs/errors/20503",
        "status": 503,
    }
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        await socket.send_json({"type": "hello", "timeout": 1000})
        await socket.receive_json()
        for kind in ("ice", "connect"):
            body = {"type": kind, "token": token(key), "name": "standup"}
            await socket.send_json({"type": "msg", "body": body})
            reply = (await socket.receive_json())["body"]
            assert (reply["type"], reply["code"]) == ("error", errors.SERVICE_UNAVAILABLE), kind
        await socket.send_json({"type": "heartbeat"})  # the socket is still open


async def test_worker_frames_reach_their_connection_and_client_frames_their_worker() -> None:
    gateway = fake_gateway()
    broker = NatsBroker()
    service = bootstrap(
        Settings(),
        broker=broker,
        accounts=gateway.accounts,
        rooms=gateway.rooms,
        participants=gateway.participants,
        tracks=gateway.tracks,
        recordings=gateway.recordings,
    )
    hub = service.signaling
    seen: list[ClientFrame] = []

    @broker.subscriber(subjects.worker_subject("media-1"))
    async def worker(frame: ClientFrame) -> None:
        seen.append(frame)

    connection = Connection("c1", socket=None)  # type: ignore[arg-type]
    hub.connections["c1"] = connection
    async with TestNatsBroker(broker) as test_broker:
        frame = WorkerFrame(connection_id="c1", bodies=[{"type": "synced"}], close_code=1000)
        await test_broker.publish(frame, subjects.gateway_subject(hub.gateway_id, "c1"))
        stray = WorkerFrame(connection_id="gone", bodies=[{"type": "synced"}])
        await test_broker.publish(stray, subjects.gateway_subject(hub.gateway_id, "gone"))
        assert connection.outbox.get_nowait() == frame
        assert connection.outbox.empty()

        sent = ClientFrame(connection_id="c1", reply_subject="r", body={"type": "update"})
        await hub.publisher.to_worker("media-1", sent)
        assert seen == [sent]


TURN = {
    "turn_urls": "turn:turn.example.com:3478?transport=udp, turns:turn.example.com:5349",
    "turn_secret": SecretStr("coturn shared secret"),
    "turn_credential_ttl_seconds": 600,
}


@pytest.mark.parametrize("signaling", [TURN], indirect=True)
async def test_iced_hands_each_client_a_short_lived_turn_credential(
    signaling: tuple[FakeGateway, AnsweringWorker, ApiKey],
) -> None:
    gateway, _, key = signaling
    async with WebSocketClient(gateway.app, "/signaling") as socket:
        await socket.send_json({"type": "hello", "timeout": 1000})
        await socket.receive_json()
        before = int(time.time())
        await socket.send_json({"type": "msg", "body": {"type": "ice", "token": token(key)}})
        (turn,) = (await socket.receive_json())["body"]["ice_servers"]
    assert turn["urls"] == [
        "turn:turn.example.com:3478?transport=udp",
        "turns:turn.example.com:5349",
    ]
    expiry, _, user = turn["username"].partition(":")
    assert user == gateway.account.sid
    assert before + 600 <= int(expiry) <= int(time.time()) + 600
    # What coturn (use-auth-secret) computes from the shared secret alone.
    expected = hmac.new(b"coturn shared secret", turn["username"].encode(), hashlib.sha1).digest()
    assert turn["credential"] == base64.b64encode(expected).decode()
