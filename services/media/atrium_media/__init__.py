"""Atrium media worker: forwards encoded media and data between participants (aiortc SFU).

Modules: ``router`` (MediaRouter, the API for the signaling layer), ``forwarding`` (RTP-level
forwarding per published track), ``data`` (data-track fan-out), ``keyframes`` and ``rewrite``
(pure helpers), ``ice`` (host-candidate policy), ``aiortc_compat`` (private-name checks),
``bench_forwarding`` (CPU measurement).
"""
