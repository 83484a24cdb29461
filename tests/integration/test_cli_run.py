"""The `atrium` command: `atrium run` as a real supervisor process, and the admin commands.

`atrium run` is started the way `make run` starts it, minus the terminal: stdin closed, output to
a file. The tests wait on what it prints, with deadlines, and check after it stops that nothing it
started (nats-server, valkey-server, the services) is left running.
"""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
import time
from pathlib import Path

import pytest
from faststream.nats import NatsBroker

from atrium_cli.embedded import free_port
from atrium_cli.main import main as atrium_main
from atrium_cli.supervisor import SERVICE_MODULES
from atrium_shared import sids, subjects
from atrium_shared.accounts import AccountStore
from atrium_shared.callbacks import DeliveryList, DeliveryQuery, DeliveryRecord
from atrium_shared.rpc import RpcReply
from atrium_shared.timefmt import utcnow
from atrium_shared.workers import WORKERS_KEY
from tests.support.atrium_run import (
    REAL_STACK_READY_SECONDS,
    STAND_IN_READY_SECONDS,
    STOP_SECONDS,
    AtriumRun,
    Banner,
    assert_stops_cleanly,
    child_pid,
    http_get,
    kill_child,
    process_tree,
    redis_client,
    run_env,
    serves_rest,
    start_run,
    wait_until_gone,
)
from tests.support.stack import Servers
from tests.support.waiting import eventually, eventually_sync

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table"),
]


