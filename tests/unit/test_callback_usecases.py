"""The callback use cases on in-memory fakes: intake (projection, duplicates, rooms without a
callback), one delivery try and what follows from it (signing, retries with backoff, Twilio's
URL-fragment overrides, dead letters, unreadable heads, a lost lease), and the delivery log."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from twilio.request_validator import RequestValidator

from atrium_callback.bootstrap import CallbackService
from atrium_callback.domain import AttemptResult, PendingCallback, Timeouts, projection_from_event
from atrium_callback.usecases import Intake
from atrium_shared.callbacks import DeliveryQuery
from atrium_shared.events import DomainEvent, ParticipantAnonymized, ParticipantConnected
from atrium_shared.settings import Settings
from tests.support.fakes.callback import (
    ACCOUNT,
    AUTH_TOKEN,
    CallbackFakes,
    RoomEvents,
    delivery_record,
)

SETTINGS = Settings(
    callback_max_attempts=4,
    callback_backoff_initial_seconds=1.0,
    callback_backoff_max_seconds=3.0,
    callback_connect_timeout_ms=5000,
    callback_read_timeout_ms=15000,
    callback_total_timeout_ms=15000,
)
OWNER = "dispatcher-under-test"


@pytest.fixture
def fakes() -> CallbackFakes:
    return CallbackFakes()


@pytest.fixture
def service(fakes: CallbackFakes) -> CallbackService:
    return fakes.service(SETTINGS)


def room(fakes: CallbackFakes, url: str | None = "https://app.example.com/status") -> RoomEvents:
    return RoomEvents(fakes.clock, url=url)


async def take_in(service: CallbackService, *events: DomainEvent) -> list[str]:
    return [await service.intake.accept(event) for event in events]


async def deliver(fakes: CallbackFakes, service: CallbackService, room_sid: str) -> bool:
    """One try of the room's head, holding its lease as the dispatcher would."""
    fakes.store.leases[room_sid] = OWNER
    return await service.delivery.deliver_head(room_sid, OWNER)


async def deliver_until_settled(
    fakes: CallbackFakes, service: CallbackService, room_sid: str, limit: int = 20
) -> list[float]:
    """Try the head until it is finished, waiting out each backoff; returns the waits."""
    waits: list[float] = []
    for _ in range(limit):
        before = len(fakes.store.log)
        if await deliver(fakes, service, room_sid) or len(fakes.store.log) > before:
            return waits
        wait = (fakes.store.due[room_sid] - fakes.clock.now()).total_seconds()
        waits.append(wait)
        fakes.clock.advance(wait)
    raise AssertionError("the callback never settled")


# Intake ---------------------------------------------------------------------------------------


def intake_counting_wakeups(fakes: CallbackFakes) -> tuple[Intake, list[None]]:
    woken: list[None] = []
    return Intake(fakes.store, fakes.clock, fakes.tracing, lambda: woken.append(None)), woken


async def test_intake_queues_the_event_with_its_trace_and_remembers_the_room(
    fakes: CallbackFakes,
) -> None:
    intake, woken = intake_counting_wakeups(fakes)
    events = room(fakes)
    created = events.created()

    assert await intake.accept(created) == "queued"

    assert fakes.store.room(events.sid) == projection_from_event(created)
    [pending] = fakes.store.queued(events.sid)
    assert pending == PendingCallback(event=created, trace={"traceparent": "trace-1"})
    assert fakes.store.due[events.sid] == fakes.clock.now()
    assert len(woken) == 1


async def test_intake_wakes_the_dispatcher_only_when_it_queued(fakes: CallbackFakes) -> None:
    intake, woken = intake_counting_wakeups(fakes)
    silent = room(fakes, url=None)
    created = room(fakes).created()
    assert await intake.accept(silent.created()) == "no-callback"
    assert await intake.accept(created) == "queued"
    assert await intake.accept(created) == "duplicate"
    assert len(woken) == 1


