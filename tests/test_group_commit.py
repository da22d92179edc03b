"""Group commit: callers answered only after their shared transaction is on disk; a failing
unit costs its batch-mates nothing; units of one key keep their order."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

import bot.service as service_module
from bot.service import Service
from conversations.messages import Channel, Inbound
from storage.db import Database
from storage.group import Gathered, GroupCommit, OrderHeld
from storage.models import ChannelCursor, Message
from storage.repository import Tx
from tests.conftest import WORKING_TIME, Chat


def cursor_unit(
    name: str, *, log: list[str] | None = None, fail: bool = False
) -> Callable[[AsyncSession], Awaitable[str]]:
    """A unit that writes one row (and fails after writing it, when asked)."""

    async def unit(session: AsyncSession) -> str:
        await Tx(session).set_cursor(name, {"v": name})
        if log is not None:
            log.append(name)
        if fail:
            raise ValueError(f"unit {name} fails")
        return name

    return unit


async def stored_cursors(url: str) -> set[str]:
    """Read through a separate engine: only what was committed is seen."""
    other = Database(url)
    try:
        async with other.session(write=False) as session:
            return set(await session.scalars(select(ChannelCursor.name)))
    finally:
        await other.dispose()


async def test_each_receive_returns_only_after_its_row_is_committed(service: Service) -> None:
    url = service.config.database.url
    seen_by_others: dict[str, bool] = {}

    async def receive(n: int) -> None:
        sid = f"wc-{n}"
        message_id = await service.receive(
            Inbound(Channel.WEBCHAT, f"visitor-{n}", f"سؤال {n}", channel_message_id=sid)
        )
        assert message_id is not None
        other = Database(url)
        try:
            async with other.session(write=False) as session:
                found = await session.scalar(
                    select(Message.id).where(Message.channel_message_id == sid)
                )
        finally:
            await other.dispose()
        seen_by_others[sid] = found == message_id

    await asyncio.gather(*(receive(n) for n in range(24)))
    assert len(seen_by_others) == 24 and all(seen_by_others.values())
    # They were committed together, not one transaction each.
    assert service.group.stats.largest > 1
    assert service.group.stats.batches < 24


async def test_a_repeat_in_the_same_batch_is_stored_once(service: Service) -> None:
    def msg() -> Inbound:
        return Inbound(Channel.TELEGRAM, "77", "مرحبا", channel_message_id="tg-dup")

    results = await asyncio.gather(*(service.receive(msg()) for _ in range(5)))
    assert len([r for r in results if r is not None]) == 1
    async with service.db.session(write=False) as session:
        count = await session.scalar(
            select(func.count()).where(Message.channel_message_id == "tg-dup")
        )
    assert count == 1


async def test_a_failing_unit_does_not_fail_its_batch_mates(service: Service) -> None:
    group = GroupCommit(service.db)
    try:
        names = [f"u{n}" for n in range(10)]
        results = await asyncio.gather(
            *(group.run(cursor_unit(name, fail=name == "u4")) for name in names),
            return_exceptions=True,
        )
    finally:
        await group.close()
    assert isinstance(results[4], ValueError)
    assert [r for r in results if not isinstance(r, BaseException)] == [
        n for n in names if n != "u4"
    ]
    assert group.stats.splits >= 1
    # Everything else is on disk, the failing unit's own write is not.
    assert await stored_cursors(service.config.database.url) == set(names) - {"u4"}


async def test_units_of_one_key_keep_their_order_and_wait_behind_a_failure(
    service: Service,
) -> None:
    group = GroupCommit(service.db)
    ran: list[str] = []
    plan = [("a", "a1", False), ("b", "b1", False), ("a", "a2", True), ("b", "b2", False)]
    plan += [("a", "a3", False), ("b", "b3", False), ("a", "a4", False)]
    try:
        results = await asyncio.gather(
            *(
                group.run(cursor_unit(name, log=ran, fail=fail), key=key)
                for key, name, fail in plan
            ),
            return_exceptions=True,
        )
    finally:
        await group.close()
    outcome = dict(zip([name for _, name, _ in plan], results, strict=True))
    assert isinstance(outcome["a2"], ValueError)
    # a3 and a4 must not overtake the failed a2: refused, never run, nothing stored.
    assert isinstance(outcome["a3"], OrderHeld) and isinstance(outcome["a4"], OrderHeld)
    assert "a3" not in ran and "a4" not in ran
    assert [outcome[n] for n in ("a1", "b1", "b2", "b3")] == ["a1", "b1", "b2", "b3"]
    # Order of first runs per key is the order of submission.
    first_runs = list(dict.fromkeys(ran))
    assert [n for n in first_runs if n.startswith("b")] == ["b1", "b2", "b3"]
    assert await stored_cursors(service.config.database.url) == {"a1", "b1", "b2", "b3"}


async def test_calls_gathered_while_the_writer_is_busy_are_one_unit(service: Service) -> None:
    """Calls that come while the writer is busy are done by one unit, each answered with its
    own result once that unit is committed; when the unit fails, each of its calls fails."""
    group = GroupCommit(service.db)
    shares: list[list[str]] = []

    async def work(session: AsyncSession, names: list[str]) -> list[str]:
        shares.append(names)
        for name in names:
            await Tx(session).set_cursor(name, {"v": name})
        if "bad" in names:
            raise ValueError("a fault")
        return [name.upper() for name in names]

    gathered = Gathered(group, work)
    try:
        # The writer is busy with a unit while the calls come.
        busy = asyncio.ensure_future(group.run(cursor_unit("busy")))
        await asyncio.sleep(0)
        results = await asyncio.gather(*(gathered.run(n) for n in ("g1", "g2", "g3")))
        await busy
        failed = await asyncio.gather(
            *(gathered.run(n) for n in ("g4", "bad")), return_exceptions=True
        )
    finally:
        await group.close()
    assert results == ["G1", "G2", "G3"]
    assert shares[0] == ["g1", "g2", "g3"]
    assert all(isinstance(r, ValueError) for r in failed)
    assert await stored_cursors(service.config.database.url) == {"busy", "g1", "g2", "g3"}


async def test_urgent_units_go_ahead_of_queued_background_ones(service: Service) -> None:
    group = GroupCommit(service.db, max_units=2)
    ran: list[str] = []
    try:
        background = [
            asyncio.ensure_future(group.run(cursor_unit(f"bg{n}", log=ran))) for n in range(6)
        ]
        await asyncio.sleep(0)  # the background units are queued first
        urgent = group.run(cursor_unit("ack", log=ran), urgent=True)
        await asyncio.gather(urgent, *background)
    finally:
        await group.close()
    assert ran.index("ack") < ran.index("bg5")
    assert ran.index("ack") <= 2


def step_with_webhooks(
    group: GroupCommit, acks: list[asyncio.Future[str]], names: list[str], *, bad: str = ""
) -> Callable[[AsyncSession], Awaitable[str]]:
    """A step during which webhooks come in (``bad`` fails), acknowledged through ``group``.
    The step runs again when its batch is split: the webhooks came once."""

    async def step(session: AsyncSession) -> str:
        if not acks:
            acks.extend(
                asyncio.ensure_future(group.run(cursor_unit(n, fail=n == bad), urgent=True))
                for n in names
            )
            await asyncio.sleep(0)
        return await cursor_unit("step")(session)

    return step


async def test_an_acknowledgement_queued_while_a_batch_runs_joins_that_batch(
    service: Service,
) -> None:
    """Rather than wait for the batch's commit and then for one of its own."""
    group = GroupCommit(service.db)
    acks: list[asyncio.Future[str]] = []
    try:
        done = asyncio.ensure_future(group.run(step_with_webhooks(group, acks, ["ack1", "ack2"])))
        await asyncio.sleep(0)
        # Queued with the acknowledgements, but not one: it waits for the next batch.
        later = asyncio.ensure_future(group.run(cursor_unit("later")))
        await done
        # Told together: the acknowledgements were committed with the step.
        assert [ack.done() for ack in acks] == [True, True]
        assert not later.done()
        assert await asyncio.gather(*acks) == ["ack1", "ack2"]
        await later
    finally:
        await group.close()
    assert group.stats.batches == 2
    assert await stored_cursors(service.config.database.url) == {"step", "ack1", "ack2", "later"}


