"""The SDP facts the SDK needs: each m-section's mid, kind, msid track id and direction."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaSection:
    kind: str  # audio, video or application
    mid: str | None
    track_id: str | None  # the track-id part of a=msid
    direction: str


def media_sections(sdp: str) -> list[MediaSection]:
    sections: list[MediaSection] = []
    current: dict[str, str | None] | None = None

    def close() -> None:
        if current is not None:
            sections.append(
                MediaSection(
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


def track_ids_by_mid(sdp: str) -> dict[str, str]:
    """mid -> msid track id of the sections whose author sends media."""
    return {
        s.mid: s.track_id
        for s in media_sections(sdp)
        if s.mid is not None
        and s.track_id
        and s.kind in ("audio", "video")
        and s.direction in ("sendrecv", "sendonly")
    }
