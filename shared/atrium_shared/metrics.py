"""Prometheus metrics of a service process, served at ``/metrics`` (health port or gateway port).

The default registry already carries the process, platform and GC collectors (CPU, memory, open
file descriptors, start time). On top of that:

* ``atrium_service_draining{service}``: 1 while a process drains (SIGTERM or ``POST /drain``);
* for media workers, the load the room service places rooms by (what the media HPA scales on):
  ``atrium_media_rooms``, ``atrium_media_participants``, ``atrium_media_capacity``,
  ``atrium_media_load`` (participants / capacity, 0..1) and ``atrium_media_draining``, each with a
  ``worker_id`` label. They are read from the worker's own registry entry (``WorkerInfo``) at scrape
  time, so they never disagree with what placement sees.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from atrium_shared.workers import WorkerInfo

__all__ = ["CONTENT_TYPE_LATEST", "render", "service_draining", "watch_media_worker"]

WorkerInfoSource = Callable[[], WorkerInfo]

service_draining = Gauge(
    "atrium_service_draining", "1 while the service drains before exiting", ["service"]
)


def render() -> bytes:
    """The exposition text of every metric of this process."""
    return generate_latest(REGISTRY)


class _MediaWorkerCollector(Collector):
    """Reads each registered worker's ``info()`` at scrape time (weakly: a closed worker goes)."""

    def __init__(self) -> None:
        self._sources: list[weakref.WeakMethod[WorkerInfoSource] | WorkerInfoSource] = []
        self._lock = threading.Lock()

    def add(self, source: WorkerInfoSource) -> None:
        ref: weakref.WeakMethod[WorkerInfoSource] | WorkerInfoSource
        try:
            ref = weakref.WeakMethod(source)
        except TypeError:  # a plain function or lambda: keep it
            ref = source
        with self._lock:
            self._sources.append(ref)

    def _infos(self) -> list[WorkerInfo]:
        infos: list[WorkerInfo] = []
        with self._lock:
            alive: list[weakref.WeakMethod[WorkerInfoSource] | WorkerInfoSource] = []
            for ref in self._sources:
                source = ref() if isinstance(ref, weakref.WeakMethod) else ref
                if source is None:
                    continue
                alive.append(ref)
                infos.append(source())
            self._sources = alive
        return infos

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            "rooms": GaugeMetricFamily(
                "atrium_media_rooms", "Rooms hosted by this media worker", labels=["worker_id"]
            ),
            "participants": GaugeMetricFamily(
                "atrium_media_participants",
                "Participants connected to this media worker",
                labels=["worker_id"],
            ),
            "capacity": GaugeMetricFamily(
                "atrium_media_capacity",
                "Participants this media worker accepts",
                labels=["worker_id"],
            ),
            "load": GaugeMetricFamily(
                "atrium_media_load",
                "participants / capacity: what room placement and the HPA use",
                labels=["worker_id"],
            ),
            "draining": GaugeMetricFamily(
                "atrium_media_draining",
                "1 while the worker takes no new rooms",
                labels=["worker_id"],
            ),
        }
        for info in self._infos():
            labels = [info.worker_id]
            families["rooms"].add_metric(labels, info.rooms)
            families["participants"].add_metric(labels, info.participants)
            families["capacity"].add_metric(labels, info.capacity)
            families["load"].add_metric(labels, info.load)
            families["draining"].add_metric(labels, 1.0 if info.draining else 0.0)
        yield from families.values()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())


_media_collector: _MediaWorkerCollector | None = None
_media_lock = threading.Lock()


def watch_media_worker(info: WorkerInfoSource) -> None:
    """Export a media worker's load; ``info`` is typically ``MediaWorker.info`` (read only)."""
    global _media_collector
    with _media_lock:
        if _media_collector is None:
            _media_collector = _MediaWorkerCollector()
            REGISTRY.register(_media_collector)
    _media_collector.add(info)
