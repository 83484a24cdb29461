"""TrackRecorder: what forwarding feeds, one per recorded track; a small thread pool writes.

**On the event loop** a recorded track costs one call per packet, :meth:`TrackRecorder.feed`: two
length checks and a ``deque.append`` (atomic in CPython, so no lock and no wake-up of any thread).
Depacketizing, muxing and file I/O happen on a writer thread.

**Threads: one small pool per worker process** (:class:`RecorderPool`, two threads by default),
not one thread per recorder. Each recorder is pinned to one pool thread, so its packets stay in
order without locks. A pool thread wakes every ``interval`` (50 ms) and drains every queue of its
recorders in one go, so the cost of waking a thread is paid 20 times a second per pool, not once
per packet per track, and the thread count does not grow with the rooms (a worker with 200
participants would otherwise run 400 writer threads that all contend for the GIL with the event
loop). Python work is serialized by the GIL anyway, so more threads would not write faster; two
keep recordings going while one thread waits on a slow disk. A pool thread releases the GIL
between recorders (and PyAV's muxing releases it while FFmpeg writes), so the event loop is never
held for a whole batch.

**Memory is bounded**: a recorder's queue holds at most ``max_queued_packets`` packets and
``max_queued_bytes`` payload bytes; beyond that (the writer fell behind) packets are dropped and
counted (:attr:`RecordingResult.packets_dropped`), which the depacketizer then treats as loss (video
resumes at the next keyframe). The reorder buffer and the frame being assembled are bounded too.

**Ending**: :meth:`TrackRecorder.finish` stops accepting packets; the pool thread writes what is
queued, flushes the reorder buffer, closes the file and resolves the returned future with a
:class:`RecordingResult` (``await asyncio.wrap_future(recorder.finish())``, or ``await
recorder.stop()``). :meth:`TrackRecorder.fail` ends it as failed and removes the file. A write
error ends it as failed on its own (``on_failure`` hears it). If the process dies, the file is
playable up to its last finished cluster (see :mod:`atrium_media.recording.writer`).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from aiortc.rtp import RtpPacket

from atrium_media.recording.depacketize import TrackDepacketizer
from atrium_media.recording.writer import (
    DEFAULT_CLUSTER_MS,
    Codec,
    Container,
    MatroskaWriter,
    recording_format,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUED_PACKETS = 4096  # ~10 s of a 1 Mbit/s video track
DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024
DEFAULT_INTERVAL = 0.05
DEFAULT_POOL_THREADS = 2
KEYFRAME_REQUEST_INTERVAL = 1.0
FIRST_KEYFRAME_RETRY = 0.35  # seconds after recording starts, while video waits for a keyframe
_MAX_BATCH = 512  # packets of one recorder per turn, so one busy track cannot starve the others


@dataclass(frozen=True)
class RecordingResult:
    """What a finished (or failed) recording wrote."""

    codec: Codec
    container: Container
    path: Path | None  # the file; None when nothing was written (or it was removed on failure)
    duration: float  # seconds, from the first sample to the end of the last
    size: int  # bytes
    first_sample_time: float | None  # Unix time of the first sample: the offset base
    frames: int
    packets_received: int  # fed by forwarding
    packets_dropped: int  # not queued: the writer thread was behind (memory bound)
    packets_lost: int  # never arrived (gaps left in the file)
    packets_late: int  # arrived after their gap was given up on
    frames_dropped: int  # incomplete frames, and video frames skipped until a keyframe
    failed: bool = False
    reason: str | None = None

    def offset_ms(self, epoch: float) -> int | None:
        """Milliseconds from ``epoch`` (Unix time, e.g. the room's creation) to the first sample."""
        if self.first_sample_time is None:
            return None
        return max(0, round((self.first_sample_time - epoch) * 1000))


class _PoolThread(threading.Thread):
    def __init__(self, pool: RecorderPool, index: int) -> None:
        super().__init__(name=f"recorder-{index}", daemon=True)
        self._pool = pool
        self._lock = threading.Lock()
        self._recorders: list[TrackRecorder] = []
        self._wake = threading.Event()
        self._stopping = False

    @property
    def load(self) -> int:
        return len(self._recorders)

    def add(self, recorder: TrackRecorder) -> None:
        with self._lock:
            self._recorders.append(recorder)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def run(self) -> None:
        interval = self._pool.interval
        while True:
            with self._lock:
                recorders = list(self._recorders)
            if not recorders and self._stopping:
                return
            self._wake.wait(interval if recorders else None)
            self._wake.clear()
            busy = False
            done: list[TrackRecorder] = []
            for recorder in recorders:
                try:
                    finished, more = recorder._service()
                except Exception:  # a bug here must not stop every recording of the thread
                    logger.exception("recorder %s crashed", recorder.path)
                    recorder._abandon("internal error")
                    finished, more = True, False
                busy = busy or more
                if finished:
                    done.append(recorder)
                time.sleep(0)  # let the event loop have the GIL between recorders
            if done:
                with self._lock:
                    self._recorders = [r for r in self._recorders if r not in done]
            if busy:
                self._wake.set()  # a queue had more than one batch: go round again at once


class RecorderPool:
    """The writer threads of a media worker; recorders are spread over them by load."""

    _shared: RecorderPool | None = None
    _shared_lock = threading.Lock()

    def __init__(self, threads: int = DEFAULT_POOL_THREADS, *, interval: float = DEFAULT_INTERVAL):
        if threads < 1:
            raise ValueError("a pool needs at least one thread")
        self.interval = interval
        self._threads = [_PoolThread(self, index) for index in range(threads)]
        self._started = False
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def shared(cls) -> RecorderPool:
        """The process's pool (created on first use)."""
        with cls._shared_lock:
            if cls._shared is None or cls._shared._closed:
                cls._shared = cls()
            return cls._shared

    def _assign(self, recorder: TrackRecorder) -> _PoolThread:
        with self._lock:
            if self._closed:
                raise RuntimeError("the recorder pool is closed")
            if not self._started:
                for thread in self._threads:
                    thread.start()
                self._started = True
            thread = min(self._threads, key=lambda t: t.load)
            thread.add(recorder)
            return thread

    @property
    def recorders(self) -> int:
        return sum(thread.load for thread in self._threads)

    def cpu_seconds(self) -> float | None:
        """CPU time the pool's threads have used (None where the OS cannot tell per thread)."""
        if not hasattr(time, "pthread_getcpuclockid"):
            return None
        total = 0.0
        for thread in self._threads:
            ident = thread.ident
            if ident is None or not thread.is_alive():
                continue
            try:
                total += time.clock_gettime(time.pthread_getcpuclockid(ident))
            except OSError:
                continue
        return total

    def close(self, timeout: float | None = 10.0) -> None:
        """Let the threads end once their recorders are finished (it does not finish them)."""
        with self._lock:
            self._closed = True
            started = self._started
        for thread in self._threads:
            thread.stop()
        if started:
            for thread in self._threads:
                thread.join(timeout)


class TrackRecorder:
    """Records one track's RTP to a Matroska file (see the module docs for the threading).

    Create it on the event loop, hand it to ``MediaRouter.record`` (or call :meth:`feed` for each
    packet), end it with :meth:`finish` or :meth:`fail`. ``path`` is the file to write (its suffix
    should be :attr:`container`); ``mime_type``/``clock_rate`` are the track's negotiated codec.
    ``request_keyframe`` is called (from a pool thread; it must be thread-safe) while video waits
    for a keyframe, at most every ``keyframe_request_interval`` seconds; ``on_failure`` (from a
    pool thread too) when writing fails.
    """

    def __init__(
        self,
        path: Path,
        mime_type: str,
        clock_rate: int,
        *,
        pool: RecorderPool | None = None,
        max_queued_packets: int = DEFAULT_MAX_QUEUED_PACKETS,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        reorder_window: float | None = None,
        cluster_ms: int = DEFAULT_CLUSTER_MS,
        request_keyframe: Callable[[], None] | None = None,
        keyframe_request_interval: float = KEYFRAME_REQUEST_INTERVAL,
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        codec, container = recording_format(mime_type)  # ValueError: cannot record this codec
        self.path = Path(path)
        self.codec: Codec = codec
        self.container: Container = container
        self.max_queued_packets = max_queued_packets
        self.max_queued_bytes = max_queued_bytes
        self.keyframe_request_interval = keyframe_request_interval
        self.on_failure = on_failure
        self._request_keyframe = request_keyframe
        self._depacketizer = TrackDepacketizer(mime_type, clock_rate, reorder_window=reorder_window)
        self._writer = MatroskaWriter(self.path, mime_type, clock_rate, cluster_ms=cluster_ms)
        self._queue: collections.deque[tuple[RtpPacket, float]] = collections.deque()
        # Counters with a single writer each (no lock needed): the loop thread writes the fed_*
        # and dropped ones, the pool thread the taken one.
        self._fed = 0
        self._fed_bytes = 0
        self._taken_bytes = 0
        self._dropped = 0
        self._accepting = True
        self._stop_requested = False
        self._fail_reason: str | None = None
        self._keep_file = False
        self._last_keyframe_request = float("-inf")
        self._future: Future[RecordingResult] = Future()
        self._thread = (pool or RecorderPool.shared())._assign(self)

    # ---------------------------------------------------------------- event loop side
    def feed(self, packet: RtpPacket, arrival_time: float) -> None:
        """Queue one packet (``arrival_time``: Unix seconds). O(1); never blocks."""
        if not self._accepting:
            return
        self._fed += 1
        size = len(packet.payload)
        if (
            len(self._queue) >= self.max_queued_packets
            or self._fed_bytes - self._taken_bytes + size > self.max_queued_bytes
        ):
            self._dropped += 1
            return
        self._fed_bytes += size
        self._queue.append((packet, arrival_time))

    def set_keyframe_requester(self, request: Callable[[], None] | None) -> None:
        """Who to ask for a keyframe (a thread-safe callable); forwarding sets it as it asks for
        one itself, so the recorder's own first request waits ``keyframe_request_interval``."""
        # Forwarding asks for a keyframe as it starts recording; should that one not come (it
        # crossed another request, or the stream had not started), the recorder asks again
        # after FIRST_KEYFRAME_RETRY rather than a whole interval later.
        self._last_keyframe_request = (
            time.monotonic() - self.keyframe_request_interval + FIRST_KEYFRAME_RETRY
        )
        self._request_keyframe = request

    @property
    def packets_received(self) -> int:
        return self._fed

    @property
    def packets_dropped(self) -> int:
        return self._dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def done(self) -> bool:
        return self._future.done()

    def finish(self) -> Future[RecordingResult]:
        """Stop accepting packets; the file is completed on the pool thread. The future resolves
        to the result (``failed`` set if writing had failed)."""
        self._accepting = False
        self._stop_requested = True
        self._thread.wake()
        return self._future

    def fail(self, reason: str, *, keep_file: bool = False) -> Future[RecordingResult]:
        """End as failed: what is queued is dropped and the file removed (unless ``keep_file``)."""
        self._accepting = False
        if self._fail_reason is None:
            self._fail_reason = reason
        self._keep_file = keep_file
        self._stop_requested = True
        self._thread.wake()
        return self._future

    async def stop(self) -> RecordingResult:
        """:meth:`finish`, awaited."""
        return await asyncio.wrap_future(self.finish())

    # ---------------------------------------------------------------- pool thread side
    def _service(self) -> tuple[bool, bool]:
        """Drain the queue (one batch); returns (finished, more queued)."""
        if self._future.done():
            return True, False
        if self._fail_reason is not None and self._stop_requested:
            self._end_failed(self._fail_reason)
            return True, False
        queue = self._queue
        depacketizer = self._depacketizer
        writer = self._writer
        try:
            for _ in range(_MAX_BATCH):
                if not queue:
                    break
                packet, arrival = queue.popleft()
                self._taken_bytes += len(packet.payload)
                for frame in depacketizer.push(packet, arrival):
                    writer.write(frame)
            if self._fail_reason is not None:
                self._end_failed(self._fail_reason)  # fail() came while this batch ran
                return True, False
            if queue:
                return False, True
            if self._stop_requested:
                if queue:  # fed just before finish(): take it first
                    return False, True
                for frame in depacketizer.flush():
                    writer.write(frame)
                writer.close()
                self._future.set_result(self._result())
                return True, False
            self._maybe_request_keyframe()
        except Exception as exc:
            logger.exception("recording to %s failed", self.path)
            reason = f"{type(exc).__name__}: {exc}"
            self._end_failed(reason)
            if self.on_failure is not None:
                try:
                    self.on_failure(reason)
                except Exception:
                    logger.exception("on_failure of %s raised", self.path)
            return True, False
        return False, False

    def _maybe_request_keyframe(self) -> None:
        request = self._request_keyframe
        if request is None or not self._depacketizer.is_video or not self._fed:
            return
        if not self._depacketizer.waiting_for_keyframe:
            return
        now = time.monotonic()
        if now - self._last_keyframe_request < self.keyframe_request_interval:
            return
        self._last_keyframe_request = now
        try:
            request()
        except Exception:
            logger.exception("keyframe request for %s failed", self.path)

    def _abandon(self, reason: str) -> None:
        self._accepting = False
        self._queue.clear()
        if not self._future.done():
            self._future.set_result(self._result(failed=True, reason=reason, keep=False))

    def _end_failed(self, reason: str) -> None:
        self._accepting = False
        self._queue.clear()
        self._writer.abort()
        keep = self._keep_file and self._writer.opened
        if not keep:
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                logger.warning("could not remove %s", self.path)
        if not self._future.done():
            self._future.set_result(self._result(failed=True, reason=reason, keep=keep))

    def _result(
        self, *, failed: bool = False, reason: str | None = None, keep: bool = True
    ) -> RecordingResult:
        written = self._writer.result()
        stats = self._depacketizer.stats
        has_file = keep and self._writer.opened
        return RecordingResult(
            codec=self.codec,
            container=self.container,
            path=self.path if has_file else None,
            duration=written.duration,
            size=written.size if has_file else 0,
            first_sample_time=written.first_wall_time,
            frames=written.frames,
            packets_received=self._fed,
            packets_dropped=self._dropped,
            packets_lost=stats.packets_lost,
            packets_late=stats.packets_late,
            frames_dropped=stats.frames_dropped,
            failed=failed,
            reason=reason,
        )
