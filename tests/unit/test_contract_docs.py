"""`make docs`: every service's AsyncAPI document and the gateway's OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from atrium_cli import docs


def test_every_service_documents_its_subjects(tmp_path: Path) -> None:
    assert docs.main([str(tmp_path)]) == 0
    channels = {}
    for service in ("room", "participant", "track", "recording", "callback", "media"):
        document = json.loads((tmp_path / f"{service}.asyncapi.json").read_text())
        assert document["asyncapi"].startswith("3.")
        channels[service] = json.dumps(document["channels"])
    assert "atrium.rpc.room.create" in channels["room"]
    assert "atrium.rpc.participant.admit" in channels["participant"]
    assert "atrium.rpc.track.publish" in channels["track"]
    assert "atrium.rpc.recording.report" in channels["recording"]
    assert "atrium.events" in channels["callback"]
    assert "rsp" in channels["media"]
    # Message payloads are the pydantic models on the wire.
    room = json.loads((tmp_path / "room.asyncapi.json").read_text())
    assert "CreateRoomRequest" in json.dumps(room["components"])


def test_the_gateway_documents_the_rest_api(tmp_path: Path) -> None:
    docs.main([str(tmp_path)])
    openapi = json.loads((tmp_path / "gateway.openapi.json").read_text())
    paths = openapi["paths"]
    assert {"/v1/Rooms", "/v1/Rooms/{sid_or_name}", "/v1/Rooms/{room}/Participants"} <= set(paths)
    assert "application/x-www-form-urlencoded" in json.dumps(paths["/v1/Rooms"]["post"])
