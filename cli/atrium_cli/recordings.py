"""`atrium recordings list|get|download`: the recordings of a running stack.

The commands ask the recording service over NATS (``subjects.RECORDING_*``), as the gateway does,
so they need no credentials of a tenant: they are the operator's. Without ``--account`` they
look at every account (listed from Redis). ``download`` asks where the media is
(``RECORDING_MEDIA``), then copies it from the recordings folder (local storage: the folder
``atrium run`` keeps under ``.atrium/data/recordings``, or ``--recordings-dir``) or from the
bucket's presigned URL (S3), with a progress bar; a file appears under its name only once it
is whole.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import urllib.request
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from faststream.nats import NatsBroker
from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from atrium_cli.admin import console, public_callback_url
from atrium_cli.connection import (
    CliError,
    Endpoint,
    connected_broker,
    connected_redis,
    resolve_endpoint,
)
from atrium_cli.state import find_run_env, read_env_file
from atrium_shared import errors, rpc, sids, subjects
from atrium_shared.accounts import AccountStore
from atrium_shared.errors import AtriumError
from atrium_shared.recording_api import (
    FetchRecordingRequest,
    ListRecordingsRequest,
    RecordingInfo,
    RecordingMediaLocation,
    RecordingMediaRequest,
    RecordingPage,
    RecordingStatus,
)
from atrium_shared.settings import Settings

ResultT = TypeVar("ResultT", bound=BaseModel)
RECORDING_STATUSES = ("processing", "completed", "deleted", "failed")
# The most the recording service pages at once (its request allows 1000).
PAGE_SIZE = 100
CHUNK_BYTES = 1 << 20
URL_TIMEOUT_SECONDS = 30


class RecordingService(Protocol):
    """What the commands ask of the recording service (the gateway's RecordingsPort, in part)."""

    async def list_recordings(self, request: ListRecordingsRequest) -> RecordingPage: ...

    async def fetch(self, request: FetchRecordingRequest) -> RecordingInfo: ...

    async def media(self, request: RecordingMediaRequest) -> RecordingMediaLocation: ...


class NatsRecordingService:
    """The recording service over NATS; "nobody answers" is said in the CLI's words."""

    def __init__(self, broker: NatsBroker, endpoint: Endpoint) -> None:
        self._broker = broker
        self._endpoint = endpoint

    async def _call(self, subject: str, request: BaseModel, result_type: type[ResultT]) -> ResultT:
        try:
            return await rpc.call(self._broker, subject, request, result_type)
        except AtriumError as exc:
            if exc.status == 503:
                raise CliError(
                    f"the recording service does not answer on {self._endpoint.url}: "
                    "is `make run` (atrium run) running?"
                ) from None
            raise

    async def list_recordings(self, request: ListRecordingsRequest) -> RecordingPage:
        return await self._call(subjects.RECORDING_LIST, request, RecordingPage)

    async def fetch(self, request: FetchRecordingRequest) -> RecordingInfo:
        return await self._call(subjects.RECORDING_FETCH, request, RecordingInfo)

    async def media(self, request: RecordingMediaRequest) -> RecordingMediaLocation:
        return await self._call(subjects.RECORDING_MEDIA, request, RecordingMediaLocation)


@contextlib.asynccontextmanager
async def _connected(args: argparse.Namespace) -> AsyncIterator[tuple[RecordingService, list[str]]]:
    """The recording service and the accounts to look in: ``--account``, else every account."""
    if args.account is not None:
        if not sids.is_sid(args.account, sids.ACCOUNT):
            raise CliError(f"{args.account!r} is not an Account SID (AC...)")
        accounts = [args.account]
    else:
        async with connected_redis(resolve_endpoint("Redis", args.redis_url)) as redis:
            accounts = [account.sid for account in await AccountStore(redis).list_accounts()]
    endpoint = resolve_endpoint("NATS", args.nats_url)
    async with connected_broker(endpoint) as broker:
        yield NatsRecordingService(broker, endpoint), accounts


# Finding recordings -----------------------------------------------------------------------------
async def collect(
    service: RecordingService,
    accounts: Sequence[str],
    *,
    room: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[RecordingInfo]:
    """The newest ``limit`` recordings of ``accounts`` (of ``room``, with ``status``)."""
    found: list[RecordingInfo] = []
    for account in accounts:
        cursor: str | None = None
        taken = 0
        while taken < limit:
            page = await service.list_recordings(
                ListRecordingsRequest(
                    account_sid=account,
                    room_sid=room,
                    status=cast(RecordingStatus | None, status),  # one of RECORDING_STATUSES
                    page_size=min(PAGE_SIZE, limit - taken),
                    cursor=cursor,
                )
            )
            found.extend(page.items)
            taken += len(page.items)
            cursor = page.next_cursor
            if cursor is None or not page.items:
                break
    found.sort(key=lambda recording: (recording.date_created, recording.sid), reverse=True)
    return found[:limit]


async def find(service: RecordingService, accounts: Sequence[str], sid: str) -> RecordingInfo:
    """The recording ``sid`` in whichever of ``accounts`` has it."""
    if not sids.is_sid(sid, sids.RECORDING):
        raise CliError(f"{sid!r} is not a Recording SID (RT...)")
    for account in accounts:
        try:
            return await service.fetch(
                FetchRecordingRequest(account_sid=account, recording_sid=sid)
            )
        except AtriumError as exc:
            if exc.code != errors.NOT_FOUND:
                raise CliError(f"the recording service refused the query: {exc}") from None
    raise CliError(f"no recording {sid}")


# Showing them ---------------------------------------------------------------------------------
def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    scaled = float(size)
    for unit in ("KiB", "MiB", "GiB"):
        scaled /= 1024
        if scaled < 1024 or unit == "GiB":
            break
    return f"{scaled:.1f} {unit}"


def _duration(seconds: int | None) -> str:
    return "-" if seconds is None else f"{seconds} s"


def recordings_table(recordings: Sequence[RecordingInfo]) -> Table:
    table = Table(title=f"Recordings ({len(recordings)})")
    for column in (
        "Created (UTC)",
        "Recording SID",
        "Room SID",
        "Participant",
        "Track",
        "Type",
        "Codec",
        "Status",
        "Duration",
        "Size",
    ):
        table.add_column(column, overflow="fold")
    for r in recordings:
        table.add_row(
            _when(r.date_created),
            r.sid,
            r.room_sid,
            r.participant_identity or r.participant_sid,
            r.track_name or r.source_sid,
            r.type,
            r.codec or "-",
            r.status,
            _duration(r.duration),
            _size(r.size),
        )
    return table


def _storage(recording: RecordingInfo) -> str:
    storage = recording.storage
    if storage.kind == "s3":
        return f"s3 bucket {storage.bucket} ({storage.endpoint_url or 'AWS'})"
    return "local folder"


def recording_fields(r: RecordingInfo) -> list[tuple[str, str]]:
    callback = "-"
    if r.status_callback:
        callback = f"{r.status_callback_method} {public_callback_url(r.status_callback)}"
    return [
        ("Recording SID", r.sid),
        ("Account SID", r.account_sid),
        ("Room SID", r.room_sid),
        ("Participant", f"{r.participant_sid} ({r.participant_identity})"),
        ("Track", f"{r.source_sid} ({r.track_name})"),
        ("Type", r.type),
        ("Codec", r.codec or "-"),
        ("Container", r.container_format),
        ("Status", r.status + (f" ({r.failed_operation})" if r.failed_operation else "")),
        ("Created (UTC)", _when(r.date_created)),
        ("Updated (UTC)", _when(r.date_updated)),
        ("Deleted (UTC)", _when(r.date_deleted)),
        ("Duration", _duration(r.duration)),
        ("Size", _size(r.size)),
        ("Offset", f"{r.offset} ms"),
        ("Storage", _storage(r)),
        ("Media key", r.media_key),
        ("External location", r.media_external_location or "-"),
        ("StatusCallback", callback),
    ]


def print_fields(fields: Sequence[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in fields) + 1
    for label, value in fields:
        print(f"{label + ':':<{width}} {value}")


# Downloading ----------------------------------------------------------------------------------
def resolve_recordings_dir(explicit: str | None, cwd: Path | None = None) -> Path:
    """``--recordings-dir``, then $ATRIUM_RECORDINGS_DIR, then the running stack's (its
    run.env, else the data folder beside it), then the default under this directory."""
    if explicit:
        return Path(explicit)
    if os.environ.get("ATRIUM_RECORDINGS_DIR"):
        return Path(os.environ["ATRIUM_RECORDINGS_DIR"])
    here = cwd or Path.cwd()
    run_env = find_run_env(here)
    default = str(Settings.model_fields["recordings_dir"].default)
    if run_env is not None:
        configured = read_env_file(run_env).get("ATRIUM_RECORDINGS_DIR")
        if configured:
            return Path(configured)
        # run.env is <dir>/.atrium/run.env; the stack runs in <dir>, where the default is.
        return run_env.parent.parent / default
    return here / default


def local_media(root: Path, media_key: str) -> Path:
    """The file of ``media_key`` under ``root``; never a path out of it."""
    folder = root.resolve()
    path = (folder / media_key).resolve()
    if folder not in path.parents:
        raise CliError(f"media key {media_key!r} leads out of the recordings folder")
    if not path.is_file():
        raise CliError(
            f"{path} is not there: is {folder} the recordings folder of the stack? "
            "(--recordings-dir, or $ATRIUM_RECORDINGS_DIR)"
        )
    return path


def output_path(output: str | None, recording: RecordingInfo, several: bool) -> Path:
    """``-o FILE`` for one recording; ``-o DIR`` (an existing folder) for one or more; else
    ``<RT>.<mka|mkv>`` here."""
    name = f"{recording.sid}.{recording.container_format}"
    if output is None:
        return Path(name)
    target = Path(output)
    if target.is_dir():
        return target / name
    if several:
        raise CliError(f"-o {output}: with several recordings, -o must name an existing folder")
    return target


@dataclass
class Source:
    """An opened media source: the stream and its size when known."""

    stream: IO[bytes]
    total: int | None


def open_source(location: RecordingMediaLocation, recordings_dir: Path) -> Source:
    if location.url is not None:
        if urlsplit(location.url).scheme not in ("http", "https"):
            raise CliError("the recording service gave a media URL that is not http(s)")
        response = urllib.request.urlopen(location.url, timeout=URL_TIMEOUT_SECONDS)
        length = response.headers.get("Content-Length")
        return Source(response, int(length) if length and length.isdigit() else None)
    if location.media_key is None:
        raise CliError(f"the recording service has no media for {location.recording.sid}")
    path = local_media(recordings_dir, location.media_key)
    return Source(path.open("rb"), path.stat().st_size)


def copy_to(source: Source, target: Path, advance: Callable[[int], None]) -> int:
    """Copy ``source`` into ``target`` through a hidden partial file, renamed over at the end;
    the partial file is removed if the copy fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.part")
    copied = 0
    try:
        with source.stream, partial.open("wb") as out:
            while chunk := source.stream.read(CHUNK_BYTES):
                out.write(chunk)
                copied += len(chunk)
                advance(len(chunk))
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return copied


async def download(
    service: RecordingService,
    accounts: Sequence[str],
    recording_sids: Sequence[str],
    output: str | None,
    recordings_dir: Path,
    progress: Progress,
) -> list[Path]:
    """Each recording into its file; the paths written, in order."""
    written: list[Path] = []
    several = len(recording_sids) > 1
    for sid in recording_sids:
        recording = await find(service, accounts, sid)
        try:
            location = await service.media(
                RecordingMediaRequest(account_sid=recording.account_sid, recording_sid=sid)
            )
        except AtriumError as exc:
            if exc.code == errors.NOT_FOUND:
                raise CliError(
                    f"{sid} is {recording.status}: it has no media to download"
                ) from None
            raise CliError(f"the recording service refused the download: {exc}") from None
        target = output_path(output, recording, several)
        source = await asyncio.to_thread(open_source, location, recordings_dir)
        task = progress.add_task(f"{sid}.{recording.container_format}", total=source.total)
        try:
            await asyncio.to_thread(copy_to, source, target, partial(progress.advance, task))
        except OSError as exc:
            raise CliError(f"downloading {sid} to {target} failed: {exc}") from None
        written.append(target)
    return written


def download_progress() -> Progress:
    """On stderr, so that stdout keeps only the paths written."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(file=sys.stderr),
    )


# Commands -------------------------------------------------------------------------------------
async def recordings_list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1")
    if args.room is not None and not sids.is_sid(args.room, sids.ROOM):
        raise CliError(f"{args.room!r} is not a Room SID (RM...)")
    async with _connected(args) as (service, accounts):
        found = await collect(
            service, accounts, room=args.room, status=args.status, limit=args.limit
        )
    console().print(recordings_table(found))
    return 0


async def recordings_get(args: argparse.Namespace) -> int:
    async with _connected(args) as (service, accounts):
        found = [await find(service, accounts, sid) for sid in args.sids]
    for index, recording in enumerate(found):
        if index:
            print()
        print_fields(recording_fields(recording))
    return 0


async def recordings_download(args: argparse.Namespace) -> int:
    recordings_dir = resolve_recordings_dir(args.recordings_dir)
    async with _connected(args) as (service, accounts):
        with download_progress() as progress:
            written = await download(
                service, accounts, args.sids, args.output, recordings_dir, progress
            )
    for path in written:
        print(path)
    return 0


def add_parser(commands: Any, nats_option: Any, redis_option: Any) -> None:
    """Register ``atrium recordings`` on the ``atrium`` command's subparsers."""
    recordings = commands.add_parser(
        "recordings",
        help="list, show and download recordings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = recordings.add_subparsers(dest="action", required=True, metavar="ACTION")
    account_option = argparse.ArgumentParser(add_help=False)
    account_option.add_argument(
        "--account",
        metavar="SID",
        help="only this Account SID (default: every account, listed from Redis)",
    )
    parents = [nats_option, redis_option, account_option]

    listing = actions.add_parser("list", parents=parents, help="recordings, newest first")
    listing.add_argument("--room", metavar="SID", help="only this Room SID (RM...)")
    listing.add_argument("--status", choices=RECORDING_STATUSES, help="only this status")
    listing.add_argument("--limit", type=int, default=50, help="at most N (default 50)")
    listing.set_defaults(handler=recordings_list)

    get = actions.add_parser("get", parents=parents, help="every field of recordings")
    get.add_argument("sids", metavar="RT", nargs="+", help="Recording SID (RT...)")
    get.set_defaults(handler=recordings_get)

    fetch = actions.add_parser(
        "download", parents=parents, help="download recordings' media, with progress"
    )
    fetch.add_argument("sids", metavar="RT", nargs="+", help="Recording SID (RT...)")
    fetch.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="the file to write (one recording) or an existing folder (default: <RT>.<mka|mkv> "
        "here)",
    )
    fetch.add_argument(
        "--recordings-dir",
        metavar="DIR",
        help="the stack's recordings folder, for local storage (default: "
        "$ATRIUM_RECORDINGS_DIR, then the running stack's .atrium/data/recordings)",
    )
    fetch.set_defaults(handler=recordings_download)