# The real stack ----------------------------------------------------------------------------------
def test_run_starts_embedded_stack_serves_rest_and_stops_cleanly(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    http_port = free_port()
    run = start_run(
        atrium_runs, tmp_path, run_env(ATRIUM_HTTP_PORT=str(http_port), ATRIUM_MEDIA_WORKERS="2")
    )
    banner = run.wait_for_banner(REAL_STACK_READY_SECONDS)

    assert banner.base_url == f"http://127.0.0.1:{http_port}/v1"
    assert f'client.video.base_url = "http://127.0.0.1:{http_port}"' in run.output()
    commands = " ".join(run.started.values())
    for expected in (
        "nats-server",
        "valkey-server",
        "atrium_gateway.app",
        "atrium_room.app",
        "atrium_participant.app",
        "atrium_track.app",
        "atrium_callback.app",
    ):
        assert expected in commands, f"{expected} not among {run.started}"
    # ATRIUM_MEDIA_WORKERS=2: two media workers, each registered in Redis with its load.
    assert sum("atrium_media.app" in c for c in run.started.values()) == 2
    registry = redis_client(banner.redis_url)

    def registered() -> list[str]:
        workers: list[str] = registry.zrange(WORKERS_KEY, 0, -1)
        return workers if len(workers) >= 2 else []

    assert len(eventually_sync(registered, message="both workers in the registry")) == 2
    run_env_file = tmp_path / ".atrium" / "run.env"
    assert f"NATS_URL={banner.nats_url}" in run_env_file.read_text()
    assert f"REDIS_URL={banner.redis_url}" in run_env_file.read_text()

    assert http_get(f"http://127.0.0.1:{http_port}/healthz") == 200
    rooms = f"{banner.base_url}/Rooms"
    assert http_get(rooms, (banner.account_sid, banner.auth_token)) == 200
    assert http_get(rooms, (banner.api_key_sid, banner.api_key_secret)) == 200
    assert http_get(rooms, (banner.account_sid, "wrong")) == 401

    assert_stops_cleanly(run)


def test_run_provisions_the_credentials_given_in_the_environment(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    http_port = free_port()
    given = {
        "ATRIUM_ACCOUNT_SID": sids.new_sid(sids.ACCOUNT),
        "ATRIUM_AUTH_TOKEN": "a" * 32,
        "ATRIUM_API_KEY_SID": sids.new_sid(sids.API_KEY),
        "ATRIUM_API_KEY_SECRET": "b" * 32,
    }
    run = start_run(atrium_runs, tmp_path, run_env(ATRIUM_HTTP_PORT=str(http_port), **given))
    banner = run.wait_for_banner(REAL_STACK_READY_SECONDS)

    assert (banner.account_sid, banner.auth_token) == (
        given["ATRIUM_ACCOUNT_SID"],
        given["ATRIUM_AUTH_TOKEN"],
    )
    assert (banner.api_key_sid, banner.api_key_secret) == (
        given["ATRIUM_API_KEY_SID"],
        given["ATRIUM_API_KEY_SECRET"],
    )
    rooms = f"{banner.base_url}/Rooms"
    assert http_get(rooms, (given["ATRIUM_ACCOUNT_SID"], given["ATRIUM_AUTH_TOKEN"])) == 200
    assert http_get(rooms, (given["ATRIUM_API_KEY_SID"], given["ATRIUM_API_KEY_SECRET"])) == 200

    assert_stops_cleanly(run)


# Embedded servers under supervision --------------------------------------------------------------


async def relay_candidates(
    host: str, port: int, transport: str, username: str, password: str
) -> list[str]:
    """The relay addresses a TURN allocation with these credentials gets (none if refused)."""
    import aioice

    connection = aioice.Connection(
        ice_controlling=True,
        components=1,
        use_ipv6=False,
        turn_server=(host, port),
        turn_username=username,
        turn_password=password,
        turn_transport=transport,
    )
    try:
        await asyncio.wait_for(connection.gather_candidates(), 15)
        return [c.host for c in connection.local_candidates if c.type == "relay"]
    finally:
        await connection.close()


async def iced_turn_server(banner: Banner, identity: str) -> dict[str, object]:
    """The TURN entry of the gateway's ``iced`` answer for a token of the banner's API key."""
    import websockets

    from tests.support.tenants import mint_token

    token = mint_token(
        identity,
        account_sid=banner.account_sid,
        api_key_sid=banner.api_key_sid,
        api_key_secret=banner.api_key_secret,
    )
    signaling = banner.base_url.removesuffix("/v1").replace("http://", "ws://") + "/signaling"
    async with websockets.connect(signaling) as socket:
        hello = {"type": "hello", "version": 2, "timeout": 60_000}
        await socket.send(json.dumps({**hello, "body": {"type": "ice", "token": token}}))
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame.get("type") == "msg":
                break
    body = frame["body"]
    assert body["type"] == "iced", body
    [turn] = [server for server in body["ice_servers"] if "username" in server]
    return dict(turn)


def test_run_starts_coturn_whose_credentials_from_iced_allocate(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    """ATRIUM_TURN_EMBEDDED=true: coturn beside the stack, its secret generated, kept private and
    handed to the gateway, which answers `iced` with per-client credentials it accepts."""
    http_port = free_port()
    run = start_run(
        atrium_runs,
        tmp_path,
        run_env(ATRIUM_HTTP_PORT=str(http_port), ATRIUM_TURN_EMBEDDED="true"),
    )
    banner = run.wait_for_banner(REAL_STACK_READY_SECONDS)
    [listed] = run.wait_for(r"^\s*TURN:\s+(turn:127\.0\.0\.1:(\d+))\s", 1)
    turn_url, turn_port = listed.group(1), int(listed.group(2))
    assert "turnserver" in " ".join(run.started.values())

    secret_file = tmp_path / ".atrium" / "turn.secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    config = tmp_path / ".atrium" / "data" / "turn" / "turnserver.conf"
    assert config.stat().st_mode & 0o777 == 0o600
    secret = secret_file.read_text().strip()
    assert len(secret) >= 32
    # Neither on a command line (world-readable in /proc) nor in the output.
    assert not any(secret in cmdline for cmdline in run.started.values())
    assert secret not in run.output()

    turn = asyncio.run(iced_turn_server(banner, "alice"))
    assert turn["urls"] == [f"{turn_url}?transport=udp", f"{turn_url}?transport=tcp"]
    username, credential = str(turn["username"]), str(turn["credential"])
    assert username.endswith(f":{banner.account_sid}")
    for transport in ("udp", "tcp"):
        relays = asyncio.run(
            relay_candidates("127.0.0.1", turn_port, transport, username, credential)
        )
        assert relays == ["127.0.0.1"], transport
    # coturn checks the secret: a credential derived from another one gets no allocation.
    from atrium_shared.turn import ephemeral_credential

    forged = ephemeral_credential("not the secret", banner.account_sid, time.time(), 600)
    assert asyncio.run(relay_candidates("127.0.0.1", turn_port, "udp", *forged)) == []

    assert_stops_cleanly(run)


async def test_run_restarts_killed_embedded_servers_and_the_stack_recovers(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    """kill -9 of the embedded NATS, valkey and coturn: the supervisor says so, starts each again
    on its port with its data, and the services carry on: REST serves, the room created before is
    still there, JetStream kept its events, status callbacks flow through the restarted NATS."""
    import nats as nats_client
    from twilio.rest import Client

    from tests.support.webhook import Webhook

    http_port = free_port()
    run = start_run(
        atrium_runs,
        tmp_path,
        run_env(ATRIUM_HTTP_PORT=str(http_port), ATRIUM_TURN_EMBEDDED="true"),
    )
    banner = await asyncio.to_thread(run.wait_for_banner, REAL_STACK_READY_SECONDS)
    webhook = Webhook(banner.auth_token)
    await webhook.start()
    try:
        client = Client(banner.account_sid, banner.auth_token)
        client.video.base_url = banner.base_url.removesuffix("/v1")

        def create_room(name: str) -> str:
            room = client.video.v1.rooms.create(
                unique_name=name, status_callback=webhook.url("/hooks")
            )
            return str(room.sid)

        async def callbacks(room_sid: str, *events: str) -> None:
            def arrived() -> bool:
                seen = [r.params.get("StatusCallbackEvent") for r in webhook.for_room(room_sid)]
                return all(event in seen for event in events)

            await eventually(arrived, timeout=60, message=f"{events} for {room_sid}")

        before = await asyncio.to_thread(create_room, "before-the-kills")
        await callbacks(before, "room-created")

        async def events_in_stream() -> tuple[int, int]:
            connection = await nats_client.connect(banner.nats_url, max_reconnect_attempts=0)
            try:
                state = (await connection.jetstream().stream_info("ATRIUM_EVENTS")).state
                return state.messages, state.last_seq
            finally:
                await connection.close()

        kept, last_before = await events_in_stream()
        assert kept >= 1

        for program, child, count in (
            ("nats-server", "nats", 1),
            ("valkey-server", "redis", 1),
            ("turnserver", "turn", 1),
        ):
            old_pid = kill_child(run, program)
            await asyncio.to_thread(
                run.wait_for,
                rf"{child} exited unexpectedly with code -9 after [\d.]+s; restarting in 1s",
                30,
                count,
            )
            await asyncio.to_thread(run.wait_for, rf"{child} is ready again \(restart 1\)", 60)
            assert child_pid(run, program) != old_pid
            await eventually(
                lambda: asyncio.to_thread(serves_rest, banner),
                timeout=60,
                message=f"REST serving after {child} came back",
            )

        # Same ports (the banner's URLs still work), same data.
        messages, last_seq = await events_in_stream()
        assert messages >= kept and last_seq >= last_before
        fetched = await asyncio.to_thread(lambda: client.video.v1.rooms(before).fetch())
        assert fetched.unique_name == "before-the-kills"
        # Events still go from the outbox through JetStream to the callback service.
        after = await asyncio.to_thread(create_room, "after-the-kills")
        await asyncio.to_thread(lambda: client.video.v1.rooms(before).update(status="completed"))
        await callbacks(after, "room-created")
        await callbacks(before, "room-ended")
        assert (await events_in_stream())[1] > last_seq
        # The restarted coturn took the same secret: a fresh credential allocates.
        turn = await iced_turn_server(banner, "bob")
        [port] = {int(str(url).rsplit(":", 1)[1].split("?")[0]) for url in turn["urls"]}  # type: ignore[attr-defined]
        relays = await relay_candidates(
            "127.0.0.1", port, "udp", str(turn["username"]), str(turn["credential"])
        )
        assert relays == ["127.0.0.1"]
    finally:
        await webhook.stop()
    run.started.update(process_tree(run.process.pid))  # the restarted servers too
    await asyncio.to_thread(assert_stops_cleanly, run)


# The supervisor, with stand-in services (fast, and independent of the services' code) -----------
STAND_IN = textwrap.dedent(
    """
    import http.server, os, signal, sys

    name = sys.argv[1]
    port = int(os.environ["ATRIUM_HEALTH_PORT"])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/crash":
                os._exit(3)
            self.send_response(200 if self.path in ("/readyz", "/livez") else 404)
            self.send_header("X-Atrium-Pid", str(os.getpid()))
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if os.environ.get("STAND_IN_IGNORES_SIGTERM") == name:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"stand-in {name} ready on {port}", flush=True)
    server.serve_forever()
    """
)


def stand_in_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    commands = {name: [sys.executable, str(script), name] for name in SERVICE_MODULES}
    return run_env(
        ATRIUM_HTTP_PORT=str(free_port()),
        ATRIUM_RUN_COMMANDS=json.dumps(commands),
        **extra,
    )


def test_supervisor_restarts_a_crashed_service_and_kills_one_ignoring_sigterm(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    env = stand_in_env(tmp_path, ATRIUM_RUN_GRACE_SECONDS="1", STAND_IN_IGNORES_SIGTERM="callback")
    run = start_run(atrium_runs, tmp_path, env)
    run.wait_for_banner(STAND_IN_READY_SECONDS)
    [ready] = run.wait_for(r"^room +\| stand-in room ready on (\d+)$", 5)
    assert "\x1b[" not in run.output(), "colored output without a terminal"

    with pytest.raises(OSError):  # the stand-in exits mid-request
        http_get(f"http://127.0.0.1:{ready.group(1)}/crash")
    run.wait_for(r"room exited unexpectedly with code 3 .*restarting in 1s", 10)
    run.wait_for(r"^room +\| stand-in room ready on", 15, count=2)
    run.started.update(process_tree(run.process.pid))  # the restarted room too

    assert_stops_cleanly(run)
    assert "callback still running after 1s: killing it" in run.output()


def test_run_reuses_ports_and_dev_account_across_restarts(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    env = stand_in_env(tmp_path)
    first = start_run(atrium_runs, tmp_path, env)
    first_banner = first.wait_for_banner(STAND_IN_READY_SECONDS)
    assert "Credentials (new dev account)" in first.output()
    assert_stops_cleanly(first)

    second = start_run(atrium_runs, tmp_path, env)
    second_banner = second.wait_for_banner(STAND_IN_READY_SECONDS)
    assert "Credentials (existing dev account)" in second.output()
    assert second_banner == first_banner
    assert_stops_cleanly(second)


def test_run_refuses_a_second_supervisor_in_the_same_directory(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    env = stand_in_env(tmp_path)
    first = start_run(atrium_runs, tmp_path, env)
    first.wait_for_banner(STAND_IN_READY_SECONDS)
    second = start_run(atrium_runs, tmp_path, stand_in_env(tmp_path))
    assert second.process.wait(STOP_SECONDS) == 1
    assert "another `atrium run`" in second.output()
    assert_stops_cleanly(first)


def test_run_stops_everything_when_a_service_fails_before_ready(
    tmp_path: Path, atrium_runs: list[AtriumRun]
) -> None:
    env = stand_in_env(tmp_path)
    commands = json.loads(env["ATRIUM_RUN_COMMANDS"])
    commands["room"] = [sys.executable, "-c", "print('room cannot start'); raise SystemExit(3)"]
    env["ATRIUM_RUN_COMMANDS"] = json.dumps(commands)
    run = start_run(atrium_runs, tmp_path, env)
    run.wait_for(r"^room +\| room cannot start$", STAND_IN_READY_SECONDS)
    run.started = process_tree(run.process.pid)
    assert run.process.wait(STOP_SECONDS) == 1
    assert "room exited with code 3 before it became ready" in run.output()
    assert not wait_until_gone(run.started, timeout=10)


# Admin commands against a real Redis / NATS ----------------------------------------------------
def _fields(text: str) -> dict[str, str]:
    return dict(
        (label.strip(), value.strip())
        for label, _, value in (line.partition(":") for line in text.splitlines())
        if value
    )


def test_accounts_and_keys_commands(
    servers: Servers,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redis_option = ["--redis-url", servers.redis.url]

    assert atrium_main(["accounts", "create", "--name", "Acme", *redis_option]) == 0
    created = _fields(capsys.readouterr().out)
    account_sid, auth_token = created["Account SID"], created["Auth Token"]
    assert sids.is_sid(account_sid, sids.ACCOUNT) and len(auth_token) == 32

    assert atrium_main(["accounts", "list", *redis_option]) == 0
    listing = capsys.readouterr().out
    assert account_sid in listing and "Acme" in listing and "active" in listing
    assert auth_token not in listing

    assert (
        atrium_main(["keys", "create", "--account", account_sid, "--name", "ci", *redis_option])
        == 0
    )
    key = _fields(capsys.readouterr().out)
    key_sid, secret = key["API Key SID"], key["Secret"]
    assert sids.is_sid(key_sid, sids.API_KEY) and key["Account SID"] == account_sid

    assert atrium_main(["keys", "list", "--account", account_sid, *redis_option]) == 0
    listing = capsys.readouterr().out
    assert key_sid in listing and "active" in listing and secret not in listing

    async def authenticates(username: str, password: str) -> bool:
        from redis.asyncio import Redis

        client = Redis.from_url(servers.redis.url, decode_responses=True)
        try:
            return await AccountStore(client).authenticate(username, password) is not None
        finally:
            await client.aclose()

    assert asyncio.run(authenticates(key_sid, secret))
    assert atrium_main(["keys", "revoke", key_sid, *redis_option]) == 0
    assert atrium_main(["keys", "list", "--account", account_sid, *redis_option]) == 0
    assert "revoked" in capsys.readouterr().out
    assert not asyncio.run(authenticates(key_sid, secret))

    # Found through .atrium/run.env of a parent directory, as after `make run`.
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("ATRIUM_REDIS_URL", raising=False)
    (tmp_path / ".atrium").mkdir()
    (tmp_path / ".atrium" / "run.env").write_text(f"REDIS_URL={servers.redis.url}\n")
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert asyncio.run(authenticates(account_sid, auth_token))
    assert atrium_main(["accounts", "close", account_sid]) == 0
    assert atrium_main(["accounts", "list"]) == 0
    assert "closed" in capsys.readouterr().out
    assert not asyncio.run(authenticates(account_sid, auth_token))

    # Failures: a clear message on stderr and a non-zero exit code.
    assert atrium_main(["keys", "create", "--account", sids.new_sid(sids.ACCOUNT)]) == 1
    assert "no account" in capsys.readouterr().err
    assert atrium_main(["keys", "revoke", sids.new_sid(sids.API_KEY)]) == 1
    assert "no API key" in capsys.readouterr().err
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    assert atrium_main(["accounts", "list", "--redis-url", nobody]) == 1
    error = capsys.readouterr().err
    assert f"cannot reach Redis at {nobody}" in error and "make run" in error


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "atrium_cli.main",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=run_env(),
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_callbacks_commands_query_the_callback_service(servers: Servers) -> None:
    nats_option = ["--nats-url", servers.nats.url]
    code, _, err = await run_cli("callbacks", "deliveries", *nats_option)
    assert code == 1 and "callback service does not answer" in err

    room_sid = sids.new_sid(sids.ROOM)
    record = DeliveryRecord(
        event_id="ev-1",
        account_sid=sids.new_sid(sids.ACCOUNT),
        room_sid=room_sid,
        event_type="room-ended",
        sequence_number=7,
        url="https://example.test/hook",
        method="POST",
        outcome="dead-letter",
        attempts=6,
        last_status=500,
        last_error="HTTP 500",
        first_attempt_at=utcnow(),
        finished_at=utcnow(),
    )
    queries: list[DeliveryQuery] = []
    broker = NatsBroker(servers.nats.url)

    @broker.subscriber(subjects.CALLBACK_DELIVERIES)
    async def answer(query: DeliveryQuery) -> RpcReply:
        queries.append(query)
        return RpcReply(result=DeliveryList(records=[record]).model_dump(mode="json"))

    await broker.start()
    try:
        code, out, err = await run_cli(
            "callbacks", "dead-letters", "--room", room_sid, "--limit", "5", *nats_option
        )
    finally:
        await broker.stop()
    assert code == 0, err
    assert queries == [DeliveryQuery(kind="dead-letters", room_sid=room_sid, limit=5)]
    assert room_sid in out and "room-ended" in out and "dead-letter" in out and "HTTP 500" in out

    code, _, err = await run_cli(
        "callbacks", "deliveries", "--nats-url", f"nats://127.0.0.1:{free_port()}"
    )
    assert code == 1 and "cannot reach NATS" in err
