"""`atrium recordings list|get|download` on the fake recording service (no NATS, no Redis): which
accounts are looked in, paging, where a download comes from and where it goes."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console
from rich.progress import Progress

from atrium_cli import recordings as cli
from atrium_cli.connection import CliError
from atrium_cli.main import build_parser
from atrium_shared.models import ParticipantInfo, TrackInfo
from atrium_shared.recording_api import (
    RecordingInfo,
    RecordingMediaLocation,
    RecordingMediaRequest,
    StorageTarget,
)
from tests.support.fakes.gateway import FakeParticipants, FakeRecordings, FakeRooms, FakeTracks

ACME, GLOBEX = "AC" + "1" * 32, "AC" + "2" * 32


class Stack:
    """Two accounts, each with a room where alice publishes a recorded mic and camera."""

    def __init__(self) -> None:
        self.rooms, self.participants, self.tracks = FakeRooms(), FakeParticipants(), FakeTracks()
        self.service = FakeRecordings(self.rooms)
        self.by_account: dict[str, list[RecordingInfo]] = {}
        for account in (ACME, GLOBEX):
            room = self.rooms.add(account, "standup")
            alice: ParticipantInfo = self.participants.add(room, "alice")
            mic: TrackInfo = self.tracks.publish(alice, "mic")
            cam: TrackInfo = self.tracks.publish(alice, "cam", "video")
            self.by_account[account] = [self.service.add(mic), self.service.add(cam)]


@pytest.fixture
def stack() -> Stack:
    return Stack()


def quiet_progress() -> Progress:
    return Progress(console=Console(file=io.StringIO()))


# Finding --------------------------------------------------------------------------------------
async def test_list_merges_the_accounts_newest_first(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "PAGE_SIZE", 1)  # every page followed by its cursor
    acme, globex = stack.by_account[ACME], stack.by_account[GLOBEX]
    found = await cli.collect(stack.service, [ACME, GLOBEX])
    assert [r.sid for r in found] == [globex[1].sid, globex[0].sid, acme[1].sid, acme[0].sid]
    assert len(stack.service.requests) == 4  # two pages of one per account
    newest = await cli.collect(stack.service, [ACME, GLOBEX], limit=1)
    assert [r.sid for r in newest] == [globex[1].sid]

    room = acme[0].room_sid
    in_room = await cli.collect(stack.service, [ACME, GLOBEX], room=room)
    assert {r.sid for r in in_room} == {acme[0].sid, acme[1].sid}
    stack.service.recordings[acme[0].sid] = acme[0].model_copy(update={"status": "failed"})
    failed = await cli.collect(stack.service, [ACME, GLOBEX], status="failed")
    assert [r.sid for r in failed] == [acme[0].sid]


async def test_get_finds_a_recording_in_whichever_account_has_it(stack: Stack) -> None:
    theirs = stack.by_account[GLOBEX][0]
    found = await cli.find(stack.service, [ACME, GLOBEX], theirs.sid)
    assert found == theirs
    with pytest.raises(CliError, match="no recording"):
        await cli.find(stack.service, [ACME], theirs.sid)
    with pytest.raises(CliError, match="not a Recording SID"):
        await cli.find(stack.service, [ACME], "MT" + "0" * 32)


def test_what_get_and_list_show(stack: Stack) -> None:
    recording = stack.by_account[ACME][0].model_copy(
        update={"status_callback": "https://user:pw@hooks.example.com/rec"}
    )
    fields = dict(cli.recording_fields(recording))
    assert fields["Recording SID"] == recording.sid
    assert fields["Size"] == "4.0 KiB" and fields["Duration"] == "7 s"
    assert fields["Storage"] == "local folder"
    assert fields["StatusCallback"] == "POST https://***@hooks.example.com/rec"
    out = io.StringIO()
    Console(file=out, width=300).print(cli.recordings_table(stack.by_account[ACME]))
    assert recording.sid in out.getvalue() and "OPUS" in out.getvalue()


# Downloading ----------------------------------------------------------------------------------
def write_media(folder: Path, recording: RecordingInfo, content: bytes) -> None:
    path = folder / recording.media_key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)


async def test_download_copies_local_files_with_progress(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, out = tmp_path / "recordings", tmp_path / "out"
    out.mkdir()
    mic, cam = stack.by_account[GLOBEX]
    write_media(folder, mic, b"a" * 3_000_000)
    write_media(folder, cam, b"v" * 10)
    monkeypatch.chdir(tmp_path)
    progress = quiet_progress()

    written = await cli.download(
        stack.service, [ACME, GLOBEX], [mic.sid, cam.sid], str(out), folder, progress
    )
    assert written == [out / f"{mic.sid}.mka", out / f"{cam.sid}.mkv"]
    assert written[0].read_bytes() == b"a" * 3_000_000 and written[1].read_bytes() == b"v" * 10
    assert [(t.total, t.completed) for t in progress.tasks] == [
        (3_000_000, 3_000_000),
        (10, 10),
    ]
    assert stack.service.requests[-1] == RecordingMediaRequest(
        account_sid=GLOBEX, recording_sid=cam.sid
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)  # no .part

    # One recording: -o names the file; without -o it lands here, under its SID.
    (named,) = await cli.download(
        stack.service, [GLOBEX], [cam.sid], "cam.mkv", folder, quiet_progress()
    )
    assert named == Path("cam.mkv") and named.read_bytes() == b"v" * 10
    (default,) = await cli.download(
        stack.service, [GLOBEX], [cam.sid], None, folder, quiet_progress()
    )
    assert default == Path(f"{cam.sid}.mkv") and default.exists()
    with pytest.raises(CliError, match="existing folder"):
        await cli.download(
            stack.service, [GLOBEX], [mic.sid, cam.sid], "x.mka", folder, quiet_progress()
        )


async def test_download_refusals(stack: Stack, tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    folder.mkdir()
    mic, cam = stack.by_account[ACME]
    target = tmp_path / "out.mka"
    with pytest.raises(CliError, match="is not there"):
        await cli.download(stack.service, [ACME], [mic.sid], str(target), folder, quiet_progress())
    assert not target.exists() and not list(tmp_path.glob(".*part"))

    stack.service.recordings[mic.sid] = mic.model_copy(update={"status": "processing"})
    with pytest.raises(CliError, match="is processing: it has no media"):
        await cli.download(stack.service, [ACME], [mic.sid], str(target), folder, quiet_progress())

    (tmp_path / "secret.mkv").write_bytes(b"not a recording")
    stack.service.recordings[cam.sid] = cam.model_copy(update={"media_key": "../secret.mkv"})
    with pytest.raises(CliError, match="out of the recordings folder"):
        await cli.download(stack.service, [ACME], [cam.sid], str(target), folder, quiet_progress())


@contextlib.contextmanager
def serving_bytes(content: bytes) -> Iterator[str]:
    """An HTTP server on loopback answering every GET with ``content``: a presigned URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/bucket/key?X-Amz-Signature=x"
    finally:
        server.shutdown()
        server.server_close()


