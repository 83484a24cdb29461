"""An SDK participant in a process of its own, for tests that must run a client where the test
process is not: inside a network namespace (``ip netns exec <ns> python -m tests.support.sdk_peer``)
or with ICE host addresses of its own (aioice's host-address hook is process-wide).

It joins ``--room`` as the identity of the Access Token in ``ATRIUM_PEER_TOKEN`` (a secret: never
on the command line, which ``ps`` shows), publishes a moving test pattern, waits for the video
of ``--expect`` and reads ``--frames`` decoded frames of it, then reports on stdout, one JSON object
a line:

* ``{"event": "connected", "participant_sid": .., "ice_servers": [urls..]}``
* ``{"event": "received", "frames": n, "distinct": d, "width": w, "height": h}``
* ``{"event": "ice", "local": {..}, "remote": {..}, "checks": [..]}``: the nominated candidate
  pair (type, address, port, protocol of each side) of the peer connection's one (bundled) ICE
  transport, and every pair of its check list with its state (``SUCCEEDED``, ``FAILED``...);
* ``{"event": "traffic", "transport": {..}, "video_packets_sent": n, "video_packets_received":
  m}``: aiortc's totals for the ICE/DTLS transport (packets and bytes each way, STUN excluded)
  and the video RTP packets sent and received, at the time of the report;
* ``{"event": "probe", "targets": [[host, port], ..], "answered": [..], "errors": [..]}``: a STUN
  Binding request sent from a fresh UDP socket straight to each host candidate the media worker
  offered, and which of them answered within ``--probe-seconds`` (any STUN response counts: it
  shows the worker's ICE port is reachable over UDP; aioice answers an unauthenticated request
  with 400);

and then keeps publishing until stdin says ``leave`` (or closes), disconnects and reports
``{"event": "left"}``. Any failure is ``{"event": "error", "message": ..}`` and exit status 1.
``--ice-servers acquire`` (the SDK's default: the gateway's ``iced``) or ``none`` (an empty list:
host candidates only); ``--turn-transport tcp`` is ``connect(turn_transport="tcp")``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import aioice.stun
from av import VideoFrame

from atrium_video import RemoteVideoTrack, Room, connect, create_local_video_track


def report(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def nominated_pair(room: Room) -> dict[str, Any]:
    """The nominated pair of the room's bundled ICE transport (aioice's own objects: aiortc's
    getStats has no candidate-pair entries)."""
    transports = [t.sender.transport for t in room.peer_connection.getTransceivers()]
    ice = transports[0].transport
    connection = ice._connection
    pairs = list(connection._nominated.values())
    if not pairs:
        raise RuntimeError("no nominated candidate pair")
    pair = pairs[0]

    def side(candidate: Any) -> dict[str, Any]:
        return {
            "type": candidate.type,
            "host": candidate.host,
            "port": candidate.port,
            "transport": candidate.transport,
            "related": [candidate.related_address, candidate.related_port],
        }

    checks = [
        {
            "local": check.local_candidate.type,
            "remote": check.remote_candidate.type,
            "state": check.state.name,
        }
        for check in connection._check_list
    ]
    return {
        "local": side(pair.local_candidate),
        "remote": side(pair.remote_candidate),
        "checks": checks,
    }


def worker_host_candidates(room: Room) -> list[tuple[str, int]]:
    description = room.peer_connection.remoteDescription
    assert description is not None
    found: list[tuple[str, int]] = []
    for line in description.sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ <t>
            if fields[2].lower() == "udp" and fields[7] == "host":
                target = (fields[4], int(fields[5]))
                if target not in found:
                    found.append(target)
    return found


class _Probe(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.answered: set[tuple[str, int]] = set()
        self.errors: list[str] = []

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            aioice.stun.parse_message(data)
        except ValueError:
            return
        self.answered.add((str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(f"{type(exc).__name__}: {exc}")


async def probe_udp(targets: list[tuple[str, int]], seconds: float) -> dict[str, Any]:
    """A STUN Binding request to each target; which answered within ``seconds``."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(_Probe, local_addr=("0.0.0.0", 0))
    try:
        deadline = time.monotonic() + seconds
        attempt = 0
        while time.monotonic() < deadline and len(protocol.answered) < len(targets):
            for target in targets:
                request = aioice.stun.Message(
                    message_method=aioice.stun.Method.BINDING,
                    message_class=aioice.stun.Class.REQUEST,
                )
                try:
                    transport.sendto(bytes(request), target)
                except OSError as exc:
                    protocol.errors.append(f"{type(exc).__name__}: {exc}")
            attempt += 1
            await asyncio.sleep(min(0.2 * attempt, max(0.0, deadline - time.monotonic())))
    finally:
        transport.close()
    return {
        "targets": [list(t) for t in targets],
        "answered": sorted([list(a) for a in protocol.answered]),
        "errors": sorted(set(protocol.errors)),
    }


