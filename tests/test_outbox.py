"""The outbox: every reply stored before it is sent, retried with backoff, failures visible."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.exc import DBAPIError, OperationalError

import bot.service as service_module
from bot.service import Service
from conversations.delivery import Delivery, DeliveryError, RateLimited, Sent, Unreachable
from conversations.messages import Channel
from storage.models import Conversation, Identity, Message, OutboxItem, utcnow
from storage.repository import Tx
from storage.staff import ConsoleTx
from tests.conftest import Chat, statements_seen


class FlakySender:
    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.sent: list[tuple[str, str]] = []

    async def send(self, delivery: Delivery) -> Sent:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((delivery.address, delivery.reply.text))
        return Sent(f"provider-{len(self.sent)}")


async def make_due(service: Service) -> None:
    async with service.db.session() as s:
        await s.execute(update(OutboxItem).values(next_attempt_at=utcnow() - timedelta(seconds=1)))


async def outbox(service: Service) -> list[OutboxItem]:
    async with service.db.session() as s:
        return list(await s.scalars(select(OutboxItem).order_by(OutboxItem.id)))


async def test_replies_wait_in_the_outbox_and_are_sent_in_order(service: Service) -> None:
    chat = Chat(service, channel=Channel.TELEGRAM, sender="42")
    await chat.say("مرحبا")
    items = await outbox(service)
    assert [i.status for i in items] == ["pending", "pending"]
    sender = FlakySender([DeliveryError("HTTP 502")])
    service.senders["telegram"] = sender
    assert await service.deliver_due() == 0  # the first failed; the second waits behind it
    first, second = await outbox(service)
    assert (first.status, first.attempts, first.last_error) == ("pending", 1, "HTTP 502")
    assert first.next_attempt_at > utcnow() and second.attempts == 0
    assert await service.deliver_due() == 0  # the second stays behind the first's retry
    assert (await outbox(service))[1].status == "pending"
    await make_due(service)
    assert await service.deliver_due() == 2
    assert [text for _, text in sender.sent] == [r.text for r in chat.replies]
    assert all(i.status == "sent" and i.provider_id for i in await outbox(service))


async def test_a_send_recorded_again_after_a_conflict_is_counted_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing down a send may run twice (a batch split on SQLite, a deadlock on
    PostgreSQL): the replies sent and the failures are counted once, after the commit."""
    chat = Chat(service, channel=Channel.TELEGRAM, sender="43")
    await chat.say("مرحبا")
    service.senders["telegram"] = FlakySender([])
    recorded = Tx.record_outcomes
    conflicts = [DBAPIError("UPDATE outbox", {}, _Deadlock())]

    async def conflicting(self: Tx, records: Any) -> list[bool]:
        held = await recorded(self, records)
        if conflicts:
            raise conflicts.pop()
        return held

    monkeypatch.setattr(Tx, "record_outcomes", conflicting)
    service.group.batching = False  # every unit alone, as on PostgreSQL, retried on conflict
    counter = service.metrics.messages_out.labels("telegram")
    before = counter._value.get()
    assert await service.deliver_due() == 2
    assert service.group.stats.conflicts == 1 and not conflicts
    assert counter._value.get() - before == 2
    assert [i.status for i in await outbox(service)] == ["sent", "sent"]


async def delivering(service: Service) -> tuple[int, list[str]]:
    """One pass over the outbox: how many replies it sent, and the SQL statements it ran."""
    with statements_seen(service.db.engine) as statements:
        return await service.deliver_due(), statements


async def test_a_send_is_recorded_without_a_look_up_of_its_own_for_early_reports(
    service: Service,
) -> None:
    """A channel's report may come before a send is recorded; nearly always none has, and the
    record looks for one within its own statement rather than in one more for every reply."""
    chat = Chat(service, channel=Channel.TELEGRAM, sender="44")
    await chat.say("مرحبا")
    service.senders["telegram"] = FlakySender([])
    sent, statements = await delivering(service)
    assert sent == len(chat.replies)
    assert not [q for q in statements if q.startswith("SELECT") and "provider_reports" in q]
    assert [i.status for i in await outbox(service)] == ["sent"] * len(chat.replies)


