"""A publisher's simulcast layers, read from its offer's SSRC groups.

twilio-video.js turns on VP8 simulcast the way Chrome's "conference mode" expects (its
``lib/util/sdp/simulcast.js``, applied to the local offer when ``preferredVideoCodecs`` asks for
VP8 with ``simulcast: true`` or ``'auto'``): to the video m-line's one SSRC (and its RTX, an
``a=ssrc-group:FID <primary> <rtx>``) it adds two more primary SSRCs, an RTX SSRC for each when the
m-line negotiates RTX, their ``a=ssrc`` lines, and::

    a=ssrc-group:FID 1001 1002
    a=ssrc-group:FID 2159618968 1610595932
    a=ssrc-group:FID 4058047981 2522334831
    ...
    a=ssrc-group:SIM 1001 2159618968 4058047981
    a=x-google-flag:conference

The SIM group lists the layers lowest resolution first: Chrome sends encoding *i* on the *i*-th
SSRC, and twilio-video's ``publisher_hints`` ``layer_index`` counts the same way (layer 0 is
scaled down the most, ``peerconnection.js`` ``_updateEncodings``).

:func:`published_video_layers` returns, for each video m-line the offer sends on, its layers in
that order with their RTX SSRCs. An m-line without a SIM group is a single layer (H.264, VP8 without
simulcast, and aiortc publishers): one shape for both. RID-based simulcast (``a=rid`` /
``a=simulcast``) is not what twilio-video 2.x writes and is not read here.

The offer is parsed with aiortc's SDP parser (the one the worker's peer connection uses on the
same text). Not wired into the worker yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiortc.sdp import GroupDescription, MediaDescription, SessionDescription

__all__ = [
    "LayerSsrcs",
    "PublishedVideoLayers",
    "SimulcastSdpError",
    "published_video_layers",
]

_SENDING = ("sendrecv", "sendonly")


class SimulcastSdpError(ValueError):
    """The offer's SSRC groups do not describe one stream or one simulcast set per m-line."""


@dataclass(frozen=True, slots=True)
class LayerSsrcs:
    """One layer: its position (0 = lowest), media SSRC and retransmission SSRC."""

    index: int
    ssrc: int
    rtx_ssrc: int | None


@dataclass(frozen=True, slots=True)
class PublishedVideoLayers:
    """The layers one video m-line sends, lowest first. ``simulcast`` is True when the m-line
    carries an ``a=ssrc-group:SIM`` (even of one SSRC); ``track_id`` is the ``a=msid`` track id
    (the id twilio-video signals for the track), or the SSRCs' ``msid`` when the m-line has no
    ``a=msid``."""

    mid: str | None
    track_id: str | None
    simulcast: bool
    layers: tuple[LayerSsrcs, ...]

    @property
    def ssrcs(self) -> tuple[int, ...]:
        return tuple(layer.ssrc for layer in self.layers)

    def layer_of(self, ssrc: int) -> LayerSsrcs | None:
        """The layer a media or RTX SSRC belongs to."""
        for layer in self.layers:
            if ssrc in (layer.ssrc, layer.rtx_ssrc):
                return layer
        return None


def published_video_layers(sdp: str) -> list[PublishedVideoLayers]:
    """The simulcast layers (or the single stream) of every video m-line the SDP's author sends.

    m-lines in order; one that sends but announces no SSRC is left out (there is nothing to
    read). Raises :class:`SimulcastSdpError` for SDP that does not parse or SSRC groups that
    contradict each other (two SIM groups in one m-line, a layer listed twice, an SSRC that is
    both a layer and a retransmission stream, several unrelated SSRCs without a SIM group).
    """
    try:
        session = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted types (asserts, lookups)
        raise SimulcastSdpError(f"the SDP does not parse: {exc!r}") from exc
    found: list[PublishedVideoLayers] = []
    for media in session.media:
        if media.kind != "video" or (media.direction or "sendrecv") not in _SENDING:
            continue
        layers = _layers_of(media)
        if layers is not None:
            found.append(layers)
    return found


def _groups(media: MediaDescription, semantic: str) -> list[GroupDescription]:
    return [group for group in media.ssrc_group if group.semantic.upper() == semantic]


def _int_items(group: GroupDescription) -> list[int]:
    return [int(item) for item in group.items]


def _layers_of(media: MediaDescription) -> PublishedVideoLayers | None:
    where = f"m-line {media.rtp.muxId!r}" if media.rtp.muxId is not None else "an m-line"
    rtx_of: dict[int, int] = {}
    repairs: set[int] = set()
    for group in _groups(media, "FID"):
        items = _int_items(group)
        if len(items) != 2:
            raise SimulcastSdpError(f"{where}: FID group of {len(items)} SSRCs, not 2")
        primary, rtx = items
        if primary == rtx or primary in rtx_of or rtx in repairs:
            raise SimulcastSdpError(f"{where}: SSRC {primary} or {rtx} in two FID groups")
        rtx_of[primary] = rtx
        repairs.add(rtx)
    for group in _groups(media, "FEC-FR"):  # FlexFEC streams are not layers either
        repairs.update(_int_items(group)[1:])

    sim_groups = _groups(media, "SIM")
    if len(sim_groups) > 1:
        raise SimulcastSdpError(f"{where}: {len(sim_groups)} SIM groups in one m-line")
    if sim_groups:
        primaries = _int_items(sim_groups[0])
        if not primaries or len(set(primaries)) != len(primaries):
            raise SimulcastSdpError(f"{where}: SIM group lists an SSRC twice or none")
        if repairs.intersection(primaries):
            raise SimulcastSdpError(f"{where}: a SIM layer is also a retransmission SSRC")
    else:
        announced = [s.ssrc for s in media.ssrc] + list(rtx_of)
        primaries = list(dict.fromkeys(s for s in announced if s not in repairs))
        if not primaries:
            return None
        if len(primaries) > 1:
            raise SimulcastSdpError(
                f"{where}: {len(primaries)} unrelated SSRCs and no SIM group to order them"
            )

    track_id: str | None = None
    msid = media.msid or next((s.msid for s in media.ssrc if s.msid), None)
    if msid:
        parts = msid.split()
        track_id = parts[1] if len(parts) > 1 else None
    return PublishedVideoLayers(
        mid=media.rtp.muxId,
        track_id=track_id,
        simulcast=bool(sim_groups),
        layers=tuple(
            LayerSsrcs(index=i, ssrc=ssrc, rtx_ssrc=rtx_of.get(ssrc))
            for i, ssrc in enumerate(primaries)
        ),
    )