async def test_a_redelivered_event_is_taken_in_once(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    created, joined = events.created(), events.connected()
    outcomes = await take_in(service, created, joined, created, joined)
    assert outcomes == ["queued", "queued", "duplicate", "duplicate"]
    assert [p.event.event_id for p in fakes.store.queued(events.sid)] == [
        created.event_id,
        joined.event_id,
    ]


async def test_a_delivered_event_redelivered_later_is_not_sent_again(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    created = events.created()
    await take_in(service, created)
    assert await deliver(fakes, service, events.sid)
    assert await take_in(service, created) == ["duplicate"]
    assert fakes.store.queued(events.sid) == []
    assert len(fakes.sender.sent) == 1


async def test_a_room_without_callback_queues_nothing(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes, url=None)
    outcomes = await take_in(service, events.created(), events.connected(), events.ended())
    assert outcomes == ["no-callback"] * 3
    assert fakes.store.rooms == {} and fakes.store.due == {}


async def test_events_of_a_room_never_seen_queue_nothing(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    events.created()  # not consumed: e.g. trimmed from the stream
    assert await take_in(service, events.connected()) == ["no-callback"]


async def test_the_end_without_callback_keeps_the_creations_projection(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    created = events.created()
    finished = events.ended(status_callback=None, unique_name="renamed")
    assert await take_in(service, created, finished) == ["queued", "queued"]
    assert fakes.store.room(events.sid) == projection_from_event(created)
    assert events.sid in fakes.store.ended  # forgotten a while after its last callback


async def test_an_end_fills_in_for_a_room_never_seen(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    events.created()  # missed
    finished = events.ended()
    assert await take_in(service, finished) == ["queued"]
    assert fakes.store.room(events.sid) == projection_from_event(finished)


async def test_a_creation_defines_the_room_again(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    first = events.created()
    second = events.created(status_callback="https://other.example.com/hook", unique_name="b")
    await take_in(service, first, second)
    projection = fakes.store.room(events.sid)
    assert projection is not None
    assert (projection.url, projection.room_name) == ("https://other.example.com/hook", "b")
    # ... and one without a callback forgets it: what follows goes nowhere.
    assert await take_in(service, events.created(status_callback=None)) == ["no-callback"]
    assert await take_in(service, events.connected()) == ["no-callback"]


async def test_intake_failure_propagates_so_the_event_is_redelivered(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    fakes.store.fail("take_in", ConnectionError("redis down"))
    created = room(fakes).created()
    with pytest.raises(ConnectionError):
        await service.intake.accept(created)
    assert await service.intake.accept(created) == "queued"


# One delivery -------------------------------------------------------------------------------


async def test_delivery_posts_twilios_signed_params_and_logs_it(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    created = events.created()
    await take_in(service, created)

    assert await deliver(fakes, service, events.sid) is True  # go on with the next one

    [sent] = fakes.sender.sent
    assert sent.request.method == "POST" and sent.request.url == events.url
    assert sent.params["StatusCallbackEvent"] == "room-created"
    assert sent.params["RoomSid"] == events.sid and sent.params["RoomName"] == "daily"
    assert sent.params["AccountSid"] == ACCOUNT and sent.params["SequenceNumber"] == "0"
    assert RequestValidator(AUTH_TOKEN).validate(
        sent.request.url, sent.params, sent.request.signature
    )
    assert sent.trace == {"traceparent": "trace-1"}  # sent within the event's trace
    assert sent.timeouts == Timeouts(5.0, 15.0, 15.0)
    [record] = fakes.store.log
    assert record.model_dump(exclude={"first_attempt_at", "finished_at"}) == {
        "event_id": created.event_id,
        "account_sid": ACCOUNT,
        "room_sid": events.sid,
        "event_type": "room-created",
        "sequence_number": 0,
        "url": events.url,
        "method": "POST",
        "outcome": "delivered",
        "attempts": 1,
        "last_status": 200,
        "last_error": None,
    }
    assert fakes.store.dead == [] and fakes.store.queued(events.sid) == []
    assert events.sid not in fakes.store.due


async def test_get_delivery_signs_the_url_with_the_params(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = RoomEvents(fakes.clock, url="https://app.example.com/hook?app=x", method="GET")
    await take_in(service, events.created())
    await deliver(fakes, service, events.sid)
    [sent] = fakes.sender.sent
    assert sent.request.method == "GET" and sent.request.form is None
    assert sent.request.url.startswith("https://app.example.com/hook?app=x&")
    assert sent.params["StatusCallbackEvent"] == "room-created"
    assert RequestValidator(AUTH_TOKEN).validate(sent.request.url, {}, sent.request.signature)


async def test_credentials_become_basic_auth_and_the_fragment_is_never_sent(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes, url="https://user:secret@app.example.com/s#rc=0&ct=1000")
    await take_in(service, events.created())
    await deliver(fakes, service, events.sid)
    [sent] = fakes.sender.sent
    assert sent.request.url == "https://app.example.com/s"
    assert sent.request.basic_auth == ("user", "secret")
    assert sent.timeouts.connect_s == 1.0
    assert fakes.store.log[0].url == "https://app.example.com/s"


async def test_the_room_projection_names_participant_callbacks(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    await take_in(service, events.created(), events.connected("bob"))
    assert await deliver(fakes, service, events.sid)
    assert await deliver(fakes, service, events.sid)
    joined = fakes.sender.sent[1].params
    assert joined["StatusCallbackEvent"] == "participant-connected"
    assert (joined["RoomName"], joined["ParticipantIdentity"]) == ("daily", "bob")
    assert joined["SequenceNumber"] == "1"


async def test_a_failed_try_is_rescheduled_with_its_attempt_state(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    await take_in(service, events.created())
    fakes.sender.fail(1, AttemptResult(status=503))
    started = fakes.clock.now()

    assert await deliver(fakes, service, events.sid) is False

    assert fakes.store.due[events.sid] == started + timedelta(seconds=1.0)
    assert events.sid not in fakes.store.leases  # released for whoever is due first
    [pending] = fakes.store.queued(events.sid)
    assert pending.attempt.attempts == 1
    assert pending.attempt.first_attempt_at == started
    assert (pending.attempt.last_status, pending.attempt.last_error) == (503, "HTTP 503")
    assert fakes.store.log == []


async def test_retries_back_off_exponentially_up_to_the_cap_then_succeed(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    await take_in(service, events.created())
    fakes.sender.fail(3, AttemptResult(failure="ct", error="ConnectError: refused"))
    started = fakes.clock.now()

    waits = await deliver_until_settled(fakes, service, events.sid)

    assert waits == [1.0, 2.0, 3.0]  # 1, 2, 4 capped at 3
    assert [sent.at - started for sent in fakes.sender.sent] == [
        timedelta(seconds=s) for s in (0, 1, 3, 6)
    ]
    [record] = fakes.store.log
    assert (record.outcome, record.attempts, record.last_status) == ("delivered", 4, 200)
    assert record.first_attempt_at == started


async def test_after_max_attempts_the_callback_is_dead_lettered(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    created = events.created()
    await take_in(service, created, events.ended())
    fakes.sender.fail(4, AttemptResult(status=500))

    await deliver_until_settled(fakes, service, events.sid)

    [dead] = fakes.store.dead
    assert dead == fakes.store.log[0]
    assert (dead.event_id, dead.outcome, dead.attempts) == (created.event_id, "dead-letter", 4)
    assert (dead.last_status, dead.last_error) == (500, "HTTP 500")
    # The next callback is the room's head now, due at once.
    assert fakes.store.due[events.sid] == fakes.clock.now()
    assert [p.event.event_type for p in fakes.store.queued(events.sid)] == ["room-ended"]


@pytest.mark.parametrize(
    ("result", "attempts"),
    [
        (AttemptResult(status=404), 1),  # 4xx: the application said no
        (AttemptResult(status=429), 4),  # too many requests: retried
        (AttemptResult(status=502), 4),
        (AttemptResult(failure="rt", error="ReadTimeout"), 4),
        (AttemptResult(failure="ct", error="InvalidURL", permanent=True), 1),
    ],
)
async def test_which_failures_atrium_retries_by_default(
    fakes: CallbackFakes, service: CallbackService, result: AttemptResult, attempts: int
) -> None:
    events = room(fakes)
    await take_in(service, events.created())
    fakes.sender.fail(10, result)
    await deliver_until_settled(fakes, service, events.sid)
    assert len(fakes.sender.sent) == attempts
    assert fakes.store.dead[0].attempts == attempts


@pytest.mark.parametrize(
    ("fragment", "result", "attempts"),
    [
        ("rc=0", AttemptResult(status=503), 1),
        # Twilio's rules once rc or rp is given: rp defaults to ct,rt; 5xx is not retried ...
        ("rc=3", AttemptResult(status=503), 1),
        ("rc=3", AttemptResult(failure="ct"), 4),
        # ... and rc defaults to 1.
        ("rp=5xx", AttemptResult(status=503), 2),
        ("rc=2&rp=4xx", AttemptResult(status=404), 3),
        ("rc=5&rp=all", AttemptResult(status=404), 6),
        ("rc=9", AttemptResult(failure="rt"), 6),  # clamped to 5 retries
        # An rp naming nothing known is ignored: Atrium's own policy.
        ("rp=bogus", AttemptResult(failure="rt"), 4),
    ],
)
async def test_url_fragment_overrides_govern_retries(
    fakes: CallbackFakes,
    service: CallbackService,
    fragment: str,
    result: AttemptResult,
    attempts: int,
) -> None:
    events = room(fakes, url=f"https://app.example.com/s#{fragment}")
    await take_in(service, events.created())
    fakes.sender.fail(10, result)
    await deliver_until_settled(fakes, service, events.sid)
    assert len(fakes.sender.sent) == attempts
    assert all(sent.request.url == "https://app.example.com/s" for sent in fakes.sender.sent)


async def test_total_time_override_bounds_the_series_and_shrinks_the_last_timeouts(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes, url="https://app.example.com/s#rc=5&rp=all&tt=4500&rt=2000")
    await take_in(service, events.created())
    fakes.sender.takes = 1.0  # every try takes a second
    fakes.sender.fail(10, AttemptResult(status=500))

    waits = await deliver_until_settled(fakes, service, events.sid)

    # Tries at 0 s and 2 s (after 1 s + 1 s backoff); a third would start at 5 s > 4.5 s.
    assert waits == [1.0]
    first, second = fakes.sender.sent
    assert first.timeouts == Timeouts(4.5, 2.0, 4.5)
    assert second.timeouts == Timeouts(2.5, 2.0, 2.5)  # 2.5 s left of the 4.5 s
    assert fakes.store.dead[0].attempts == 2


@pytest.mark.parametrize("status", ["closed", "missing"])
async def test_no_active_account_means_a_dead_letter_without_a_request(
    fakes: CallbackFakes, service: CallbackService, status: str
) -> None:
    if status == "closed":
        fakes.accounts.add(ACCOUNT, AUTH_TOKEN, status="closed")
    else:
        fakes.accounts.accounts.clear()
    events = room(fakes)
    await take_in(service, events.created())
    assert await deliver(fakes, service, events.sid)
    assert fakes.sender.sent == []
    [dead] = fakes.store.dead
    assert (dead.attempts, dead.last_error) == (0, "account not found or not active")


async def test_an_unreadable_head_is_dropped_and_the_next_goes(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    await take_in(service, events.created())
    fakes.store.plant(events.sid, "broken", -1, '{"event": {"event_type": "nonsense"}}')

    assert await deliver(fakes, service, events.sid) is True  # dropped: go on
    assert fakes.sender.sent == [] and fakes.store.log == []
    assert await deliver(fakes, service, events.sid) is True
    assert fakes.sender.sequences(events.sid) == [0]


async def test_a_head_whose_room_is_forgotten_is_dropped(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    events = room(fakes)
    await take_in(service, events.created())
    del fakes.store.rooms[events.sid]  # expired
    assert await deliver(fakes, service, events.sid) is True
    assert fakes.sender.sent == [] and fakes.store.queued(events.sid) == []
    assert events.sid not in fakes.store.due


async def test_an_empty_queue_has_nothing_to_deliver(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    assert await deliver(fakes, service, room(fakes).sid) is False


async def test_a_lost_lease_means_the_result_is_not_recorded(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    """Another dispatcher took the room over (ours stalled): it delivers and logs the callback;
    ours must not log it a second time nor pop the next one."""
    events = room(fakes)
    await take_in(service, events.created(), events.connected())
    gate = fakes.sender.hold(lambda _: True)
    task = asyncio.create_task(deliver(fakes, service, events.sid))
    while not fakes.sender.sent:
        await asyncio.sleep(0)
    fakes.store.leases[events.sid] = "the other one"
    gate.set()
    assert await task is False
    assert fakes.store.log == []
    assert len(fakes.store.queued(events.sid)) == 2


# The delivery log ---------------------------------------------------------------------------


async def test_delivery_log_filters_newest_first(
    fakes: CallbackFakes, service: CallbackService
) -> None:
    other_account = "AC" + "f" * 32
    fakes.store.log = [
        delivery_record(3, "RM2"),
        delivery_record(2, "RM1", dead=True),
        delivery_record(1, "RM1", account_sid=other_account),
        delivery_record(0, "RM1"),
    ]
    fakes.store.dead = [fakes.store.log[1]]

    async def ids(query: DeliveryQuery) -> list[str]:
        return [r.event_id for r in (await service.deliveries.query(query)).records]

    assert await ids(DeliveryQuery()) == ["e3", "e2", "e1", "e0"]
    assert await ids(DeliveryQuery(limit=2)) == ["e3", "e2"]
    assert await ids(DeliveryQuery(limit=0)) == []
    assert await ids(DeliveryQuery(room_sid="RM1")) == ["e2", "e1", "e0"]
    assert await ids(DeliveryQuery(room_sid="RM1", account_sid=ACCOUNT)) == ["e2", "e0"]
    assert await ids(DeliveryQuery(account_sid=other_account)) == ["e1"]
    assert await ids(DeliveryQuery(kind="dead-letters")) == ["e2"]
    assert await ids(DeliveryQuery(kind="dead-letters", room_sid="RM2")) == []


async def test_an_anonymized_participant_leaves_no_identity_in_queued_callbacks(
    fakes: CallbackFakes,
) -> None:
    """Anonymize sends nothing itself; the queued callbacks that name the participant carry
    its SID as ParticipantIdentity from then on, the others stay as they were."""
    intake, woken = intake_counting_wakeups(fakes)
    events = room(fakes)
    created = events.created()
    alice, bob = events.connected("alice"), events.connected("bob")
    for event in (created, alice, bob):
        await intake.accept(event)
    anonymized = ParticipantAnonymized(
        account_sid=alice.account_sid,
        room_sid=events.sid,
        participant=alice.participant.model_copy(update={"identity": alice.participant.sid}),
    )
    assert await intake.accept(anonymized) == "no-callback"
    queued = fakes.store.queued(events.sid)
    assert [p.event.event_type for p in queued] == ["room-created", *["participant-connected"] * 2]
    identities = [
        p.event.participant.identity for p in queued if isinstance(p.event, ParticipantConnected)
    ]
    assert identities == [alice.participant.sid, "bob"]
    assert "alice" not in "".join(fakes.store.pending[events.sid].values())
    assert len(woken) == 3  # the anonymization queued nothing