async def test_the_outcomes_of_sends_answered_together_are_written_together(
    service: Service,
) -> None:
    """On SQLite the outcomes that wait for the writer together are written in one
    statement, not one each; on PostgreSQL each in a transaction of its own. Either way every
    reply is recorded as sent, under its own provider id."""
    chats = [Chat(service, channel=Channel.TELEGRAM, sender=f"8{n}") for n in range(6)]
    for chat in chats:
        await chat.say("مرحبا")
    sender = IdSender()
    service.senders["telegram"] = sender
    sent, statements = await delivering(service)
    assert sent == len(sender.sent)
    records = [q for q in statements if q.startswith("UPDATE outbox") and "outbox.lease = " in q]
    items = await outbox(service)
    assert len(items) == len(sender.sent) > len(chats)
    assert [(i.status, i.provider_id) for i in items] == [("sent", f"other-{i.id}") for i in items]
    if service.group.batching:
        assert len(records) < len(items) / 2
    else:
        assert len(records) == len(items)


async def test_the_commits_of_a_pass_over_the_outbox(
    service: Service,
) -> None:
    """SQLite lets one transaction write at a time: the pass's claim and its outcomes are
    units of the writer's batches, not transactions of their own that would hold the write
    lock for a commit while the engine's steps wait. Every commit is one of the writer's.
    On PostgreSQL the claim and each outcome have a transaction of their own."""
    chat = Chat(service, channel=Channel.TELEGRAM, sender="45")
    await chat.say("مرحبا")
    service.senders["telegram"] = FlakySender([])
    commits: list[object] = []
    event.listen(service.db.engine.sync_engine, "commit", commits.append)
    before = service.group.stats.batches
    assert await service.deliver_due() == len(chat.replies)
    if service.group.batching:
        assert len(commits) == service.group.stats.batches - before >= 2  # claim, outcomes
    else:  # the claim, then each outcome
        assert len(commits) == 1 + len(chat.replies)
    assert [i.status for i in await outbox(service)] == ["sent"] * len(chat.replies)


class LangSender:
    def __init__(self) -> None:
        self.langs: list[tuple[str, str]] = []

    async def send(self, delivery: Delivery) -> Sent:
        self.langs.append((delivery.reply.text, delivery.lang))
        return Sent(f"lang-{len(self.langs)}")


async def test_a_reply_is_sent_in_its_own_language_and_reads_its_conversation_only_if_unsaid(
    service: Service,
) -> None:
    """The engine's replies say which language they are written in: they are sent without
    reading their conversation. A staff member's reply says none, and goes out in the
    conversation's language."""
    chat = Chat(service, channel=Channel.TELEGRAM, sender="45")
    await chat.say("Hello, what documents do I need to apply?")
    sender = LangSender()
    service.senders["telegram"] = sender
    sent, statements = await delivering(service)
    assert sent == len(chat.replies) and {lang for _, lang in sender.langs} == {"en"}
    assert not [q for q in statements if q.startswith("SELECT") and "FROM conversations" in q]

    async with service.db.session() as s:
        tx = ConsoleTx(s)
        conversation = await tx.conversation(await s.scalar(select(Conversation.id)))
        await tx.staff_reply(conversation, "agent@example.org", "Hello, I am with you")
    sent, statements = await delivering(service)
    assert sent == 1 and sender.langs[-1] == ("Hello, I am with you", "en")
    assert [q for q in statements if q.startswith("SELECT") and "FROM conversations" in q]


class _Deadlock(Exception):
    sqlstate = "40P01"


class HeldSender:
    """Holds each send until released (a slow provider call, a stalled process)."""

    def __init__(self) -> None:
        self.sent: list[int] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, delivery: Delivery) -> Sent:
        self.started.set()
        await self.release.wait()
        self.sent.append(delivery.outbox_id)
        return Sent(f"held-{delivery.outbox_id}")


class IdSender:
    def __init__(self) -> None:
        self.sent: list[int] = []

    async def send(self, delivery: Delivery) -> Sent:
        self.sent.append(delivery.outbox_id)
        return Sent(f"other-{delivery.outbox_id}")


