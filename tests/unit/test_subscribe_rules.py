"""SubscribeRules without I/O: Twilio's validation (53215) and the in-order evaluation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from atrium_shared.errors import AtriumError
from atrium_shared.models import TrackInfo
from atrium_shared.track_api import SubscribeRule
from atrium_track import domain

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ACCOUNT = "AC" + "0" * 32
ROOM = "RM" + "1" * 32
ALICE = "PA" + "a" * 32
BOB = "PA" + "b" * 32
CAROL = "PA" + "c" * 32
IDENTITIES = {ALICE: "alice", BOB: "bob", CAROL: "Carol"}


def track(publisher: str, name: str, kind: str, index: int) -> TrackInfo:
    return TrackInfo(
        sid=f"MT{index:032x}",
        room_sid=ROOM,
        account_sid=ACCOUNT,
        participant_sid=publisher,
        name=name,
        kind=kind,
        enabled=True,
        date_created=NOW,
        date_updated=NOW,
    )


ROOM_TRACKS = [
    track(ALICE, "mic", "audio", 1),
    track(ALICE, "cam", "video", 2),
    track(ALICE, "chat", "data", 3),
    track(BOB, "mic", "audio", 4),
    track(BOB, "cam", "video", 5),
    track(CAROL, "screen", "video", 6),
]


def names(subscriber: str, rules: Any) -> list[str]:
    parsed = domain.parse_rules(json.dumps(rules))
    chosen = domain.tracks_for(subscriber, ROOM_TRACKS, parsed, IDENTITIES)
    return [f"{IDENTITIES[t.participant_sid]}:{t.name}" for t in chosen]


def rejected(text: str | None) -> AtriumError:
    with pytest.raises(AtriumError) as caught:
        domain.parse_rules(text)
    assert caught.value.code == 53215 and caught.value.status == 400
    assert caught.value.message == "Invalid Subscribe Rule(s)"
    return caught.value


# Validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "   ",
        "not json",
        "[]",
        '{"rules": []}',
        '{"type": "include", "all": true}',  # an object without `rules`
        '{"rules": [{"type": "include", "all": true}], "extra": 1}',
        '"include"',
        "[1]",
        '[{"all": true}]',  # missing type
        '[{"type": "subscribe", "all": true}]',
        '[{"type": "include", "all": false}]',
        '[{"type": "include", "all": "false"}]',
        '[{"type": "include", "all": true, "kind": "audio"}]',
        '[{"type": "include", "all": true, "publisher": "alice"}]',
        '[{"type": "include", "kind": "audio", "kind": "video"}]',  # the same filter twice
        '[{"type": "include", "publisher": "a", "publisher": "a"}]',
        '[{"type": "include", "kind": "screen"}]',
        '[{"type": "include", "kind": "Audio"}]',
        '[{"type": "include"}]',  # no filter at all
        '[{"type": "include", "publisher": 5}]',
        '[{"type": "include", "trakc": "cam"}]',
        json.dumps([{"type": "include", "all": True}] * 21),
        "[" * 100_000 + "]" * 100_000,  # json.loads: RecursionError
        '{"rules": ' * 50_000 + "[]" + "}" * 50_000,
        '[{"type": "include", "publisher": ' + "[" * 900 + "]" * 900 + "}]",
    ],
)
def test_invalid_rule_sets_are_53215(text: str | None) -> None:
    rejected(text)


def test_accepted_forms() -> None:
    include_all = [SubscribeRule(type="include", all=True)]
    assert domain.parse_rules('[{"type":"include","all":true}]') == include_all
    assert domain.parse_rules('{"rules":[{"type":"include","all":true}]}') == include_all
    assert domain.parse_rules('[{"type":"include","all":"true"}]') == include_all
    assert domain.parse_rules('[{"type":"include","all":"True"}]') == include_all
    # What GET returns (every key, null for unused) can be sent back unchanged.
    echoed = [
        {
            "type": "exclude",
            "all": None,
            "publisher": "bob",
            "track": None,
            "kind": "video",
            "priority": None,
        }
    ]
    assert domain.parse_rules(json.dumps(echoed)) == [
        SubscribeRule(type="exclude", publisher="bob", kind="video")
    ]
    twenty = domain.parse_rules(json.dumps([{"type": "exclude", "kind": "data"}] * 20))
    assert len(twenty) == 20
    # twilio-python's json.dumps spacing, and every filter at once.
    full = domain.parse_rules(
        json.dumps(
            [
                {
                    "type": "include",
                    "publisher": "alice",
                    "track": "cam",
                    "kind": "video",
                    "priority": "standard",
                }
            ]
        )
    )
    assert full[0].model_dump() == {
        "type": "include",
        "all": None,
        "publisher": "alice",
        "track": "cam",
        "kind": "video",
        "priority": "standard",
    }


# Evaluation ----------------------------------------------------------------------------------
def test_default_is_everything_but_ones_own() -> None:
    assert domain.DEFAULT_RULES == (SubscribeRule(type="include", all=True),)
    chosen = domain.tracks_for(BOB, ROOM_TRACKS, domain.DEFAULT_RULES, IDENTITIES)
    assert [t.participant_sid for t in chosen] == [ALICE, ALICE, ALICE, CAROL]
    assert names(BOB, [{"type": "include", "all": True}]) == [
        "alice:mic",
        "alice:cam",
        "alice:chat",
        "Carol:screen",
    ]


def test_rules_apply_in_order_from_an_empty_set() -> None:
    # exclude first removes nothing from the empty set; include then adds.
    assert names(BOB, [{"type": "exclude", "kind": "video"}, {"type": "include", "all": True}]) == [
        "alice:mic",
        "alice:cam",
        "alice:chat",
        "Carol:screen",
    ]
    assert names(BOB, [{"type": "include", "all": True}, {"type": "exclude", "kind": "video"}]) == [
        "alice:mic",
        "alice:chat",
    ]
    assert names(BOB, [{"type": "exclude", "all": True}]) == []
    assert names(
        BOB,
        [
            {"type": "include", "all": True},
            {"type": "exclude", "all": True},
            {"type": "include", "publisher": "Carol"},
        ],
    ) == ["Carol:screen"]


def test_filters_and_together() -> None:
    assert names(BOB, [{"type": "include", "publisher": "alice", "kind": "video"}]) == ["alice:cam"]
    assert names(CAROL, [{"type": "include", "track": "mic", "kind": "audio"}]) == [
        "alice:mic",
        "bob:mic",
    ]
    assert names(CAROL, [{"type": "include", "track": "mic", "kind": "video"}]) == []
    assert names(BOB, [{"type": "include", "kind": "video", "priority": "standard"}]) == [
        "alice:cam",
        "Carol:screen",
    ]
    assert names(BOB, [{"type": "include", "kind": "video", "priority": "high"}]) == []


def test_publisher_by_identity_or_sid_and_track_by_name_or_sid() -> None:
    assert names(BOB, [{"type": "include", "publisher": ALICE}]) == [
        "alice:mic",
        "alice:cam",
        "alice:chat",
    ]
    assert names(BOB, [{"type": "include", "publisher": "carol"}]) == []  # case-sensitive
    assert names(BOB, [{"type": "include", "publisher": "Carol"}]) == ["Carol:screen"]
    assert names(BOB, [{"type": "include", "track": ROOM_TRACKS[1].sid}]) == ["alice:cam"]
    assert names(BOB, [{"type": "include", "track": "CAM"}]) == []
    assert names(
        ALICE,
        [{"type": "include", "all": True}, {"type": "exclude", "publisher": "bob", "track": "cam"}],
    ) == ["bob:mic", "Carol:screen"]


def test_never_oneself_even_when_named() -> None:
    assert names(ALICE, [{"type": "include", "publisher": "alice"}]) == []
    for t in ROOM_TRACKS:
        assert not domain.should_subscribe(
            t.participant_sid, t, [SubscribeRule(type="include", all=True)]
        )


def test_subscribers_of_a_new_track_follow_each_ones_rules() -> None:
    cam = ROOM_TRACKS[1]
    no_video = domain.parse_rules(
        '[{"type":"include","all":true},{"type":"exclude","kind":"video"}]'
    )
    only_alice = domain.parse_rules('[{"type":"include","publisher":"alice"}]')
    present = [ALICE, BOB, CAROL]
    assert domain.subscribers_of(cam, present) == [BOB, CAROL]
    assert domain.subscribers_of(cam, present, {BOB: no_video}, "alice") == [CAROL]
    assert domain.subscribers_of(cam, present, {BOB: no_video, CAROL: only_alice}, "alice") == [
        CAROL
    ]
    # A rule by identity cannot match when the identity is unknown; by SID it still does.
    assert domain.subscribers_of(cam, present, {CAROL: only_alice}) == [BOB]


def test_set_rules_versions_and_dates() -> None:
    current = domain.default_rules(ACCOUNT, ROOM, BOB)
    assert current.version == 0 and current.date_created is None
    rules = domain.parse_rules('[{"type":"exclude","all":true}]')
    first = domain.set_rules(current, rules, NOW)
    assert (first.version, first.date_created, first.date_updated) == (1, NOW, NOW)
    later = NOW + timedelta(seconds=9)
    second = domain.set_rules(first, list(domain.DEFAULT_RULES), later)
    assert (second.version, second.date_created, second.date_updated) == (2, NOW, later)
    assert second.rules == list(domain.DEFAULT_RULES)


def test_the_priority_filter_selects_by_each_tracks_real_publish_priority() -> None:
    high_cam = ROOM_TRACKS[1].model_copy(update={"priority": "high"})
    low_screen = ROOM_TRACKS[5].model_copy(update={"priority": "low"})
    room = [ROOM_TRACKS[0], high_cam, ROOM_TRACKS[2], low_screen]

    def chosen(rules: Any) -> list[str]:
        parsed = domain.parse_rules(json.dumps(rules))
        return [t.name for t in domain.tracks_for(BOB, room, parsed, IDENTITIES)]

    assert chosen([{"type": "include", "kind": "video", "priority": "high"}]) == ["cam"]
    assert chosen([{"type": "include", "priority": "low"}]) == ["screen"]
    assert chosen([{"type": "include", "priority": "standard"}]) == ["mic", "chat"]
    assert chosen([{"type": "include", "all": True}, {"type": "exclude", "priority": "low"}]) == [
        "mic",
        "cam",
        "chat",
    ]
    # The same track, its priority changed: the rule follows it.
    rule = SubscribeRule(type="include", kind="video", priority="high")
    assert domain.rule_matches(rule, high_cam, "alice")
    assert not domain.rule_matches(rule, high_cam.model_copy(update={"priority": "low"}), "alice")
    assert domain.subscribers_of(high_cam, [BOB, CAROL], {BOB: [rule]}, "alice") == [BOB, CAROL]
    assert domain.subscribers_of(
        high_cam.model_copy(update={"priority": "standard"}), [BOB, CAROL], {BOB: [rule]}, "alice"
    ) == [CAROL]


def test_only_rules_with_a_priority_filter_depend_on_priority_and_are_redecided() -> None:
    assert not domain.filters_on_priority(domain.DEFAULT_RULES)
    assert not domain.filters_on_priority(domain.parse_rules('[{"type":"include","kind":"video"}]'))
    assert domain.filters_on_priority(
        domain.parse_rules('[{"type":"include","all":true},{"type":"exclude","priority":"low"}]')
    )
    rules = domain.set_rules(
        domain.default_rules(ACCOUNT, ROOM, BOB),
        domain.parse_rules('[{"type":"include","priority":"high"}]'),
        NOW,
    )
    again = domain.redecided(rules)
    assert again.version == rules.version + 1
    # What REST shows (the rules and their dates) does not change.
    assert again.model_dump(exclude={"version"}) == rules.model_dump(exclude={"version"})