async def test_a_failing_acknowledgement_that_joined_a_batch_costs_the_others_nothing(
    service: Service,
) -> None:
    group = GroupCommit(service.db)
    acks: list[asyncio.Future[str]] = []
    step = step_with_webhooks(group, acks, ["ack1", "bad", "ack2"], bad="bad")
    try:
        assert await group.run(step) == "step"
        outcomes = await asyncio.gather(*acks, return_exceptions=True)
    finally:
        await group.close()
    assert len(outcomes) == 3
    assert outcomes[0] == "ack1" and outcomes[2] == "ack2"
    assert isinstance(outcomes[1], ValueError)
    assert await stored_cursors(service.config.database.url) == {"step", "ack1", "ack2"}


def fail_on_boom(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine fails, as a bug in a step would, on the message "boom"."""
    handle = service.engine.handle

    async def engine_with_a_bug(msg: Inbound, ctx: Any, port: Any) -> Any:
        if msg.text == "boom":
            raise RuntimeError("a bug in a step")
        return await handle(msg, ctx, port)

    monkeypatch.setattr(service.engine, "handle", engine_with_a_bug)


@pytest.mark.parametrize("read", [100, 2])  # one read; the conversations over several
async def test_a_poison_message_holds_only_its_own_conversation(
    service: Service, monkeypatch: pytest.MonkeyPatch, read: int
) -> None:
    monkeypatch.setattr("bot.service.PENDING_PASS", read)
    fail_on_boom(service, monkeypatch)
    script = {
        "1": ["السلام عليكم", "boom", "القائمة"],
        "2": ["السلام عليكم", "القائمة", "١"],
        "3": ["مرحبا", "شكرا"],
    }
    for n in range(3):
        for sender, texts in script.items():
            if n < len(texts):
                await service.receive(
                    Inbound(
                        Channel.TELEGRAM,
                        sender,
                        texts[n],
                        channel_message_id=f"{sender}-{n}",
                        received_at=WORKING_TIME,
                    )
                )
    with pytest.raises(RuntimeError, match="a bug in a step"):
        await service.process_pending()
    async with service.db.session(write=False) as session:
        rows = list(
            await session.scalars(
                select(Message).where(Message.direction == "in").order_by(Message.id)
            )
        )
    done = {r.channel_message_id: r.processed_at is not None for r in rows}
    assert done == {
        "1-0": True,
        "1-1": False,  # failed
        "1-2": False,  # waits behind it, in order
        "2-0": True,
        "2-1": True,
        "2-2": True,
        "3-0": True,
        "3-1": True,
    }
    # Replies of the other conversations were queued in their own order.
    async with service.db.session(write=False) as session:
        out = list(
            await session.scalars(select(Message.conversation_id).where(Message.direction == "out"))
        )
    assert len(out) >= 5


async def test_a_failing_embedding_ahead_only_costs_the_cache(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(texts: object) -> None:
        raise RuntimeError("the model is not available")

    monkeypatch.setattr(service.knowledge, "prepare", broken)
    monkeypatch.setattr("bot.service.PENDING_PASS", 2)
    for n in range(5):
        await service.receive(
            Inbound(
                Channel.TELEGRAM,
                f"p{n}",
                "السلام عليكم",
                channel_message_id=f"p{n}",
                received_at=WORKING_TIME,
            )
        )
    assert await service.process_pending() == 5
    async with service.db.session(write=False) as session:
        left = await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.direction == "in", Message.processed_at.is_(None))
        )
    assert left == 0


def embedding_held(service: Service, monkeypatch: pytest.MonkeyPatch, question: str) -> Any:
    """The model holds ``question`` until the returned event is set (a slow embedding)."""
    release = threading.Event()
    prepare = service.knowledge.prepare

    def slow(texts: list[str]) -> None:
        if question in texts:
            assert release.wait(30)
        prepare(texts)

    monkeypatch.setattr(service.knowledge, "prepare", slow)
    return release


async def received(service: Service, script: list[tuple[str, str]], prefix: str) -> None:
    """Store each (sender, text) as a Telegram message, in order."""
    for n, (sender, text) in enumerate(script):
        await service.receive(
            Inbound(
                Channel.TELEGRAM,
                sender,
                text,
                channel_message_id=f"{prefix}{n}",
                received_at=WORKING_TIME,
            )
        )


async def test_a_question_being_embedded_holds_only_its_own_conversation(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A question the model has not seen is embedded in a worker thread before its step;
    meanwhile the other conversations' messages are stepped, and the asker's next message
    waits behind the question, in order."""
    question = "هل عندكم مساعدات للأسر اللي راتبها قليل ١٧"
    release = embedding_held(service, monkeypatch, question)
    assert not service.knowledge.ready(question)
    script = [("asker", "السلام عليكم"), ("asker", question), ("asker", "القائمة")]
    script += [("other", "السلام عليكم"), ("other", "١"), ("third", "مرحبا")]
    await received(service, script, "q")
    worker = asyncio.ensure_future(service.process_pending())
    try:
        for _ in range(200):
            stepped = await _stepped_in(service)
            if all(stepped[text] for _, text in script[3:]):
                break
            await asyncio.sleep(0.05)
        assert all(stepped[text] for _, text in script[3:])  # the others went on
        assert stepped["السلام عليكم"] is not None
        assert stepped[question] is None and stepped["القائمة"] is None
    finally:
        release.set()
    assert await worker == len(script)
    stepped = await _stepped_in(service)
    assert stepped[question] is not None and stepped["القائمة"] is not None
    assert stepped[question] < stepped["القائمة"]
    assert service.knowledge.ready(question)


async def test_questions_asked_while_the_model_is_busy_are_embedded_together(
    service: Service,
) -> None:
    """The questions queued behind the one being embedded go to the model together, a few
    at a time, in order; each asker waits only until its own batch is embedded."""
    from bot.knowledge import PREPARE_BATCH
    from bot.service import QuestionsAhead

    batches: list[list[str]] = []
    first_held = asyncio.Event()

    async def prepare(texts: Sequence[str]) -> None:
        batches.append(list(texts))
        if len(batches) == 1:
            await first_held.wait()

    ahead = QuestionsAhead(service.knowledge, prepare, asyncio.Event())
    questions = [f"سؤال لم يسأله أحد قبل اليوم رقم {n}" for n in range(PREPARE_BATCH + 3)]
    futures = [ahead.embed(questions[0])]
    await asyncio.sleep(0.01)  # the model takes the first one
    futures += [ahead.embed(q) for q in questions[1:]]  # and these come meanwhile
    assert all(f is not None for f in futures)
    await asyncio.sleep(0.01)
    assert batches == [questions[:1]] and not futures[1].done()  # type: ignore[union-attr]
    first_held.set()
    await asyncio.wait_for(asyncio.gather(*futures), 5)  # type: ignore[arg-type]
    assert batches == [
        questions[:1],
        questions[1 : 1 + PREPARE_BATCH],
        questions[1 + PREPARE_BATCH :],
    ]
    ahead.close()


async def test_closing_lets_go_of_the_batch_being_embedded_and_those_waiting(
    service: Service,
) -> None:
    from bot.service import QuestionsAhead

    held = asyncio.Event()

    async def prepare(texts: Sequence[str]) -> None:
        await held.wait()  # the model never answers

    ahead = QuestionsAhead(service.knowledge, prepare, asyncio.Event())
    questions = [f"سؤال ينتظر النموذج وقت الإغلاق رقم {n}" for n in range(12)]
    first = [ahead.embed(q) for q in questions[:3]]
    await asyncio.sleep(0.01)  # these three are with the model
    rest = [ahead.embed(q) for q in questions[3:]]
    ahead.close()
    await asyncio.sleep(0.01)
    assert all(f is not None and f.done() for f in first + rest)


async def test_stopping_leaves_a_question_being_embedded_stored_for_the_next_start(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutting down while a question is embedded: the other lines finish, the question's
    step is not taken (it stays stored, unprocessed), and the next start takes it."""
    question = "كم تاخذ المراجعة لطلبي عادة يعني بالأيام ٢٩"
    release = embedding_held(service, monkeypatch, question)
    await received(service, [("asker", question), ("asker", "القائمة"), ("other", "مرحبا")], "s")
    worker = asyncio.ensure_future(service.process_pending())
    try:
        for _ in range(200):
            if (await _stepped_in(service))["مرحبا"]:
                break
            await asyncio.sleep(0.05)
        service.stopping.set()
    finally:
        release.set()
    assert await asyncio.wait_for(worker, 30) == 1
    stepped = await _stepped_in(service)
    assert stepped["مرحبا"] and stepped[question] is None and stepped["القائمة"] is None
    service.stopping.clear()  # started again
    assert await service.process_pending() == 2
    stepped = await _stepped_in(service)
    assert stepped[question] is not None and stepped["القائمة"] is not None


async def test_a_failed_read_of_the_waiting_messages_lets_the_lines_under_way_finish(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database fails when the inbox reads more waiting messages: the steps already
    taken are finished (not cancelled half-way), and the error is raised for the worker to
    try again later."""
    monkeypatch.setattr("bot.service.PENDING_PASS", 3)
    script = [("a", "السلام عليكم"), ("b", "السلام عليكم"), ("b", "القائمة")]
    await received(service, [*script, ("c", "مرحبا"), ("d", "مرحبا")], "r")
    reads = 0
    read = service_module.pending_messages

    async def failing_second_read(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 2:
            raise OperationalError("SELECT messages", {}, Exception("disk I/O error"))
        return await read(*args, **kwargs)

    monkeypatch.setattr(service_module, "pending_messages", failing_second_read)
    with pytest.raises(OperationalError, match="disk I/O error"):
        await service.process_pending()
    async with service.db.session(write=False) as session:
        done = await session.scalar(
            select(func.count()).where(Message.direction == "in", Message.processed_at.is_not(None))
        )
    assert done == 3  # the first read's three, b's second after a's line ended
    assert await service.process_pending() == 2  # the rest, once the database answers


async def test_a_question_answered_in_the_same_exchange_is_embedded_off_the_loop(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web chat and the terminal answer at once: their question is embedded in a worker
    thread before it is stored, so the step finds it ready and the writer is not held by the
    model; a greeting or a menu number is not embedded at all."""
    loop_thread = threading.current_thread()
    embedded: list[tuple[str, bool]] = []
    prepare = service.knowledge.prepare

    def recording(texts: list[str]) -> None:
        embedded.extend((t, threading.current_thread() is loop_thread) for t in texts)
        prepare(texts)

    monkeypatch.setattr(service.knowledge, "prepare", recording)
    question = "وش الأوراق المطلوبة للتسجيل"
    for n, text in enumerate(["السلام عليكم", "١", question]):
        await service.handle(
            Inbound(
                Channel.TELEGRAM, "w1", text, channel_message_id=f"w1-{n}", received_at=WORKING_TIME
            )
        )
    assert embedded == [(question, False)]
    assert service.knowledge.ready(question)


async def _stepped_in(service: Service) -> dict[str, Any]:
    """Each inbound message's text: when it was processed (None: still waiting)."""
    async with service.db.session(write=False) as s:
        rows = await s.execute(
            select(Message.text, Message.processed_at)
            .where(Message.direction == "in")
            .order_by(Message.id)
        )
        return {text: at for text, at in rows}


async def test_a_message_answered_at_once_waits_for_an_earlier_one_of_its_conversation(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The web chat answers in the same exchange. The step on a visitor's message fails
    (twice: the batch, then alone) and the message stays stored for the inbox worker; the
    visitor's next message is not stepped ahead of it: the earlier one goes first, and the
    answer to the next one carries the replies to both, in order."""
    handle = service.engine.handle
    failures = [RuntimeError("a fault on this answer")] * 2

    async def flaky(msg: Inbound, ctx: Any, port: Any) -> Any:
        if failures and msg.text == "first":
            raise failures.pop()
        return await handle(msg, ctx, port)

    monkeypatch.setattr(service.engine, "handle", flaky)
    chat = Chat(service, Channel.WEBCHAT, sender="web-1")
    await chat.say("مرحبا")
    before = len(await _replies_stored(service))
    with pytest.raises(RuntimeError):
        await chat.say("first")
    replies = await chat.say("second")
    stepped = await _stepped_in(service)
    assert stepped["first"] is not None and stepped["second"] is not None
    assert stepped["first"] <= stepped["second"], "the later message went first"
    # The replies to "first", then to "second", as stored.
    answered = (await _replies_stored(service))[before:]
    assert len(answered) >= 2 and [r.text for r in replies] == answered
    assert await service.process_pending() == 0


async def _replies_stored(service: Service) -> list[str]:
    async with service.db.session(write=False) as s:
        return list(
            await s.scalars(
                select(Message.text).where(Message.direction == "out").order_by(Message.id)
            )
        )


async def test_a_message_behind_one_that_keeps_failing_is_left_to_the_worker_in_order(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the earlier message keeps failing, the later one is stored and left for the
    inbox worker, not stepped ahead of it: answered after the earlier one is set aside."""
    fail_on_boom(service, monkeypatch)
    monkeypatch.setattr("bot.service.STEP_RETRY_SECONDS", 0.0)
    monkeypatch.setattr("bot.service.STEP_REST_SECONDS", 0.0)
    chat = Chat(service, Channel.WEBCHAT, sender="web-2")
    await chat.say("مرحبا")
    with pytest.raises(RuntimeError):
        await chat.say("boom")
    assert await chat.say("شكرا") == []  # stored; the earlier one failed again before it
    stepped = await _stepped_in(service)
    assert stepped["boom"] is None and stepped["شكرا"] is None
    for _ in range(3):
        with contextlib.suppress(RuntimeError):
            await service.process_pending()
    stepped = await _stepped_in(service)
    assert stepped["boom"] is not None and stepped["شكرا"] is not None
    assert stepped["boom"] <= stepped["شكرا"]
    assert service.metrics.set_aside._value.get() == 1