async def test_a_pass_whose_lease_was_taken_over_leaves_the_item_to_the_new_holder(
    service: Service,
) -> None:
    """A pass is held up past its lease (a stalled process, a record retried for long):
    another pass claims the replies again and sends them. When the first pass's send comes
    back, its record does not overwrite the other's, and it sends nothing more of that
    conversation."""
    await Chat(service, channel=Channel.TELEGRAM, sender="46").say("مرحبا")
    held, other = HeldSender(), IdSender()
    service.senders["telegram"] = held
    first_pass = asyncio.create_task(service.deliver_due())
    await asyncio.wait_for(held.started.wait(), 10)
    async with service.db.session() as s:
        await s.execute(
            update(OutboxItem)
            .where(OutboxItem.status == "sending")
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )
    service.senders["telegram"] = other
    # The second pass stands for another instance, one that has reached the database for a
    # whole lease (on PostgreSQL, the wait before ending others' leases).
    service.outbox_reached_since = time.monotonic() - service.outbox_lease.total_seconds()
    items = await outbox(service)
    assert await service.deliver_due() == len(items)
    held.release.set()
    assert await asyncio.wait_for(first_pass, 10) == 0
    assert held.sent == [items[0].id]
    assert other.sent == [i.id for i in items]
    after = await outbox(service)
    assert [(i.status, i.provider_id) for i in after] == [("sent", f"other-{i.id}") for i in items]


