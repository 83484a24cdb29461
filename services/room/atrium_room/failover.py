"""Media worker failover: a room whose worker is gone moves to a live worker, sessions included.

A worker is gone when its registry entry expired, when it is draining (it hands its rooms over
before exiting), or when its heartbeat is stale and it answers no ping. kill -9 closes the worker's
NATS connection, so a dead worker has no responder and is known dead within a heartbeat or two,
without waiting for its entry to expire; a live worker that is only slow to write Redis answers
the ping and keeps its rooms.

Moving a room is a placement change (in a transaction, so of several room service replicas one
moves it) followed by the new worker's ``adopt``: it reads the session records the old worker kept
and resumes each participant's session there. If the adoption fails the placement goes back, and
the next sweep tries again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from atrium_room.ports import Clock, MediaPort, RoomQueries, RoomTransaction, WorkersPort
from atrium_shared.errors import AtriumError
from atrium_shared.infra import UNREACHABLE
from atrium_shared.unit_of_work import UnitOfWork

log = logging.getLogger("atrium.room.failover")


class Failover:
    def __init__(
        self,
        *,
        uow: UnitOfWork[RoomTransaction],
        queries: RoomQueries,
        workers: WorkersPort,
        media: MediaPort,
        clock: Clock,
    ) -> None:
        self.uow = uow
        self.queries = queries
        self.workers = workers
        self.media = media
        self.clock = clock

    async def is_gone(self, worker_id: str) -> bool:
        """Whether the worker's rooms must move (it is dead, or draining)."""
        info = await self.workers.get(worker_id)
        if info is None or info.draining:
            return True
        if not info.is_stale(self.clock.now().timestamp()):
            return False
        return not await self.media.responds(worker_id)

    async def sweep(self) -> int:
        """Move the rooms of every gone worker; returns how many moved. Never raises (it runs
        in a loop, and one bad room must not stop the others from moving)."""
        moved = 0
        try:
            workers = await self.queries.placed_workers()
        except UNREACHABLE as exc:  # Redis or NATS restarting: the next sweep looks again
            log.warning("failover sweep: %s unreachable: %s", type(exc).__name__, exc)
            return 0
        except Exception:
            log.exception("failover sweep could not list the placed workers")
            return 0
        for worker_id in workers:
            try:
                if not await self.is_gone(worker_id):
                    continue
                rooms = await self.queries.rooms_on(worker_id)
                if not rooms:
                    await self.uow.run(_forget_if_empty(worker_id))
                    continue
                for room_sid in rooms:
                    if await self.move(room_sid, worker_id) is not None:
                        moved += 1
            except UNREACHABLE as exc:
                log.warning("failover of worker %s paused: %s unreachable", worker_id, exc)
            except Exception:
                log.exception("failover of worker %s failed; the next sweep tries again", worker_id)
        return moved

    async def move(self, room_sid: str, gone: str) -> str | None:
        """Move the room from worker ``gone`` to the least loaded live worker; returns that
        worker, or None when the room is no longer on ``gone`` or no worker could adopt it."""
        room = await self.queries.get(room_sid)
        candidate = await self.workers.least_loaded()
        if candidate is None or candidate.worker_id == gone:
            log.warning("room %s cannot leave worker %s: no live media worker", room_sid, gone)
            return None
        chosen = candidate.worker_id

        async def claim(tx: RoomTransaction) -> bool:
            if await tx.placement(room_sid) != gone:
                return False  # ended, or another replica moved it first
            tx.place(room_sid, chosen)
            return True

        if room is None or room.status != "in-progress" or not await self.uow.run(claim):
            return None
        try:
            resumed = await self.media.adopt(chosen, room, gone)
        except AtriumError as exc:
            log.warning(
                "worker %s could not adopt room %s (%s): it stays on %s for now",
                chosen,
                room_sid,
                exc.message,
                gone,
            )

            async def undo(tx: RoomTransaction) -> None:
                if await tx.placement(room_sid) == chosen:
                    tx.place(room_sid, gone)

            await self.uow.run(undo)
            return None
        log.info(
            "room %s moved from worker %s to %s (%s sessions resumed)",
            room_sid,
            gone,
            chosen,
            resumed,
            extra={"fields": {"room_sid": room_sid, "from_worker": gone, "to_worker": chosen}},
        )
        return chosen


def _forget_if_empty(worker_id: str) -> Callable[[RoomTransaction], Awaitable[None]]:
    async def decide(tx: RoomTransaction) -> None:
        if not await tx.rooms_on(worker_id):
            tx.forget_worker(worker_id)

    return decide