async def traffic(room: Room) -> dict[str, Any]:
    stats = list((await room.peer_connection.getStats()).values())
    (transport,) = {s.id: s for s in stats if s.type == "transport"}.values()
    return {
        "transport": {
            name: getattr(transport, name)
            for name in ("packetsSent", "packetsReceived", "bytesSent", "bytesReceived")
        },
        "video_packets_sent": sum(
            s.packetsSent for s in stats if s.type == "outbound-rtp" and s.kind == "video"
        ),
        "video_packets_received": sum(
            s.packetsReceived for s in stats if s.type == "inbound-rtp" and s.kind == "video"
        ),
    }


async def read_frames(track: RemoteVideoTrack, frames: int, timeout: float) -> dict[str, Any]:
    seen: set[bytes] = set()
    width = height = 0
    deadline = time.monotonic() + timeout
    for _ in range(frames):
        frame = await asyncio.wait_for(track.recv(), max(0.1, deadline - time.monotonic()))
        assert isinstance(frame, VideoFrame)
        width, height = frame.width, frame.height
        seen.add(bytes(frame.planes[0])[::97])
    return {"frames": frames, "distinct": len(seen), "width": width, "height": height}


async def remote_video(room: Room, identity: str, timeout: float) -> RemoteVideoTrack:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        other = room.get_participant(identity)
        if other is not None:
            for publication in other.tracks.values():
                track = publication.track
                if publication.kind == "video" and isinstance(track, RemoteVideoTrack):
                    return track
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no video from {identity} within {timeout} s")


async def wait_for_leave() -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "leave":
            return


async def run(arguments: argparse.Namespace) -> None:
    token = os.environ["ATRIUM_PEER_TOKEN"]
    ice_servers: list[Any] | None = None if arguments.ice_servers == "acquire" else []
    room = await connect(
        token,
        url=arguments.url,
        name=arguments.room,
        tracks=[create_local_video_track(name="camera")],
        ice_servers=ice_servers,
        turn_transport=arguments.turn_transport,
        timeout=arguments.timeout,
    )
    async with room:
        report(
            "connected",
            participant_sid=room.local_participant.sid,
            ice_servers=[u for s in room.ice_servers for u in s.urls],
        )
        track = await remote_video(room, arguments.expect, arguments.timeout)
        report("received", **await read_frames(track, arguments.frames, arguments.timeout))
        report("ice", **nominated_pair(room))
        report("traffic", **await traffic(room))
        report("probe", **await probe_udp(worker_host_candidates(room), arguments.probe_seconds))
        await asyncio.wait_for(wait_for_leave(), arguments.timeout * 4)
    report("left")


# The test's side ---------------------------------------------------------------------------------
class PeerProcess:
    """A running peer: its reports, read with deadlines, and its stderr log for failures."""

    def __init__(self, process: asyncio.subprocess.Process, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.reports: list[dict[str, Any]] = []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    async def next_report(self, event: str, timeout: float) -> dict[str, Any]:
        """The next report of ``event``; an AssertionError on ``error``, exit or the deadline."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {event!r} report within {timeout} s: {self.log()}")
            try:
                line = await asyncio.wait_for(stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                await self.process.wait()
                raise AssertionError(
                    f"peer exited ({self.process.returncode}) before {event!r}: {self.log()}"
                )
            found = json.loads(line)
            self.reports.append(found)
            if found["event"] == "error":
                raise AssertionError(f"peer failed: {found['message']}\n{self.log()}")
            if found["event"] == event:
                return dict(found)

    async def leave(self, timeout: float = 15.0) -> None:
        """Ask it to disconnect and wait for it to exit cleanly."""
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(b"leave\n")
        await stdin.drain()
        await self.next_report("left", timeout)
        assert await asyncio.wait_for(self.process.wait(), timeout) == 0, self.log()


@contextlib.asynccontextmanager
async def running_peer(
    token: str,
    *,
    url: str,
    room: str,
    expect: str,
    log_path: Path,
    ice_servers: str = "acquire",
    turn_transport: str | None = None,
    frames: int = 30,
    timeout: float = 30.0,
    prefix: Sequence[str] = (),
) -> AsyncIterator[PeerProcess]:
    """This module as a subprocess (``prefix``: e.g. ``ip netns exec <ns>``); killed on leaving
    the block if it is still running."""
    command = [
        *prefix,
        sys.executable,
        "-m",
        "tests.support.sdk_peer",
        f"--url={url}",
        f"--room={room}",
        f"--expect={expect}",
        f"--frames={frames}",
        f"--ice-servers={ice_servers}",
        f"--timeout={timeout}",
        *([f"--turn-transport={turn_transport}"] if turn_transport else []),
    ]
    env = dict(os.environ, ATRIUM_PEER_TOKEN=token)
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
        )
    try:
        yield PeerProcess(process, log_path)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--room", required=True)
    parser.add_argument("--expect", required=True, help="identity whose video to receive")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--ice-servers", choices=("acquire", "none"), default="acquire")
    parser.add_argument("--turn-transport", choices=("udp", "tcp"), default=None)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--probe-seconds", type=float, default=2.0)
    arguments = parser.parse_args()
    try:
        asyncio.run(run(arguments))
    except Exception as exc:  # the test reads why, with the type
        report("error", message=f"{type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