class PresignedRecordings(FakeRecordings):
    """The recording service with its S3 recordings presigned at ``url``."""

    url = ""

    async def media(self, request: RecordingMediaRequest) -> RecordingMediaLocation:
        location = await super().media(request)
        return location.model_copy(update={"url": self.url}) if location.url else location


async def test_download_streams_a_presigned_url(tmp_path: Path) -> None:
    stack = Stack()
    service = PresignedRecordings(stack.rooms)
    mic = stack.by_account[ACME][0]
    service.recordings[mic.sid] = mic.model_copy(
        update={"storage": StorageTarget(kind="s3", bucket="bucket")}
    )
    progress = quiet_progress()
    with serving_bytes(b"m" * 2_500_000) as url:
        service.url = url
        (written,) = await cli.download(
            service, [ACME], [mic.sid], str(tmp_path / "mic.mka"), tmp_path / "none", progress
        )
    assert written.read_bytes() == b"m" * 2_500_000
    assert (progress.tasks[0].total, progress.tasks[0].completed) == (2_500_000, 2_500_000)

    service.url = "file:///etc/passwd"
    with pytest.raises(CliError, match="not http"):
        await cli.download(
            service, [ACME], [mic.sid], str(tmp_path / "x"), tmp_path, quiet_progress()
        )


def test_the_recordings_folder_is_found_as_the_stack_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ATRIUM_RECORDINGS_DIR", raising=False)
    work = tmp_path / "project" / "sub"
    work.mkdir(parents=True)
    assert cli.resolve_recordings_dir(None, work) == work / ".atrium/data/recordings"
    run_env = tmp_path / "project" / ".atrium" / "run.env"
    run_env.parent.mkdir()
    run_env.write_text("NATS_URL=nats://127.0.0.1:4222\n")
    expected = tmp_path / "project" / ".atrium/data/recordings"
    assert cli.resolve_recordings_dir(None, work) == expected
    run_env.write_text("ATRIUM_RECORDINGS_DIR=/srv/recordings\n")
    assert cli.resolve_recordings_dir(None, work) == Path("/srv/recordings")
    monkeypatch.setenv("ATRIUM_RECORDINGS_DIR", "/env/recordings")
    assert cli.resolve_recordings_dir(None, work) == Path("/env/recordings")
    assert cli.resolve_recordings_dir("/flag", work) == Path("/flag")


def test_the_commands_parse() -> None:
    parser = build_parser()
    listing = parser.parse_args(
        ["recordings", "list", "--account", ACME, "--room", "RM" + "0" * 32, "--status", "failed"]
    )
    assert (listing.handler, listing.account, listing.status, listing.limit) == (
        cli.recordings_list,
        ACME,
        "failed",
        50,
    )
    download = parser.parse_args(["recordings", "download", "RT1", "RT2", "-o", "out"])
    assert (download.handler, download.sids, download.output) == (
        cli.recordings_download,
        ["RT1", "RT2"],
        "out",
    )
    assert parser.parse_args(["recordings", "get", "RT1"]).handler is cli.recordings_get
    with pytest.raises(SystemExit):
        parser.parse_args(["recordings", "list", "--status", "recording"])
