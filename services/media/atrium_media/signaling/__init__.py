"""Signaling: the worker's RSP sessions, rooms it hosts, and SDP negotiation.

It owns the peer connections (aiortc) and tells :mod:`atrium_media.forwarding` what to route; it
never touches RTP itself. :class:`~atrium_media.signaling.worker.MediaWorker` is its entry point.
"""
