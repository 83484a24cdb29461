"""The few SDP facts the RSP layer needs: each m-section's mid, kind, msid track id and direction.

Parsed here rather than through aiortc, which only reads ``a=msid`` when ``msid-semantic`` lists the
stream, and keeps the first track id a transceiver ever had even after the client reuses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class MediaSection:
    index: int
    kind: str  # audio, video or application
    mid: str | None
    track_id: str | None  # the track id part of a=msid
    direction: str


_SDP_LINE = re.compile(r"^[a-z]=")


def is_session_description(sdp: str) -> bool:
    """Whether ``sdp`` is shaped as SDP at all (RFC 8866: ``v=0`` first, every line
    ``<letter>=<value>``). aiortc answers any text (it skips lines it cannot read), so text
    that is not SDP is refused before it gets there. An offer without media sections is SDP
    (a browser offers one when it has nothing to send yet)."""
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    return bool(lines) and lines[0] == "v=0" and all(_SDP_LINE.match(line) for line in lines)


def media_sections(sdp: str) -> list[MediaSection]:
    sections: list[MediaSection] = []
    current: dict[str, str | None] | None = None

    def close() -> None:
        if current is not None:
            sections.append(
                MediaSection(
                    index=len(sections),
                    kind=current["kind"] or "",
                    mid=current["mid"],
                    track_id=current["track_id"],
                    direction=current["direction"] or "sendrecv",
                )
            )

    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            close()
            current = {
                "kind": line[2:].split(" ", 1)[0],
                "mid": None,
                "track_id": None,
                "direction": None,
            }
        elif current is None:
            continue
        elif line.startswith("a=mid:"):
            current["mid"] = line[len("a=mid:") :]
        elif line.startswith("a=msid:"):
            parts = line[len("a=msid:") :].split()
            if len(parts) >= 2:
                current["track_id"] = parts[1]
        elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
            current["direction"] = line[2:]
    close()
    return sections


def sending_tracks(sdp: str) -> dict[str, MediaSection]:
    """Media sections the SDP's author sends on, by msid track id."""
    return {
        section.track_id: section
        for section in media_sections(sdp)
        if section.track_id
        and section.kind in ("audio", "video")
        and section.direction in ("sendrecv", "sendonly")
    }


# ---------------------------------------------------------------------------------------------
# Keeping a worker re-offer consistent with what the client already negotiated
# ---------------------------------------------------------------------------------------------
#
# aiortc numbers payload types and header extensions from its own tables every time it offers.
# After answering a browser's offer (Chrome's numbering), a worker re-offer would renumber the
# m-lines already in use and give new m-lines numbers that collide inside the BUNDLE group;
# Chrome rejects both. harmonize_offer rewrites the offer so every codec and extension keeps the
# number the client's own SDP gave it, and new ones get numbers nobody uses yet.

DYNAMIC_PAYLOAD_TYPES = list(range(96, 128)) + list(range(35, 64))
EXTENSION_IDS = range(1, 15)

CodecKey = tuple[str, int, str, str]


# The format parameters that make two codecs of one name different formats; the others (opus's
# minptime, useinbandfec...) are preferences and do not change what a payload type means.
FORMAT_PARAMETERS = ("profile-level-id", "packetization-mode", "profile-id", "profile")


def _fmtp_key(params: str) -> str:
    pairs = (p.strip().partition("=") for p in params.split(";"))
    items = sorted(f"{n.lower()}={v.lower()}" for n, _, v in pairs if n in FORMAT_PARAMETERS)
    return ";".join(items)