async def test_a_send_whose_record_fails_on_the_database_is_recorded_not_sent_again(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The channel accepted the reply; writing "sent" fails (SQLite locked by another process
    for more than 10 s -- a CLI command, a backup --, a PostgreSQL fail-over). The record is
    tried again until it is written: the reply is not sent a second time."""
    monkeypatch.setattr(service_module, "RECORD_RETRY_FIRST", 0.01, raising=False)
    chat = Chat(service, channel=Channel.TELEGRAM, sender="47")
    await chat.say("مرحبا")
    sender = IdSender()
    service.senders["telegram"] = sender
    recorded = Tx.record_outcomes
    failures = [OperationalError("UPDATE outbox", {}, Exception("database is locked"))] * 2

    async def failing(self: Tx, records: Any) -> list[bool]:
        if failures and any(values.get("status") == "sent" for _, values in records):
            raise failures.pop()
        return await recorded(self, records)

    monkeypatch.setattr(Tx, "record_outcomes", failing)
    assert await service.deliver_due() == len(chat.replies)
    assert not failures
    await make_due(service)
    assert await service.deliver_due() == 0
    items = await outbox(service)
    assert sender.sent == [i.id for i in items]
    assert [i.status for i in items] == ["sent"] * len(items)


async def test_a_conversation_whose_record_fails_leaves_the_others_recorded(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault writing down one conversation's send: the other conversations' replies
    are still sent and recorded in that pass, and the faulty one's later replies wait."""
    broken = Chat(service, channel=Channel.TELEGRAM, sender="48")
    other = Chat(service, channel=Channel.TELEGRAM, sender="49")
    await broken.say("مرحبا")
    await other.say("مرحبا")
    service.senders["telegram"] = FlakySender([])
    recorded = Tx.record_outcomes
    first = (await outbox(service))[0]

    async def failing(self: Tx, records: Any) -> list[bool]:
        if any(item.id == first.id for item, _ in records):
            raise ValueError("a fault in the bot")
        return await recorded(self, records)

    monkeypatch.setattr(Tx, "record_outcomes", failing)
    with pytest.raises(ValueError, match="a fault in the bot"):
        await service.deliver_due()
    items = await outbox(service)
    mine = [i for i in items if i.conversation_id == first.conversation_id]
    theirs = [i for i in items if i.conversation_id != first.conversation_id]
    assert [i.status for i in theirs] == ["sent"] * len(other.replies)
    assert [i.status for i in mine] == ["sending"] + ["pending"] * (len(mine) - 1)


async def test_rate_limit_waits_as_told(service: Service) -> None:
    await Chat(service, channel=Channel.TELEGRAM, sender="43").say("hi")
    service.senders["telegram"] = FlakySender([RateLimited(30)])
    await service.deliver_due()
    item = (await outbox(service))[0]
    wait = (item.next_attempt_at - utcnow()).total_seconds()
    assert 25 < wait <= 30


async def test_gives_up_after_max_attempts_and_keeps_the_reason(service: Service) -> None:
    await Chat(service, channel=Channel.TELEGRAM, sender="44").say("hi")
    attempts = service.config.outbox.max_attempts
    service.senders["telegram"] = FlakySender([DeliveryError("timeout")] * (attempts + 5))
    for _ in range(attempts):
        await make_due(service)
        await service.deliver_due()
    item = (await outbox(service))[0]
    assert item.status == "failed" and item.attempts == attempts and item.last_error == "timeout"


async def test_unreachable_marks_the_identity(service: Service) -> None:
    await Chat(service, channel=Channel.TELEGRAM, sender="45").say("hi")
    service.senders["telegram"] = FlakySender([Unreachable("blocked by user")])
    await service.deliver_due()
    assert (await outbox(service))[0].status == "failed"
    async with service.db.session() as s:
        assert await s.scalar(select(Identity.unreachable).where(Identity.lookup("telegram", "45")))


def test_backoff_grows_and_is_capped(service: Service) -> None:
    delays = [service.backoff(n) for n in range(1, 20)]
    assert delays[0] <= service.config.outbox.base_delay_seconds
    assert max(delays) <= service.config.outbox.max_delay_seconds
    assert delays[6] > delays[0]


async def test_a_stored_message_not_yet_processed_is_processed_after_a_restart(
    service: Service,
) -> None:
    from conversations.messages import Inbound

    message_id = await service.receive(
        Inbound(Channel.TELEGRAM, "46", "مرحبا", channel_message_id="tg-1")
    )
    assert message_id is not None
    await service.close()  # the process died before the engine ran
    restarted = Service(service.config)
    try:
        assert await restarted.process_pending() == 1
        assert await restarted.process_pending() == 0  # exactly once
        assert len(await outbox(restarted)) == 2
        assert (
            await restarted.receive(
                Inbound(Channel.TELEGRAM, "46", "مرحبا", channel_message_id="tg-1")
            )
            is None
        )
    finally:
        await restarted.close()


class SlowFirstRecipient:
    """The first recipient's channel hangs until released; the others answer at once."""

    def __init__(self, slow_address: str) -> None:
        self.slow_address = slow_address
        self.release = asyncio.Event()
        self.sent: list[tuple[str, str]] = []

    async def send(self, delivery: Delivery) -> Sent:
        if delivery.address == self.slow_address:
            await self.release.wait()
        self.sent.append((delivery.address, delivery.reply.text))
        return Sent(f"provider-{len(self.sent)}")


async def test_a_slow_recipient_does_not_hold_up_other_conversations(service: Service) -> None:
    slow = Chat(service, channel=Channel.TELEGRAM, sender="51")
    quick = Chat(service, channel=Channel.TELEGRAM, sender="52")
    await slow.say("مرحبا")
    await quick.say("مرحبا")
    sender = SlowFirstRecipient("51")
    service.senders["telegram"] = sender
    delivering = asyncio.create_task(service.deliver_due())
    for _ in range(200):  # the quick conversation's replies leave while the slow one hangs
        if len(sender.sent) == len(quick.replies):
            break
        await asyncio.sleep(0.01)
    assert [a for a, _ in sender.sent] == ["52"] * len(quick.replies)
    assert not delivering.done()
    sender.release.set()
    assert await delivering == len(slow.replies) + len(quick.replies)
    in_order = [text for address, text in sender.sent if address == "51"]
    assert in_order == [r.text for r in slow.replies]


class CountingSender:
    """Answers after a short wait, counting the requests in flight; the sends to ``held``
    wait until ``release`` is set."""

    def __init__(self, held: str | None = None) -> None:
        self.in_flight = 0
        self.most = 0
        self.sent: list[tuple[str, str]] = []
        self.held = held
        self.started = asyncio.Event()  # a send to ``held`` is waiting
        self.release = asyncio.Event()

    async def send(self, delivery: Delivery) -> Sent:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if delivery.address == self.held:
            self.started.set()
            await self.release.wait()
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        self.sent.append((delivery.address, delivery.reply.text))
        return Sent(f"provider-{len(self.sent)}")


async def test_two_passes_at_once_take_different_conversations_and_share_the_slots(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server runs two passes over the outbox at once: while one waits on a slow send,
    the other sends the replies queued since, of other conversations only (the slow one's
    later replies wait behind it), and both together keep within ``[outbox] concurrency``."""
    monkeypatch.setattr(service.config.outbox, "concurrency", 2)
    slow = Chat(service, channel=Channel.TELEGRAM, sender="60")
    await slow.say("مرحبا")
    assert len(slow.replies) >= 2
    sender = CountingSender(held="60")
    service.senders["telegram"] = sender
    first_pass = asyncio.create_task(service.deliver_due())
    await asyncio.wait_for(sender.started.wait(), 10)
    first_replies = len(slow.replies)
    await slow.say("القائمة")  # queued behind the replies the first pass holds
    others = [Chat(service, channel=Channel.TELEGRAM, sender=f"6{n}") for n in range(1, 4)]
    for chat in others:
        await chat.say("مرحبا")
    sent = await asyncio.wait_for(service.deliver_due(), 10)
    assert sent == sum(len(chat.replies) for chat in others)
    assert "60" not in [a for a, _ in sender.sent] and sender.most == 2
    sender.release.set()
    assert await asyncio.wait_for(first_pass, 10) == first_replies
    assert await service.deliver_due() == len(slow.replies)  # then the later ones
    assert [a for a, _ in sender.sent].count("60") == first_replies + len(slow.replies)
    items = await outbox(service)
    assert [i.status for i in items] == ["sent"] * len(items)
    mine = sorted((i.sent_at, i.id) for i in items if i.address == "60")
    assert [i for _, i in mine] == sorted(i for _, i in mine)  # in order


async def test_concurrency_bounds_the_requests_in_flight(service: Service) -> None:
    service.config.outbox.concurrency = 2
    chats = [Chat(service, channel=Channel.TELEGRAM, sender=f"6{n}") for n in range(5)]
    for chat in chats:
        await chat.say("مرحبا")
    sender = CountingSender()
    service.senders["telegram"] = sender
    total = sum(len(chat.replies) for chat in chats)
    assert total > len(chats)  # each conversation has replies to send in order
    assert await service.deliver_due() == total
    assert sender.most == 2
    for chat in chats:
        assert [t for a, t in sender.sent if a == chat.sender] == [r.text for r in chat.replies]


async def test_a_send_being_recorded_holds_a_slot_only_on_postgresql(service: Service) -> None:
    """With one slot, on SQLite a second conversation's reply leaves while the first's outcome
    waits for the writer (the slot bounds requests to the channel); on PostgreSQL, where each
    outcome takes a pooled connection, it waits until that outcome is written."""
    service.config.outbox.concurrency = 1
    first = Chat(service, channel=Channel.TELEGRAM, sender="71")
    second = Chat(service, channel=Channel.TELEGRAM, sender="72")
    await first.say("hi")
    await second.say("hi")
    sender = CountingSender()
    service.senders["telegram"] = sender
    recording = asyncio.Event()
    release = asyncio.Event()
    record = service._record_all

    async def slow_record(tx: Any, records: Any) -> list[str | None]:
        if not recording.is_set():
            recording.set()
            await release.wait()
        return await record(tx, records)

    service._record_all = slow_record  # type: ignore[method-assign]
    delivering = asyncio.create_task(service.deliver_due())
    await asyncio.wait_for(recording.wait(), 5)
    for _ in range(50 if service.group.batching else 20):
        if len({a for a, _ in sender.sent}) == 2:
            break
        await asyncio.sleep(0.01)
    sent_meanwhile = {a for a, _ in sender.sent}
    assert len(sent_meanwhile) == (2 if service.group.batching else 1)
    release.set()
    assert await delivering == len(first.replies) + len(second.replies)
    assert all(i.status == "sent" for i in await outbox(service))


@pytest.mark.parametrize("where", ["engine", "reading the message"])
async def test_a_message_the_bot_keeps_failing_on_is_set_aside_for_staff(
    service: Service, monkeypatch: Any, where: str
) -> None:
    """A fault in the bot on one message: it is tried again at each pass, the conversation's
    later messages waiting; after the third failure the message is marked processed, the
    conversation goes to the staff queue (reason "error"), the beneficiary is told, and the
    later messages go on."""
    import bot.service
    from conversations.messages import Inbound

    handle = service.engine.handle
    read = bot.service.inbound_from_row

    async def engine_with_a_bug(msg: Inbound, ctx: Any, port: Any) -> Any:
        if msg.text == "boom":
            raise RuntimeError("a bug in a step")
        return await handle(msg, ctx, port)

    def reading_with_a_bug(row: Any, sender: str) -> Inbound:
        if row.text == "boom":
            raise RuntimeError("a bug in a step")
        return read(row, sender)

    if where == "engine":
        monkeypatch.setattr(service.engine, "handle", engine_with_a_bug)
    else:
        monkeypatch.setattr(bot.service, "inbound_from_row", reading_with_a_bug)
    monkeypatch.setattr("bot.service.STEP_RETRY_SECONDS", 0.0)
    monkeypatch.setattr("bot.service.STEP_REST_SECONDS", 0.0)
    ids = [
        await service.receive(Inbound(Channel.TELEGRAM, "47", text, channel_message_id=f"b-{n}"))
        for n, text in enumerate(["مرحبا", "boom", "شكرا"])
    ]
    for _ in range(2):
        with pytest.raises(RuntimeError, match="a bug in a step"):
            await service.process_pending()
    async with service.db.session(write=False) as s:
        done = {m.id: m.processed_at for m in await s.scalars(select(Message))}
    assert done[ids[0]] is not None and done[ids[1]] is None and done[ids[2]] is None
    assert await service.process_pending() == 2  # set aside, then the one behind it
    async with service.db.session(write=False) as s:
        conversation = await s.scalar(select(Conversation))
        assert conversation is not None
        assert (conversation.status, conversation.handoff_reason) == ("queued", "error")
        done = {m.id: m.processed_at for m in await s.scalars(select(Message))}
    assert all(done[i] is not None for i in ids)
    assert service.metrics.set_aside._value.get() == 1
    async with service.db.session(write=False) as s:
        told = list(await s.scalars(select(Message.text).where(Message.direction == "out")))
    assert service.engine.catalog.text("ar", "handoff.queued") in told


async def test_a_database_failure_in_a_step_never_sets_the_message_aside(
    service: Service, monkeypatch: Any
) -> None:
    """A locked database or a dropped connection is not the message's fault: the step is
    tried again as often as it takes, and the message is answered once it goes through."""
    from sqlalchemy.exc import OperationalError

    from conversations.messages import Inbound

    handle = service.engine.handle
    failures = iter(range(8))

    async def engine_on_a_bad_day(msg: Inbound, ctx: Any, port: Any) -> Any:
        if next(failures, None) is not None:
            raise OperationalError("UPDATE ...", {}, Exception("database is locked"))
        return await handle(msg, ctx, port)

    monkeypatch.setattr(service.engine, "handle", engine_on_a_bad_day)
    monkeypatch.setattr("bot.service.STEP_RETRY_SECONDS", 0.0)
    await service.receive(Inbound(Channel.TELEGRAM, "48", "مرحبا", channel_message_id="d-1"))
    raised, taken = 0, 0
    for _ in range(12):
        try:
            taken = await service.process_pending()
            break
        except OperationalError:
            raised += 1
    assert raised >= 4 and taken == 1  # counted as failures, it would have been set aside
    async with service.db.session(write=False) as s:
        conversation = await s.scalar(select(Conversation))
        assert conversation is not None and conversation.handoff_reason is None
    assert service.metrics.set_aside._value.get() == 0


async def test_a_failed_step_is_not_run_again_at_every_pass(
    service: Service, monkeypatch: Any
) -> None:
    """After a failed step its conversation rests a few seconds: passes meanwhile (one for
    each new message under traffic) go on with the other conversations without running the
    failing step again; after the rest it is tried again."""
    from conversations.messages import Inbound

    handle = service.engine.handle
    tried: list[str] = []

    async def engine_with_a_bug(msg: Inbound, ctx: Any, port: Any) -> Any:
        tried.append(msg.text)
        if msg.text == "boom":
            raise RuntimeError("a bug in a step")
        return await handle(msg, ctx, port)

    monkeypatch.setattr(service.engine, "handle", engine_with_a_bug)
    monkeypatch.setattr("bot.service.STEP_REST_SECONDS", 0.5)
    await service.receive(Inbound(Channel.TELEGRAM, "49", "boom", channel_message_id="r-1"))
    with pytest.raises(RuntimeError):
        await service.process_pending()
    booms = tried.count("boom")
    await service.receive(Inbound(Channel.TELEGRAM, "50", "مرحبا", channel_message_id="r-2"))
    assert await service.process_pending() == 1  # the other conversation, without a failure
    assert tried.count("boom") == booms
    await asyncio.sleep(0.6)
    with pytest.raises(RuntimeError):
        await service.process_pending()
    assert tried.count("boom") > booms


def test_which_step_failures_are_the_database_or_the_network() -> None:
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    from bot.service import transient

    class Deadlock(Exception):
        sqlstate = "40P01"

    class Unique(Exception):
        sqlstate = "23505"

    assert transient(OperationalError("UPDATE", {}, Exception("database is locked")))
    assert transient(ConnectionResetError())
    assert transient(TimeoutError())
    assert transient(DBAPIError("UPDATE", {}, Deadlock()))
    # The bot's own trouble: counted, and in the end set aside.
    assert not transient(DBAPIError("INSERT", {}, Unique()))
    assert not transient(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")))
    assert not transient(FileNotFoundError("var/attachments/ab/cd"))
    assert not transient(KeyError("answers"))
