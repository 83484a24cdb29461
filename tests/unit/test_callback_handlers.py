"""The callback service's NATS handlers, wired by bootstrap() on fakes, under FastStream's
TestNatsBroker: consumed events reach intake parsed once, unreadable ones are dropped without
stopping the consumer, and the delivery-log RPC answers with typed replies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from unittest import mock

import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from atrium_callback import handlers
from atrium_callback.bootstrap import bootstrap
from atrium_shared import errors, subjects
from atrium_shared.callbacks import DeliveryList, DeliveryQuery
from atrium_shared.events import DomainEvent, parse_event
from atrium_shared.rpc import RpcReply
from atrium_shared.settings import Settings
from tests.support.fakes.callback import CallbackFakes, RoomEvents, delivery_record

SETTINGS = Settings()


@pytest.fixture
def fakes() -> CallbackFakes:
    return CallbackFakes()


@pytest.fixture
async def broker(fakes: CallbackFakes) -> AsyncIterator[NatsBroker]:
    async with TestNatsBroker(fakes.service(SETTINGS).broker) as broker:
        yield broker


async def publish(broker: NatsBroker, event: DomainEvent | bytes, subject: str = "") -> None:
    if not subject:
        assert not isinstance(event, bytes)
        subject = subjects.event_subject(event.account_sid, event.room_sid, event.event_type)
    body = event if isinstance(event, bytes) else event.model_dump_json().encode()
    await broker.publish(body, subject, stream=subjects.EVENTS_STREAM_NAME)


async def test_a_consumed_event_is_parsed_once_and_queued(
    broker: NatsBroker, fakes: CallbackFakes
) -> None:
    room = RoomEvents(fakes.clock)
    created = room.created()
    with mock.patch.object(handlers, "parse_event", wraps=parse_event) as parsing:
        await publish(broker, created)
    assert parsing.call_count == 1
    [pending] = fakes.store.queued(room.sid)
    assert pending.event == created
    assert fakes.store.due[room.sid] == fakes.clock.now()


async def test_a_redelivered_event_is_queued_once(broker: NatsBroker, fakes: CallbackFakes) -> None:
    room = RoomEvents(fakes.clock)
    created = room.created()
    await publish(broker, created)
    await publish(broker, created)
    assert len(fakes.store.queued(room.sid)) == 1


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"event_type": "room-created", "account_sid": 5}', b"{}"]
)
async def test_an_unreadable_event_is_dropped_and_the_next_one_taken(
    broker: NatsBroker, fakes: CallbackFakes, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    await publish(broker, body, "atrium.events.x.y.room-created")
    assert "dropping unreadable event" in caplog.text
    assert fakes.store.seen == set()
    room = RoomEvents(fakes.clock)
    await publish(broker, room.created())
    assert len(fakes.store.queued(room.sid)) == 1


async def test_an_event_not_stored_is_nacked_for_redelivery(
    broker: NatsBroker, fakes: CallbackFakes, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.store.fail("take_in", ConnectionError("redis down"))
    room = RoomEvents(fakes.clock)
    created = room.created()
    with mock.patch("faststream.nats.message.NatsMessage.nack", autospec=True) as nack:
        await publish(broker, created)
    assert nack.call_count == 1
    assert nack.call_args.kwargs == {"delay": handlers.REDELIVERY_DELAY_SECONDS}
    assert "it will be redelivered" in caplog.text
    assert fakes.store.seen == set()
    await publish(broker, created)  # JetStream's redelivery
    assert len(fakes.store.queued(room.sid)) == 1


async def ask(broker: NatsBroker, request: DeliveryQuery | dict[str, object]) -> RpcReply:
    message = await broker.request(request, subjects.CALLBACK_DELIVERIES)
    return RpcReply.model_validate_json(message.body)


async def test_delivery_log_rpc_replies_with_the_filtered_records(
    broker: NatsBroker, fakes: CallbackFakes
) -> None:
    fakes.store.log = [delivery_record(2, "RM2"), delivery_record(1, "RM1")]

    reply = await ask(broker, DeliveryQuery(room_sid="RM1"))

    assert reply.error is None
    records = DeliveryList.model_validate(reply.result).records
    assert records == [fakes.store.log[1]]
    dead = await ask(broker, DeliveryQuery(kind="dead-letters"))
    assert DeliveryList.model_validate(dead.result).records == []


async def test_delivery_log_rpc_failure_is_a_typed_error_reply(
    broker: NatsBroker, fakes: CallbackFakes
) -> None:
    fakes.store.fail("deliveries", ConnectionError("redis down"))
    reply = await ask(broker, DeliveryQuery())
    assert reply.result is None and reply.error is not None
    assert (reply.error.code, reply.error.status) == (errors.INTERNAL, 500)


def test_bootstrap_without_fakes_wires_redis_and_closes_its_http_client() -> None:
    """No connection is opened: clients connect on first use, and nothing is used here."""
    service = bootstrap(SETTINGS)
    assert service.redis is not None
    assert len(service.loops) == len(service.on_drain) == len(service.on_stopped) == 1


def test_bootstrap_on_fakes_needs_no_redis(fakes: CallbackFakes) -> None:
    service = fakes.service(SETTINGS)
    assert service.redis is None
    assert service.on_stopped == []  # the fake sender has nothing to close