@dataclass
class _Section:
    lines: list[str]

    def codecs(self) -> dict[int, tuple[str, int, str]]:
        found: dict[int, tuple[str, int, str]] = {}
        for line in self.lines:
            if line.startswith("a=rtpmap:"):
                pt_text, _, spec = line[len("a=rtpmap:") :].partition(" ")
                parts = spec.split("/")
                name = parts[0].lower()
                clock = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
                channels = parts[2] if len(parts) > 2 else ""
                found[int(pt_text)] = (name, clock, channels)
        return found

    def fmtp(self) -> dict[int, str]:
        params: dict[int, str] = {}
        for line in self.lines:
            if line.startswith("a=fmtp:"):
                pt_text, _, value = line[len("a=fmtp:") :].partition(" ")
                params[int(pt_text)] = value
        return params

    def keys(self) -> dict[int, CodecKey]:
        """A key per payload type that identifies the codec whatever its number (rtx by base)."""
        codecs, fmtp = self.codecs(), self.fmtp()
        keys: dict[int, CodecKey] = {}
        for pt, (name, clock, channels) in codecs.items():
            if name != "rtx":
                keys[pt] = (name, clock, channels, _fmtp_key(fmtp.get(pt, "")))
        for pt, (name, clock, channels) in codecs.items():
            if name == "rtx":
                apt = _apt(fmtp.get(pt, ""))
                base = keys.get(apt) if apt is not None else None
                if base is not None:
                    keys[pt] = ("rtx", clock, channels, "|".join(map(str, base)))
        return keys

    def extensions(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for line in self.lines:
            if line.startswith("a=extmap:"):
                id_text, _, uri = line[len("a=extmap:") :].partition(" ")
                found[uri.strip()] = int(id_text.split("/")[0])
        return found


def _apt(params: str) -> int | None:
    for part in params.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "apt" and value.isdigit():
            return int(value)
    return None


def _split(sdp: str) -> tuple[list[str], list[_Section]]:
    head: list[str] = []
    sections: list[_Section] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append(_Section([line]))
        elif sections:
            sections[-1].lines.append(line)
        else:
            head.append(line)
    return head, sections


def harmonize_offer(offer: str, reference: str) -> str:
    """Renumber ``offer``'s payload types and extension ids to agree with ``reference``."""
    _, reference_sections = _split(reference)
    known_pt: dict[CodecKey, int] = {}
    known_ext: dict[str, int] = {}
    used_pts: set[int] = set()
    used_ext: set[int] = set()
    for section in reference_sections:
        for pt, key in section.keys().items():
            known_pt.setdefault(key, pt)
        used_pts.update(section.codecs())
        for uri, ext_id in section.extensions().items():
            known_ext.setdefault(uri, ext_id)
            used_ext.add(ext_id)

    def number_for(key: CodecKey, current: int) -> int:
        if key in known_pt:
            return known_pt[key]
        if current < 96 and current not in used_pts:
            chosen = current  # static payload types (PCMU 0, G722 9...) keep theirs
        else:
            chosen = next(pt for pt in DYNAMIC_PAYLOAD_TYPES if pt not in used_pts)
        known_pt[key] = chosen
        used_pts.add(chosen)
        return chosen

    def extension_for(uri: str) -> int:
        if uri not in known_ext:
            free = next(i for i in EXTENSION_IDS if i not in used_ext)
            known_ext[uri] = free
            used_ext.add(free)
        return known_ext[uri]

    head, sections = _split(offer)
    out = list(head)
    for section in sections:
        keys = section.keys()
        mapping = {pt: number_for(key, pt) for pt, key in keys.items() if key[0] != "rtx"}
        mapping.update({pt: number_for(key, pt) for pt, key in keys.items() if key[0] == "rtx"})
        for line in section.lines:
            out.append(_rewrite(line, mapping, extension_for))
    return "\r\n".join(out) + "\r\n"


def _rewrite(line: str, mapping: dict[int, int], extension_for: Callable[[str], int]) -> str:
    if line.startswith("m="):
        fields = line.split(" ")
        formats = [str(mapping.get(int(f), int(f))) if f.isdigit() else f for f in fields[3:]]
        return " ".join(fields[:3] + formats)
    for prefix in ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"):
        if line.startswith(prefix):
            pt_text, sep, rest = line[len(prefix) :].partition(" ")
            if pt_text.isdigit():
                pt_text = str(mapping.get(int(pt_text), int(pt_text)))
            if prefix == "a=fmtp:":
                rest = ";".join(
                    f"apt={mapping.get(int(v), int(v))}" if n == "apt" and v.isdigit() else p
                    for p in rest.split(";")
                    for n, _, v in [p.strip().partition("=")]
                )
            return f"{prefix}{pt_text}{sep}{rest}"
    if line.startswith("a=extmap:"):
        id_text, _, uri = line[len("a=extmap:") :].partition(" ")
        direction = id_text.partition("/")[1] + id_text.partition("/")[2]
        return f"a=extmap:{extension_for(uri.strip())}{direction} {uri.strip()}"
    return line


# ---------------------------------------------------------------------------------------------
# A room's VideoCodecs: what a publisher may send
# ---------------------------------------------------------------------------------------------

# Video payload formats that are not codecs of their own: retransmission and redundancy.
_VIDEO_HELPERS = ("rtx", "red", "ulpfec", "flexfec-03")


def keep_video_codecs(offer: str, allowed: list[str]) -> str:
    """``offer`` with its video sections offering only the codecs in ``allowed`` (VP8, H264,
    any case), so the answer picks one of them: Twilio's VideoCodecs are "the video codecs that
    are supported when publishing a track in the room". RTX of a removed codec goes with it. A
    section that offers none of them is left as it is (the track service then refuses its
    track, 53125), so the rest of the offer is still answered."""
    wanted = {codec.lower() for codec in allowed}
    head, sections = _split(offer)
    out: list[str | None] = list(head)
    for section in sections:
        if not section.lines[0].startswith("m=video"):
            out.extend(section.lines)
            continue
        codecs, fmtp = section.codecs(), section.fmtp()
        primary = {pt for pt, (name, _, _) in codecs.items() if name not in _VIDEO_HELPERS}
        kept = {pt for pt in primary if codecs[pt][0] in wanted}
        if not kept or kept == primary:
            out.extend(section.lines)
            continue
        for pt, (name, _, _) in codecs.items():
            apt = _apt(fmtp.get(pt, ""))
            if name in _VIDEO_HELPERS and (apt is None or apt in kept):
                kept.add(pt)
        out.extend(_only_formats(line, kept) for line in section.lines)
    return "\r\n".join(line for line in out if line is not None) + "\r\n"


def _only_formats(line: str, kept: set[int]) -> str | None:
    """``line`` of a media section without the payload types outside ``kept``."""
    if line.startswith("m="):
        fields = line.split(" ")
        formats = [f for f in fields[3:] if not f.isdigit() or int(f) in kept]
        return " ".join(fields[:3] + formats)
    for prefix in ("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"):
        if line.startswith(prefix):
            pt_text = line[len(prefix) :].partition(" ")[0]
            if pt_text.isdigit() and int(pt_text) not in kept:
                return None
    return line


def announce(sdp: str, address: str) -> str:
    """Replace the worker's own (non-loopback) candidate addresses with ``address``.

    For a worker behind 1:1 NAT (a cloud VM's public IP, a node's external address): clients must
    reach the announced address, while the worker keeps its sockets on the local one.
    """
    out: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split(" ")
            # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ..
            if len(fields) > 5 and not _is_loopback(fields[4]):
                fields[4] = address
            line = " ".join(fields)
        elif line.startswith("c=IN ") and not _is_loopback(line.rsplit(" ", 1)[-1]):
            family = "IP6" if ":" in address else "IP4"
            line = f"c=IN {family} {address}"
        out.append(line)
    return "\r\n".join(out) + "\r\n"


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"
