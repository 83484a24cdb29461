"""The media worker process: settings, telemetry, host addresses, the worker bootstrap() wires,
its heartbeat and drain."""

from __future__ import annotations

from faststream.nats import NatsBroker

from atrium_media.bootstrap import bootstrap
from atrium_media.ice import configure_host_addresses
from atrium_media.signaling.worker import MediaWorker
from atrium_shared import metrics, telemetry
from atrium_shared.service import ServiceParts, ServiceRuntime
from atrium_shared.settings import Settings, get_settings


async def drain(worker: MediaWorker) -> None:
    """Deployment hook (SIGTERM / preStop): hand the rooms over, then let the process exit.

    The registry entry says ``draining`` at once (not at the next heartbeat), so the room service
    places no new room here; every session's record is written, and when the worker leaves the
    registry (the heartbeat loop's last act) the room service's failover sweep moves its rooms to
    live workers, which resume the sessions: a rolling upgrade does not end calls.
    """
    await worker.hand_over()


def build(settings: Settings, worker_id: str | None = None) -> ServiceRuntime:
    telemetry.setup("media", settings)
    configure_host_addresses(
        [a for a in settings.media_host_addresses.split(",") if a.strip()] or None
    )
    service = bootstrap(settings, worker_id=worker_id)
    worker = service.worker
    metrics.watch_media_worker(worker.info)  # atrium_media_* gauges on /metrics (read only)
    return ServiceRuntime(
        ServiceParts(
            name="media",
            settings=settings,
            broker=service.broker,
            redis=service.redis,
            loops=[worker.run_heartbeat],
            on_drain=[worker.stop],
            on_stopped=[worker.close],
            drain=lambda: drain(worker),
        )
    )


def build_broker() -> NatsBroker:
    """The broker with every subscriber registered, for the AsyncAPI document."""
    return build(Settings()).parts.broker


def main() -> None:
    build(get_settings()).run()


if __name__ == "__main__":
    main()
