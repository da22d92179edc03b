"""The running system: storage, the engine and the outbox, wired from the config."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import WEEKDAYS, Config
from bot.kb_edit import KnowledgeEditor
from bot.keys import data_keyring
from bot.knowledge import PREPARE_BATCH, Knowledge
from bot.ops import Metrics
from bot.settings_view import effective_settings
from conversations.catalog import Catalog, default_catalog
from conversations.delivery import (
    Delivery,
    DeliveryError,
    DeliveryKind,
    Held,
    RateLimited,
    Sender,
    Sent,
    Unreachable,
)
from conversations.engine import Context, ConversationStatus, Engine, EngineSettings
from conversations.faq_text import content_words
from conversations.hours import WorkingHours
from conversations.messages import (
    Attachment,
    Channel,
    Inbound,
    Reply,
    combine_replies,
    identity_kind,
)
from conversations.ports import HandoffReason, RequestStatus
from conversations.state import State
from staff.backend import SettingsSection
from storage.db import Database
from storage.files import AttachmentStore
from storage.group import Gathered, GroupCommit, OrderHeld, sqlstate
from storage.models import Conversation, OutboxItem, utcnow
from storage.repository import (
    AnyRow,
    Behind,
    ConversationBusy,
    Ingested,
    NotOpen,
    OutboxEntry,
    Tx,
    pending_messages,
    received,
)

log = structlog.get_logger("tawasul")

# Channels where several short replies to one message read better as one (one email, not
# a greeting mail followed by a menu mail).
COMBINED_CHANNELS = frozenset({Channel.EMAIL})

# How long a claimed outbox item may stay "sending" before another pass takes it up again.
# A pass never sends after three quarters of it have gone (a slow send is cut short), so an
# item is not taken up again while the process that claimed it is still alive. While the
# database fails to take a send's outcome, the record is retried and each try first renews
# the lease; and on PostgreSQL an instance takes over others' ended leases only once it has
# reached the database without a break for a whole lease, so that after an outage the
# instance still trying to write its outcome gets there first (the record is written only
# if no other instance has claimed the item since). After a crash its replies wait at most
# this long (on PostgreSQL, and at least a lease after the instance that takes them over
# started or came back to the database).
OUTBOX_LEASE = timedelta(seconds=20)

# Passes over the outbox under way at once in one process: one claims and sends while the
# other waits for the last outcomes of its own to be written. They never take the same
# conversation (a reply waits while one ahead of it is being sent), and share
# ``[outbox] concurrency``.
OUTBOX_PASSES = 2

# Writing down a send's outcome is retried after a failure of the database, the pauses
# doubling from the first to the most (seconds; at most a quarter of the lease), for as long
# as the process lives.
RECORD_RETRY_FIRST = 0.1
RECORD_RETRY_MOST = 5.0

# Stored messages taken up per pass of the inbox worker (they share transactions).
PENDING_PASS = 100
# SQLite: engine steps queued for the writer at once. More would each take a place in the
# writer's queue ahead of the outbox's records of its sends, and replies would wait; 10
# rather than 20 kept acknowledgements quicker at 400-500 msg/s (README, Measuring).
STEPS_AT_ONCE = 10
# PostgreSQL: conversations stepped at once by one instance (each holds a pooled connection).
SIDE_BY_SIDE = 2
# PostgreSQL: a conversation found held by another instance's step is left out of the
# pending list this long; when only such conversations are left, a pass looks again this
# many times after as long before waiting for its next wake-up.
BUSY_SECONDS = 0.2
BUSY_LOOKS = 3
# A stored message the engine's step fails on this many times, over at least this long (a
# fault in the bot; not the database or the network, see ``transient``), is set aside: marked
# processed and its conversation handed to staff.
STEP_ATTEMPTS = 3
# The longest pause of a worker after failures in a row (the database down, say), seconds.
MAX_WORKER_PAUSE = 15.0
STEP_RETRY_SECONDS = 60.0
# After a failed step its conversation is left out of the passes this long: a message that
# fails is not run again at every new message (and its batch rolled back each time).
STEP_REST_SECONDS = 5.0
STEP_FAILURES_KEPT = 10_000  # messages whose failures are remembered, the oldest forgotten


# Once decided, a request takes no more information from the beneficiary.
DECIDED = frozenset({RequestStatus.APPROVED, RequestStatus.REJECTED, RequestStatus.CLOSED})


def wants_model(text: str, state: Mapping[str, Any] | None) -> bool:
    """Whether the engine may ask the FAQ model about this message: not a form's answer, and
    words that carry meaning (not a menu number)."""
    return (state or {}).get("mode") != "form" and bool(content_words(text))


def transient(error: BaseException) -> bool:
    """The database or the network failed, not the bot: such a failure is retried and never
    counts towards setting a message aside. (Not every OSError: a file the step cannot find
    is the message's own trouble, and would otherwise be retried for ever.)"""
    if isinstance(error, OperationalError | InterfaceError | TimeoutError | ConnectionError):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        # PostgreSQL: connection, deadlock or serialisation, resources, shutdown.
        code = sqlstate(error)
        return code is not None and code[:2] in ("08", "40", "53", "57")
    return False


def _shown(items: Sequence[OutboxItem]) -> None:
    """Replies a channel showed itself: delivered, once."""
    for item in items:
        if item.status == "pending":
            item.status = "sent"
            item.attempts += 1
            item.sent_at = utcnow()


def raise_first(errors: Sequence[BaseException]) -> None:
    """Raise the first of a pass's failed steps; the others are logged, not lost."""
    for error in errors[1:]:
        log.error("inbox.step_failed", exc_info=error)
    if errors:
        raise errors[0]


def _put_key(queue: asyncio.Queue[int], key: int, _: object) -> None:
    queue.put_nowait(key)


class QuestionsAhead:
    """Questions embedded ahead of their steps in a worker thread, in the order they were
    asked for, those waiting together; each caller waits for its own batch only.

    A question embedded before (or as written in the knowledge base) is ready at once.
    ``prepare`` embeds questions and logs a failure (only a cache is warmed: the step then
    embeds the question itself). Once ``stopping`` is set, the questions left are not
    embedded.
    """

    def __init__(
        self,
        knowledge: Knowledge,
        prepare: Callable[[Sequence[str]], Awaitable[None]],
        stopping: asyncio.Event,
    ) -> None:
        self.knowledge = knowledge
        self.prepare = prepare
        self.stopping = stopping
        self._queue: deque[tuple[str, asyncio.Future[None]]] = deque()
        self._worker: asyncio.Task[None] | None = None

    def embed(self, text: str) -> asyncio.Future[None] | None:
        """A future done once ``text`` is embedded; None when it needs no waiting."""
        if self.knowledge.ready(text):
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((text, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="questions-ahead")
        return future

    async def _work(self) -> None:
        # The questions asked for while the model was busy go to it together: in a batch the
        # model spends less on each (``PREPARE_BATCH``), and each asker waits for one batch.
        while self._queue:
            taken = [self._queue.popleft() for _ in range(min(len(self._queue), PREPARE_BATCH))]
            try:
                texts = [text for text, future in taken if not future.cancelled()]
                if texts and not self.stopping.is_set():
                    await self.prepare(texts)
            finally:  # embedded, failed, or closed meanwhile: the askers go on
                for _, future in taken:
                    if not future.done():
                        future.set_result(None)

    def close(self) -> None:
        """Stop embedding; whoever still waits is let go."""
        if self._worker is not None:
            self._worker.cancel()
        while self._queue:
            _, future = self._queue.popleft()
            if not future.done():
                future.set_result(None)


@dataclass
class StepFailures:
    """A stored message's failed steps in this process."""

    conversation_id: int
    count: int
    first: float  # time.monotonic() of the first and the last
    last: float


@dataclass(frozen=True)
class _Repeat:
    """Not stored: the channel sent this message before."""


REPEAT = _Repeat()


@dataclass(frozen=True)
class _Later:
    """Not tried in this pass: an earlier reply of the conversation did not go out."""


@dataclass(frozen=True)
class _Skip:
    status: str
    reason: str


Outcome = Sent | DeliveryError | _Later | _Skip

# What ``Service._record`` reports when the item's claim no longer holds: its lease ended and
# another pass (another instance) claimed it since; that pass records what became of it.
TAKEN_OVER = "taken over"


def inbound_payload(msg: Inbound) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "attachments": [
            {"ref": a.ref, "content_type": a.content_type, "size": a.size, "filename": a.filename}
            for a in msg.attachments
        ],
        "command": msg.command,
        "thread_id": msg.thread_id,
        "reply_to": msg.reply_to,
        "verified_phone": msg.verified_phone,
        "lang_hint": msg.lang_hint,
        "offer": msg.offer,
    }
    if msg.notices:
        payload["notices"] = [[key, dict(params)] for key, params in msg.notices]
    return payload


def inbound_from_row(row: AnyRow, sender: str) -> Inbound:
    payload = row.payload or {}
    return Inbound(
        channel=Channel(row.channel),
        sender_id=sender,
        text=row.text,
        attachments=tuple(Attachment(**a) for a in payload.get("attachments", [])),
        channel_message_id=row.channel_message_id or "",
        received_at=row.created_at,
        thread_id=payload.get("thread_id"),
        reply_to=payload.get("reply_to"),
        command=payload.get("command"),
        verified_phone=payload.get("verified_phone"),
        lang_hint=payload.get("lang_hint"),
        offer=payload.get("offer"),
        notices=tuple(
            (str(key), tuple((str(name), str(value)) for name, value in params.items()))
            for key, params in payload.get("notices") or ()
        ),
    )


def working_hours(config: Config) -> WorkingHours:
    return WorkingHours(
        timezone=config.hours.timezone,
        workdays=frozenset(WEEKDAYS[d] for d in config.hours.workdays),
        opens=config.hours.opens,
        closes=config.hours.closes,
    )


def engine_context(
    conversation: Conversation | AnyRow,
    *,
    now: datetime,
    channel: Channel,
    state: State | None = None,
) -> Context:
    """What the engine is told about a stored conversation, its state loaded (or ``state``)."""
    return Context(
        beneficiary_id=conversation.beneficiary_id,
        conversation_id=conversation.id,
        status=ConversationStatus(conversation.status),
        state=State.from_json(conversation.state) if state is None else state,
        now=now,
        channel=channel,
    )


@dataclass(frozen=True)
class Delivered:
    """A reply as it left, for channels that show it at once (console, web chat)."""

    message_id: int
    reply: Reply
    at: datetime


class Service:
    def __init__(self, config: Config, *, catalog: Catalog | None = None) -> None:
        self.config = config
        self.db = Database(
            config.database.url,
            keyring=data_keyring(config),
            connect_timeout=config.database.connect_timeout_seconds,
        )
        self.group = GroupCommit(self.db)
        # On SQLite the outcomes of sends that come while the writer is busy are written
        # together: one statement for many rows, not one each.
        self.outcomes: Gathered[tuple[OutboxEntry, Outcome], str | None] = Gathered(
            self.group, lambda session, records: self._record_all(Tx(session), records)
        )
        self.files = AttachmentStore(config.storage.attachments_dir)
        self.catalog = catalog or default_catalog()
        self.knowledge = Knowledge(config.knowledge)
        self.hours = working_hours(config)
        self.engine = Engine(
            forms=self.knowledge.forms,
            catalog=self.catalog,
            faq=self.knowledge,
            hours=self.hours,
            settings=EngineSettings(
                response_days=config.engine.response_days,
                misunderstood_limit=config.engine.misunderstood_limit,
                status_attempts=config.engine.status_attempts,
                status_sender_attempts=config.engine.status_sender_attempts,
                status_reference_attempts=config.engine.status_reference_attempts,
                status_window=timedelta(minutes=config.engine.status_window_minutes),
                status_lock=timedelta(minutes=config.engine.status_lock_minutes),
                resume_after=timedelta(hours=config.engine.resume_after_hours),
            ),
        )
        self.senders: dict[str, Sender] = {}
        self.inbox_wakeup = asyncio.Event()
        self.outbox_wakeup = asyncio.Event()
        # Set on shutdown: passes under way finish the item in hand and take no new one.
        self.stopping = asyncio.Event()
        # Stored messages whose step failed in this process: how many times, since when.
        self.step_failures: dict[int, StepFailures] = {}
        self.outbox_lease = OUTBOX_LEASE
        # Since when (monotonic) the outbox has reached the database without a break, and
        # when it last did: others' ended leases are taken over only after a whole lease.
        self.outbox_reached_since: float | None = None
        self._outbox_last_reached: float | None = None
        self.metrics = Metrics()
        self._gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def close(self) -> None:
        await self.group.close()
        await self.db.dispose()

    @cached_property
    def knowledge_admin(self) -> KnowledgeEditor:
        """The knowledge-base file as the console's administrators edit it."""
        return KnowledgeEditor(self.knowledge, self.db)

    def effective_settings(self) -> list[SettingsSection]:
        return effective_settings(self.config)

    # -- inbound ----------------------------------------------------------------------------

    async def receive(self, msg: Inbound, *, prepare: bool = False) -> int | None:
        """Store an inbound message (once); its id, or None for a repeat or a flood.

        ``prepare``: embed its question first, in a worker thread, so that a step right
        after finds it ready and the event loop is not held by the model (a form's answer
        may be embedded for nothing; that costs the thread). Not while it is stored: the
        inbox worker, woken by the new message, would then take it up first.
        """
        stored = await self._receive(msg, prepare=prepare)
        return None if isinstance(stored, _Repeat) else stored

    async def _receive(self, msg: Inbound, *, prepare: bool) -> int | _Repeat | None:
        """As ``receive``, telling a repeat the store refused from a message not admitted."""
        from bot.security import admit  # bot.security names Service in its types

        if not await admit(self, msg):
            self._discard_files(msg)
            return None
        if prepare and wants_model(msg.text, None):
            await self._prepare([msg.text])
        payload = inbound_payload(msg)

        async def store(session: AsyncSession) -> Ingested | None:
            return await Tx(session).ingest(msg, payload)

        # Acknowledged only once its (shared) transaction is on disk.
        try:
            ingested = await self.group.run(store, urgent=True)
        except BaseException:
            # Not stored, not acknowledged: the channel sends it again, files and all.
            self._discard_files(msg)
            raise
        if ingested is None:
            log.info("inbound.duplicate", channel=msg.channel.value)
            self.metrics.duplicates.labels(msg.channel.value).inc()
            self._discard_files(msg)
            return REPEAT
        self.metrics.messages_in.labels(msg.channel.value).inc()
        self.inbox_wakeup.set()
        return ingested.message_id

    def _discard_files(self, msg: Inbound) -> None:
        """A message that is not stored (a flood, a repeat, a failed write) leaves none of its
        files on disk: each channel saves a message's files anew as it comes, so nothing else
        names them."""
        for attachment in msg.attachments:
            with contextlib.suppress(ValueError):  # not a reference of the store
                self.files.path(attachment.ref).unlink(missing_ok=True)

    async def process(
        self, message_id: int, *, now: datetime | None = None, urgent: bool = False
    ) -> list[Delivered]:
        """Run the engine on one stored message; lock, load, step and save in one transaction.

        A conversation's messages are stepped in order: its earlier messages still waiting
        (one whose step failed stays stored for the inbox worker) go first, and their replies
        to the same sender on the same channel come first in the list. When one of them
        fails again, or failed moments ago, this message is left stored too, for the worker
        to take after them: nothing is returned for it.
        """
        with structlog.contextvars.bound_contextvars(message_id=message_id):
            done = await self._process(message_id, now, urgent=urgent)
            if not isinstance(done, Behind):
                return done or []
            earlier = await self._catch_up(message_id, done, urgent=urgent)
            if earlier is None:
                return []
            again = await self._process(message_id, now, urgent=urgent)
            return earlier + (again if isinstance(again, list) else [])

    async def _catch_up(
        self, message_id: int, behind: Behind, *, urgent: bool
    ) -> list[Delivered] | None:
        """Step the messages waiting ahead of ``message_id`` in its conversation, oldest
        first, as the inbox worker would (a failure counts towards setting one aside). The
        replies among them to the same sender and channel, or None when one of them could
        not be stepped now (failed, resting after a failure, or held by another instance)."""
        conversation_id = behind.conversation_id
        if self.step_failures and conversation_id in self._resting(time.monotonic()):
            log.info("inbound.behind", conversation_id=conversation_id)
            return None
        async with self.db.session(write=False, short=True) as session:
            ahead = await Tx(session).pending_ahead(conversation_id, message_id)
        shown: list[Delivered] = []
        for row in ahead:
            try:
                delivered = await self._pending_step(row.id, conversation_id, urgent=urgent)
            except (ConversationBusy, OrderHeld):  # its turn is taken elsewhere, in order
                log.info("inbound.behind", conversation_id=conversation_id)
                return None
            except Exception as error:
                log.error("inbox.step_failed", exc_info=error, conversation_id=conversation_id)
                return None
            if delivered and (row.identity_id, row.channel) == (
                behind.identity_id,
                behind.channel,
            ):
                shown += delivered
        return shown

    async def _process(
        self,
        message_id: int,
        now: datetime | None,
        *,
        key: int | None = None,
        urgent: bool = False,
        set_aside: bool = False,
    ) -> list[Delivered] | Behind | None:
        """The replies of the step, or None when there was none: the message was processed
        already (by another pass or instance), or the service is stopping. ``Behind``: an
        earlier message of its conversation waits (only without ``key``: the inbox's passes
        go in order)."""
        started = time.perf_counter()

        async def step(session: AsyncSession) -> tuple[int, list[Delivered]] | Behind | None:
            if key is not None and self.stopping.is_set():
                return None  # a pending message not begun: the next start takes it
            with structlog.contextvars.bound_contextvars(message_id=message_id):
                return await self._step(session, message_id, now, key, set_aside=set_aside)

        done = await self.group.run(step, key=key, urgent=urgent)
        if done is None or isinstance(done, Behind):
            return done
        conversation_id, delivered = done
        if delivered:
            self.outbox_wakeup.set()
        self.metrics.processing.observe(time.perf_counter() - started)
        log.info("inbound.processed", replies=len(delivered), conversation_id=conversation_id)
        return delivered

    async def _step(
        self,
        session: AsyncSession,
        message_id: int,
        now: datetime | None,
        conversation_id: int | None = None,
        *,
        set_aside: bool = False,
    ) -> tuple[int, list[Delivered]] | Behind | None:
        """The engine's step on one message, inside a transaction that may hold others.

        ``conversation_id`` is given by the inbox's passes, which take a conversation's
        messages oldest first; without it, a message with an earlier one of its conversation
        still waiting is not stepped (``Behind``).
        ``set_aside``: instead of the engine's step, hand the conversation to staff and mark
        the message processed (the step keeps failing on it)."""
        tx = Tx(session)
        # On PostgreSQL a pass leaves a conversation held by another instance's step to it.
        claimed = await tx.claim_inbound(
            message_id,
            conversation_id,
            wait=conversation_id is None or self.group.batching,
            in_turn=conversation_id is not None,
        )
        if claimed is None or isinstance(claimed, Behind):
            return claimed
        if set_aside:  # before reading the message: what failed may be in it
            return await self._hand_over(tx, claimed, now)
        conversation = claimed.conversation
        msg = inbound_from_row(claimed.message, claimed.address or "")
        if (
            not self.group.batching
            and wants_model(msg.text, conversation.state)
            and not self.knowledge.ready(msg.text)
        ):
            # In a worker thread, not on the loop: this transaction holds only this
            # conversation meanwhile (a new message of it is still stored at once).
            await self._prepare([msg.text])
        ctx = engine_context(conversation, now=now or datetime.now(UTC), channel=msg.channel)
        with structlog.contextvars.bound_contextvars(conversation_id=conversation.id):
            replies = await self._answer(msg, ctx, tx)
        if msg.channel in COMBINED_CHANNELS:
            replies = combine_replies(replies)
        return await self._save_step(tx, claimed, ctx, replies)

    async def _answer(self, msg: Inbound, ctx: Context, tx: Tx) -> list[Reply]:
        """The engine's answer, after what the channel had to tell about the message (a file
        not kept). A message with nothing else in it is not the engine's: it is told, asked
        again the question it may not have answered, and the step stays where it was."""
        if not msg.notices or msg.text.strip() or msg.attachments or msg.command:
            replies = await self.engine.handle(msg, ctx, tx)
        else:  # the question waiting, if one does, asked again under the notice
            replies = self.engine.question_again(ctx)
        notices = [self.engine.reply(ctx, key, **dict(params)) for key, params in msg.notices]
        return [*notices, *replies]

    async def _save_step(
        self, tx: Tx, claimed: Any, ctx: Context, replies: list[Reply]
    ) -> tuple[int, list[Delivered]]:
        """The step's outcome stored: the conversation's state and status, the message
        processed, the replies queued."""
        rows = await tx.save_step(
            claimed, state=ctx.state.to_json(), status=ctx.status.value, replies=replies
        )
        return ctx.conversation_id, [
            Delivered(r.id, reply, r.created_at) for r, reply in zip(rows, replies, strict=True)
        ]

    async def _hand_over(
        self, tx: Tx, claimed: Any, now: datetime | None
    ) -> tuple[int, list[Delivered]]:
        """A message the step keeps failing on: it is marked processed, and a conversation
        with the bot goes to the staff queue, the beneficiary told a person will answer (one
        waiting for or with a person is left as it is: they see the message)."""
        conversation = claimed.conversation
        now = now or datetime.now(UTC)
        channel = Channel.WEBCHAT
        with contextlib.suppress(ValueError):
            channel = Channel(claimed.message.channel)
        try:
            ctx = engine_context(conversation, now=now, channel=channel)
        except Exception:  # a state the engine cannot read: only its language is kept
            raw = conversation.state if isinstance(conversation.state, dict) else {}
            lang = raw.get("lang")
            state = State(lang=lang if lang in ("ar", "en") else None)
            ctx = engine_context(conversation, now=now, channel=channel, state=state)
        replies: list[Reply] = []
        if ctx.status is ConversationStatus.BOT:
            replies = await self.engine.handoff(ctx, tx, HandoffReason.ERROR)
        return await self._save_step(tx, claimed, ctx, replies)

    async def handle(self, msg: Inbound) -> list[Delivered]:
        """Receive and process at once (terminal and web chat answer in the same exchange).

        A message its channel sent before (the same ``channel_message_id``: the web chat's
        page sends one again when the answer to it was lost) is not stored or processed
        again: the answer is the replies it got (its step is tried now if it still waits)."""
        stored = await self._receive(msg, prepare=True)
        if isinstance(stored, _Repeat):
            return await self._answered(msg)
        if stored is None:
            return []
        return await self.process(stored, now=msg.received_at, urgent=True)

    async def _answered(self, msg: Inbound) -> list[Delivered]:
        """The replies to a message stored before, as ``handle`` gave them: a step that
        failed on it is tried now (in its turn), otherwise the replies that followed it."""
        async with self.db.session(write=False, short=True) as session:
            found = await Tx(session).stored_inbound(msg.channel, msg.channel_message_id)
        if found is None:
            return []
        if found.processed_at is None:
            delivered = await self.process(found.id, urgent=True)
            if delivered:
                return delivered
        async with self.db.session(write=False, short=True) as session:
            rows = await Tx(session).replies_to(found)
        return [Delivered(r.id, Reply.from_dict(r.payload), r.created_at) for r in rows]

    async def process_pending(self) -> int:
        """Process every stored message not yet processed (after a crash, or from webhooks).

        Those of one conversation are taken in order, and one that fails holds back the later
        ones of its conversation (they wait for the next pass) while the other conversations
        go on. On SQLite the steps share the writer's transactions (``_pending_in_lines``);
        on PostgreSQL each has its own, and instances share the list
        (``_pending_side_by_side``). Returns how many messages this call processed.
        """
        if self.group.batching:
            return await self._pending_in_lines()
        count = 0
        busy: dict[int, float] = {}  # PostgreSQL: held by another instance's step, since
        looks = 0
        while True:
            now = time.monotonic()
            busy = {key: since for key, since in busy.items() if now - since < BUSY_SECONDS}
            besides = busy.keys() | self._resting(now) if self.step_failures else busy.keys()
            async with self.db.session(write=False, short=True) as session:
                pending = await pending_messages(session, PENDING_PASS, besides=besides)
            if self.stopping.is_set():
                return count  # left stored and unprocessed: the next start takes it
            if not pending:
                if not busy or looks == BUSY_LOOKS:
                    return count
                # Only conversations held elsewhere are left: that instance takes up what
                # follows them, but look again in case it was not a pass that held them.
                looks += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), BUSY_SECONDS)
                continue
            done, held = await self._pending_side_by_side(pending)
            count += done
            now = time.monotonic()
            busy.update(dict.fromkeys(held, now))

    async def _pending_in_lines(self) -> int:
        """SQLite: every conversation with messages waiting is a line, its messages stepped
        one after the other, in order; the lines run side by side, so that their steps share
        the writer's transactions.

        A question the model has not seen is embedded in a worker thread before its step
        (``QuestionsAhead``), outside any transaction, so the writer is never held by the
        model; only that question's own line waits for it, while the other conversations'
        menu numbers, form answers and questions asked before go on. More waiting messages are
        read once half of the lines are done, leaving out the conversations still under way;
        a conversation whose step failed waits for the next call. At most ``STEPS_AT_ONCE``
        steps wait for the writer at a time. Once stopping, or when a read fails, no line is
        started and those under way finish. Returns how many messages this call processed.
        """
        lines: dict[int, asyncio.Task[int]] = {}
        # The conversations whose line has ended, as they end: waiting on this rather than
        # on every line at once (``asyncio.wait``) costs nothing for the lines still going,
        # where that would hook into and out of each of them every time one ends.
        ended: asyncio.Queue[int] = asyncio.Queue()
        failed: set[int] = set()  # conversations with a failed message: the rest wait
        errors: list[BaseException] = []
        ahead = QuestionsAhead(self.knowledge, self._prepare, self.stopping)
        steps = asyncio.Semaphore(STEPS_AT_ONCE)
        count = 0
        reading = True
        try:
            while True:
                if reading and not self.stopping.is_set():
                    try:
                        await self._start_lines(lines, failed, ahead, steps, ended)
                    except Exception as unread:
                        # The waiting messages could not be read (the database failed):
                        # the lines under way finish, then the error is raised.
                        errors.insert(0, unread)
                        reading = False
                if not lines:
                    break
                keep = len(lines) // 2
                while len(lines) > keep:
                    key = await ended.get()
                    task = lines.pop(key)
                    error = task.exception()
                    if error is None:
                        count += task.result()
                        continue
                    failed.add(key)
                    if not isinstance(error, OrderHeld):  # behind a failed one: waits
                        errors.append(error)
        finally:
            for task in lines.values():
                task.cancel()
            for task in lines.values():
                with contextlib.suppress(BaseException):
                    await task
            ahead.close()
        raise_first(errors)
        return count

    async def _start_lines(
        self,
        lines: dict[int, asyncio.Task[int]],
        failed: set[int],
        ahead: QuestionsAhead,
        steps: asyncio.Semaphore,
        ended: asyncio.Queue[int],
    ) -> None:
        """Read the waiting messages of conversations without a line and start theirs;
        each line puts its conversation on ``ended`` when it ends."""
        leave_out = lines.keys() | failed
        if self.step_failures:
            leave_out |= self._resting(time.monotonic())
        async with self.db.session(write=False, short=True) as session:
            pending = await pending_messages(session, PENDING_PASS, besides=leave_out)
        waiting: dict[int, list[tuple[int, asyncio.Future[None] | None]]] = {}
        for message_id, key, text, state in pending:
            question = ahead.embed(text) if wants_model(text, state) else None
            waiting.setdefault(key, []).append((message_id, question))
        for key, messages in waiting.items():
            line = asyncio.create_task(self._line(key, messages, steps), name="inbox-line")
            line.add_done_callback(functools.partial(_put_key, ended, key))
            lines[key] = line

    async def _line(
        self,
        key: int,
        messages: Sequence[tuple[int, asyncio.Future[None] | None]],
        steps: asyncio.Semaphore,
    ) -> int:
        """One conversation's waiting messages, in order; how many were processed here."""
        taken = 0
        for message_id, question in messages:
            if question is not None:
                await question
            async with steps:
                if self.stopping.is_set():
                    break
                taken += await self._pending_one(message_id, key)
        return taken

    async def _pending_side_by_side(self, pending: Sequence[Any]) -> tuple[int, set[int]]:
        """PostgreSQL: several conversations' steps at once, each in its own transaction.

        Other instances read the same list: a conversation whose step is under way in
        another one is passed over (with its later messages), not waited for, so that the
        instances share the work instead of queueing behind each other's locks. Each step
        embeds its own question, once it holds the conversation, so a question is embedded
        by the instance that answers it. Returns the messages taken and the conversations
        passed over.
        """
        lines: dict[int, list[int]] = {}
        for message_id, key, _, _ in pending:
            lines.setdefault(key, []).append(message_id)
        gate = asyncio.Semaphore(SIDE_BY_SIDE)
        held: set[int] = set()
        errors: list[BaseException] = []

        async def line(key: int, message_ids: list[int]) -> int:
            taken = 0
            async with gate:
                for message_id in message_ids:
                    if self.stopping.is_set():
                        break
                    try:
                        taken += await self._pending_one(message_id, key)
                    except ConversationBusy:
                        held.add(key)
                        break
                    except Exception as exc:  # the later messages of this one wait
                        errors.append(exc)
                        break
            return taken

        taken = sum(await asyncio.gather(*(line(k, ids) for k, ids in lines.items())))
        raise_first(errors)
        return taken, held

    async def _prepare(self, questions: Sequence[str]) -> None:
        """Embed questions ahead; only a cache is warmed, so a failure is logged."""
        if not questions:  # form answers, menu numbers: nothing for the model
            return
        try:
            await asyncio.to_thread(self.knowledge.prepare, questions)
        except Exception:
            log.exception("inbox.prepare_failed")

    async def _pending_one(self, message_id: int, conversation_id: int) -> bool:
        """Whether the message was processed by this call (see ``_pending_step``)."""
        return await self._pending_step(message_id, conversation_id) is not None

    async def _pending_step(
        self, message_id: int, conversation_id: int, *, urgent: bool = False
    ) -> list[Delivered] | None:
        """The replies of the message's step, or None when this call did not process it.

        A step that fails is tried again at the next pass, the conversation's later messages
        waiting behind it; once it has failed ``STEP_ATTEMPTS`` times over
        ``STEP_RETRY_SECONDS`` in this process, the message is set aside (``_hand_over``), so
        that a fault in the bot does not silence the conversation for good."""
        with structlog.contextvars.bound_contextvars(message_id=message_id):
            try:
                done = await self._process(message_id, None, key=conversation_id, urgent=urgent)
            except (ConversationBusy, OrderHeld):
                raise
            except Exception as error:
                if transient(error) or not self._keeps_failing(message_id, conversation_id):
                    raise
                done = await self._process(
                    message_id, None, key=conversation_id, urgent=urgent, set_aside=True
                )
                if done is not None:
                    log.error("inbox.set_aside", exc_info=error, conversation_id=conversation_id)
                    self.metrics.set_aside.inc()
            self.step_failures.pop(message_id, None)
            return done if isinstance(done, list) else None

    def _keeps_failing(self, message_id: int, conversation_id: int) -> bool:
        """Count a failed step on the message; whether it is time to set the message aside."""
        now = time.monotonic()
        failures = self.step_failures.pop(message_id, None)
        if failures is None:
            failures = StepFailures(conversation_id, 0, now, now)
        failures.count += 1
        failures.last = now
        self.step_failures[message_id] = failures  # the newest last
        while len(self.step_failures) > STEP_FAILURES_KEPT:
            del self.step_failures[next(iter(self.step_failures))]
        return failures.count >= STEP_ATTEMPTS and now - failures.first >= STEP_RETRY_SECONDS

    def _resting(self, now: float) -> set[int]:
        """Conversations whose message failed a step moments ago: left out of passes."""
        return {
            f.conversation_id
            for f in self.step_failures.values()
            if now - f.last < STEP_REST_SECONDS
        }

    async def set_aside(self, message_id: int, error: BaseException) -> bool:
        """Set a stored message aside at once, without the engine's step (``_hand_over``):
        a channel kept failing on what came with it. Whether this call did it (not when the
        inbox took the message first)."""
        with structlog.contextvars.bound_contextvars(message_id=message_id):
            done = await self._process(message_id, None, set_aside=True)
            if done is not None:
                log.error("inbox.set_aside", exc_info=error)
                self.metrics.set_aside.inc()
        return done is not None

    # -- outbound ---------------------------------------------------------------------------

    def backoff(self, attempts: int) -> float:
        cfg = self.config.outbox
        delay = min(cfg.max_delay_seconds, cfg.base_delay_seconds * 2.0 ** max(attempts - 1, 0))
        return delay * random.uniform(0.5, 1.0)

    async def deliver_due(self) -> int:
        """One pass over the outbox: claim what is due, send it, record what happened.

        Sending happens outside any database transaction (a slow channel must not hold up
        inbound messages); a claimed item carries a lease, so one left "sending" by a
        process that died is taken up again. Each outcome is recorded as soon as the
        channel answers, so a crash can repeat at most the one send in hand. Replies of
        one conversation leave in order.
        """
        if not self.senders:
            return 0
        lease = self.outbox_lease
        # Sends must be over well before the lease ends, or another pass could repeat them.
        deadline = time.monotonic() + lease.total_seconds() * 0.75

        async def claim(session: AsyncSession) -> list[tuple[OutboxEntry, Delivery, AnyRow | None]]:
            tx = Tx(session)
            # Leases are written and judged by one clock (PostgreSQL's, shared by every
            # instance): an instance whose clock runs ahead must not end another's lease early.
            now = await tx.clock()
            if self._may_take_over():
                await tx.release_expired_leases(now)
            items = await tx.claim_outbox(now, list(self.senders), now + lease)
            return await self._deliveries(tx, items)

        try:
            # On SQLite a unit of the writer's transactions: it neither holds SQLite's one
            # write lock for a commit of its own nor waits for the writer's. A pass cut off
            # (at shutdown) once the writer has taken its claim still has the claim
            # committed: those replies stay "sending" until their lease ends, and a later
            # pass (or the next start) sends them, as after a crash.
            claimed = await self.group.run(claim)
        except Exception as exc:
            self._database_failed(exc)
            raise
        self._database_reached()
        lines: dict[int, list[tuple[OutboxEntry, Delivery, AnyRow | None]]] = {}
        for entry in claimed:
            lines.setdefault(entry[0].conversation_id, []).append(entry)
        later: list[OutboxEntry] = []
        gate = self._send_gate()

        async def one_conversation(
            entries: list[tuple[OutboxEntry, Delivery, AnyRow | None]],
        ) -> int:
            # In order within the conversation; a failure holds back the replies after it.
            sent = 0
            for position, (item, delivery, identity) in enumerate(entries):
                try:
                    outcome, held = await self._deliver_one(
                        item, delivery, identity, gate, deadline
                    )
                except Exception:
                    # Not written down: it stays "sending" until its lease ends, and the
                    # conversation's later replies wait behind it, untried.
                    later.extend(e[0] for e in entries[position + 1 :])
                    raise
                if outcome is None:  # out of time, or stopping: not tried
                    later.extend(e[0] for e in entries[position:])
                    break
                if not held or not isinstance(outcome, Sent):
                    later.extend(e[0] for e in entries[position + 1 :])
                    break
                sent += 1
            return sent

        # Conversations go out side by side: one slow recipient does not hold up the others,
        # and one whose outcome cannot be written does not leave the others' unrecorded.
        results = await asyncio.gather(
            *(one_conversation(e) for e in lines.values()), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if later:
            records: list[tuple[OutboxEntry, Outcome]] = [(item, _Later()) for item in later]
            await self.group.run(lambda session: self._record_all(Tx(session), records))
        for error in errors[1:]:
            log.error("outbox.error", exc_info=error)
        if errors:
            raise errors[0]
        return sum(r for r in results if isinstance(r, int))

    def _send_gate(self) -> asyncio.Semaphore:
        """Bounds the requests to the channels in flight, over every pass under way, not the
        outcomes being recorded: a slot is free again as soon as the channel has answered."""
        loop = asyncio.get_running_loop()
        if self._gate is None or self._gate[0] is not loop:
            self._gate = (loop, asyncio.Semaphore(self.config.outbox.concurrency))
        return self._gate[1]

    async def _deliver_one(
        self,
        item: OutboxEntry,
        delivery: Delivery,
        identity: AnyRow | None,
        gate: asyncio.Semaphore,
        deadline: float,
    ) -> tuple[Outcome | None, bool]:
        """Send one claimed item, holding one of the ``gate``'s slots, and record the outcome
        before the next of its conversation; None, untried, when ``deadline`` (monotonic) has
        passed once a slot is free, or the service is stopping. With it, whether the claim
        still held when the outcome was recorded.

        On SQLite the slot is free again once the channel has answered: the outcome waits for
        the single writer, not for a connection. On PostgreSQL each outcome is written on a
        pooled connection of its own, so the slot is kept until it is, which bounds how many
        connections the outbox takes at once.
        """
        with structlog.contextvars.bound_contextvars(
            conversation_id=item.conversation_id, outbox_id=item.id
        ):
            async with gate:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.stopping.is_set():
                    return None, True
                try:
                    outcome: Outcome = await asyncio.wait_for(
                        self._send(item, delivery, identity), remaining
                    )
                except TimeoutError:
                    # Whether the channel took it is unknown: it is tried again (at least once).
                    outcome = DeliveryError("send timed out")
                if not self.group.batching:
                    return outcome, await self._record_outcome(item, outcome)
            return outcome, await self._record_outcome(item, outcome)

    async def _record_outcome(self, item: OutboxEntry, outcome: Outcome) -> bool:
        """Write down what became of a claimed item; False when its claim no longer held."""

        async def record(session: AsyncSession) -> str | None:
            # The claimed row as it was committed: written only while this claim holds,
            # so nobody else changed it since (no need to read it again).
            (counted,) = await self._record_all(Tx(session), [(item, outcome)])
            return counted

        # Counted once it is committed: a unit may run again (a batch split, a conflict).
        if self.group.batching:
            try:
                counted = await self.outcomes.run((item, outcome))
            except Exception:
                # Written with others, it failed with them (one of them at fault, or the
                # database): written alone now, as if it had been from the start.
                counted = await self._until_recorded(record, item)
        else:
            counted = await self._until_recorded(record, item)
        if counted == TAKEN_OVER:
            self._taken_over(item, outcome)
            return False
        if counted == "sent":
            self.metrics.delivered(item.channel, item.created_at)
        elif counted is not None:
            self.metrics.outbox_errors.labels(item.channel, counted).inc()
        return True

    async def _until_recorded(
        self, record: Callable[[AsyncSession], Awaitable[str | None]], item: OutboxEntry
    ) -> str | None:
        """Run ``record`` until it is committed. The channel has answered: an outcome not
        written down would leave the item "sending", and a reply the channel accepted would
        go out again when its lease ends. So a failure of the database (locked by another
        process, a lost connection, a fail-over) is retried for as long as this process
        lives, with growing pauses; the conversation's next reply waits for it."""
        pause = RECORD_RETRY_FIRST
        most = min(RECORD_RETRY_MOST, self.outbox_lease.total_seconds() / 4)
        while True:
            try:
                counted = await self.group.run(record, key=("outbox", item.conversation_id))
            except Exception as exc:
                # OrderHeld: an earlier unit of the conversation failed in the same batch.
                if not (transient(exc) or isinstance(exc, OrderHeld)):
                    raise
                self._database_failed(exc)
                log.warning(
                    "outbox.record_retry",
                    outbox_id=item.id,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    wait=round(pause, 2),
                )
            else:
                self._database_reached()
                return counted
            await asyncio.sleep(pause)
            pause = min(pause * 2, most)
            await self._keep_claim(item)

    async def _keep_claim(self, item: OutboxEntry) -> None:
        """Renew a claimed item's lease while its outcome waits to be written, so that no
        other instance takes it over and sends it again meanwhile (PostgreSQL; on SQLite one
        process sends, and its passes do not overlap). A failure is left to the record."""
        if self.db.is_sqlite:
            return
        try:
            async with self.db.session(short=True) as session:
                tx = Tx(session)
                await tx.extend_lease(item, await tx.clock() + self.outbox_lease)
        except Exception as exc:
            if not transient(exc):
                log.exception("outbox.lease_renewal_failed", outbox_id=item.id)

    def _may_take_over(self) -> bool:
        """Whether this instance may end others' leases: on PostgreSQL, once it has reached
        the database without a break for a whole lease. After an outage (a fail-over, the
        network), the instance whose outcome waited to be written retries within a quarter
        of a lease, so it writes it before anyone takes the item over and sends it again."""
        if self.db.is_sqlite:
            return True
        since = self.outbox_reached_since
        return since is not None and time.monotonic() - since >= self.outbox_lease.total_seconds()

    def _database_reached(self) -> None:
        now = time.monotonic()
        last = self._outbox_last_reached
        # A silence longer than a lease may hide an outage this instance did not see.
        if last is None or now - last > self.outbox_lease.total_seconds():
            self.outbox_reached_since = None
        if self.outbox_reached_since is None:
            self.outbox_reached_since = now
        self._outbox_last_reached = now

    def _database_failed(self, error: BaseException) -> None:
        if transient(error):
            self.outbox_reached_since = None

    @property
    def outbox_poll_seconds(self) -> float:
        """The outbox's longest idle wait: on PostgreSQL at most a quarter of a lease, so that
        an instance sees an outage of the database that would let it end others' leases."""
        seconds = self.config.outbox.poll_seconds
        if self.db.is_sqlite:
            return seconds
        return min(seconds, self.outbox_lease.total_seconds() / 4)

    @staticmethod
    def _taken_over(item: OutboxEntry, outcome: Outcome) -> None:
        """The item's lease ended before its outcome was recorded and another pass claimed it:
        that pass's record stands. A reply this pass had delivered may then reach the
        beneficiary twice; the log says so."""
        if isinstance(outcome, _Later):
            return
        log.warning(
            "outbox.lease_lost",
            outbox_id=item.id,
            channel=item.channel,
            delivered=isinstance(outcome, Sent),
            provider_id=outcome.provider_id if isinstance(outcome, Sent) else None,
        )

    async def _deliveries(
        self, tx: Tx, items: Sequence[OutboxEntry]
    ) -> list[tuple[OutboxEntry, Delivery, AnyRow | None]]:
        """What sending each claimed item needs, read for all of them at once."""
        rows = await tx.delivery_rows(items)
        claimed = []
        for item in items:
            reply = Reply.from_dict(rows.messages[item.message_id].payload)
            conversation = rows.conversations.get(item.conversation_id)
            state = conversation.state if conversation is not None else None
            identity = rows.identities.get(item.identity_id) if item.identity_id else None
            last_in = rows.latest_inbound.get(item.identity_id) if item.identity_id else None
            delivery = Delivery(
                outbox_id=item.id,
                channel=Channel(item.channel),
                address=item.address,
                reply=reply,
                kind=DeliveryKind(item.kind),
                lang=reply.lang or (state or {}).get("lang") or "ar",
                last_inbound_at=identity.last_inbound_at if identity else None,
                in_reply_to=last_in.channel_message_id if last_in else None,
                thread_id=(last_in.payload or {}).get("thread_id") if last_in else None,
            )
            claimed.append((item, delivery, identity))
        return claimed

    async def _send(
        self, item: OutboxEntry, delivery: Delivery, identity: AnyRow | None
    ) -> Outcome:
        if identity is not None and identity.opted_out:
            return _Skip("cancelled", "opted out")
        if identity is not None and identity.unreachable:
            return _Skip("failed", "unreachable: the address refused earlier messages")
        sender = self.senders[item.channel]
        try:
            return await sender.send(delivery)
        except DeliveryError as exc:
            return exc

    async def _record_all(
        self, tx: Tx, records: Sequence[tuple[OutboxEntry, Outcome]]
    ) -> list[str | None]:
        """The outcomes of sends written down; for each, what to count once it is committed
        ("sent", or the kind of failure), None, or TAKEN_OVER when its claim no longer held.
        Run by the writer task, which does not share the senders' log context."""
        written: list[tuple[dict[str, Any], str | None]] = []
        for item, outcome in records:
            with structlog.contextvars.bound_contextvars(
                conversation_id=item.conversation_id, outbox_id=item.id
            ):
                written.append(await self._written(tx, item, outcome))
        held = await tx.record_outcomes(
            [(item, values) for (item, _), (values, _) in zip(records, written, strict=True)]
        )
        counted: list[str | None] = []
        for (item, outcome), (_, label), holds in zip(records, written, held, strict=True):
            if not holds:
                counted.append(TAKEN_OVER)
                continue
            if isinstance(outcome, Unreachable):
                if item.identity_id:
                    await tx.mark_unreachable(item.identity_id)
                log.warning(
                    "outbox.unreachable",
                    conversation_id=item.conversation_id,
                    outbox_id=item.id,
                    channel=item.channel,
                )
            counted.append(label)
        return counted

    async def _written(
        self, tx: Tx, item: OutboxEntry, outcome: Outcome
    ) -> tuple[dict[str, Any], str | None]:
        """The columns an outcome sets on its item, and what to count once it is written."""
        if isinstance(outcome, _Later):
            return {"status": "pending", "next_attempt_at": await tx.clock()}, None
        if isinstance(outcome, _Skip):
            return {"status": outcome.status, "last_error": outcome.reason}, None
        attempts = item.attempts + 1
        if isinstance(outcome, Sent):
            values = {
                "attempts": attempts,
                "status": "sent",
                "sent_at": utcnow(),
                "provider_id": outcome.provider_id,
                "parts": outcome.parts,
                "last_error": None,
            }
            return values, "sent"
        values = {"attempts": attempts, "last_error": outcome.reason[:500]}
        if isinstance(outcome, Unreachable):
            values["status"], label = "failed", "unreachable"
            values["last_error"] = f"unreachable: {outcome.reason}"[:500]
        elif isinstance(outcome, Held):
            values["status"], label = "held", "held"
            log.warning("outbox.held", outbox_id=item.id, channel=item.channel)
        elif attempts >= self.config.outbox.max_attempts:
            values["status"], label = "failed", "failed"
            log.error("outbox.failed", outbox_id=item.id, attempts=attempts)
        else:
            values["status"], label = "pending", "retry"
            wait = (
                outcome.retry_after if isinstance(outcome, RateLimited) else self.backoff(attempts)
            )
            values["next_attempt_at"] = await tx.clock() + timedelta(seconds=wait)
            log.warning("outbox.retry", outbox_id=item.id, attempts=attempts, wait=wait)
        return values, label

    async def failed_outbox(self) -> list[OutboxItem]:
        """Items set aside (failed after their attempts, or held for staff), oldest first."""
        async with self.db.session(write=False) as session:
            return await Tx(session).failed_outbox()

    async def retry_outbox(self, ids: Sequence[int] | None) -> list[int]:
        """Queue failed or held items again (all of them when ``ids`` is None)."""
        async with self.db.session() as session:
            retried = await Tx(session).retry_outbox(ids)
        if retried:
            self.outbox_wakeup.set()
        return retried

    async def set_opt_out(self, kind: str, address: str, opted_out: bool) -> bool:
        async with self.db.session() as session:
            return await Tx(session).set_opt_out(kind, address, opted_out)

    async def record_provider_status(
        self, provider_id: str, status: str, error_code: str | None = None
    ) -> bool:
        async with self.db.session() as session:
            item = await Tx(session).record_provider_status(provider_id, status, error_code)
        return item is not None

    async def received(self, channel: Channel, channel_message_id: str) -> bool:
        """A channel's retry of a message already stored (answered without fetching again)."""
        async with self.db.quick_read() as connection:
            return await received(connection, channel, channel_message_id)

    async def cursor(self, name: str) -> dict[str, Any]:
        async with self.db.session(write=False) as session:
            return await Tx(session).cursor(name)

    async def waiting_replies(self, channel: Channel, address: str) -> list[Reply]:
        """What is still to be shown to an address on a channel that displays replies itself
        (a staff member's reply to a terminal conversation), marked delivered."""
        async with self.db.session() as session:
            found = await Tx(session).waiting_for(identity_kind(channel), address)
            _shown([item for item, _ in found])
        return [Reply.from_dict(message.payload or {"text": message.text}) for _, message in found]

    async def mark_sent(self, message_ids: Sequence[int]) -> None:
        """Channels that show replies themselves (terminal, web chat) deliver on display."""
        if not message_ids:
            return
        async with self.db.session() as session:
            _shown(await Tx(session).outbox_for_messages(message_ids))

    # -- staff-side actions that speak to the beneficiary ------------------------------------------

    async def _say(
        self, tx: Tx, conversation: Conversation, build: Any, kind: DeliveryKind
    ) -> None:
        channel = Channel(conversation.last_channel or "webchat")
        ctx = engine_context(conversation, now=datetime.now(UTC), channel=channel)
        state = ctx.state
        replies = build(ctx)
        if ctx.offers:  # a question asked now (a rating, a form's again): its buttons count
            state.offers = sorted(set(ctx.offers))
        conversation.state = state.to_json()
        await tx.queue_replies(conversation, replies, kind=kind.value)
        self.outbox_wakeup.set()

    async def change_request_status(
        self, reference: str, status: RequestStatus, *, actor: str, note: str = ""
    ) -> None:
        """Record the change, tell the beneficiary, and ask for a rating when it closes (P9)."""
        async with self.db.session() as session:
            tx = Tx(session)
            request = await tx.request_by_reference(reference)
            # Locked before its state is read (a step saving the state meanwhile is waited
            # for, not overwritten), and before the request, in the order a step takes them.
            conversation = await tx.open_conversation_for_update(request.beneficiary_id)
            await session.refresh(request, with_for_update=True)  # as the step left it
            await tx.change_status(request, status, actor=actor, note=note)
            if conversation.last_identity_id is None and request.conversation_id:
                previous = await session.get(Conversation, request.conversation_id)
                if previous is not None:
                    conversation.last_identity_id = previous.last_identity_id
                    conversation.last_channel = previous.last_channel

            def build(ctx: Context) -> list[Reply]:
                key = "notify.status_note" if note else "notify.status_changed"
                after: list[Reply] = []
                if status is RequestStatus.NEEDS_INFO:
                    after = self.engine.await_info(ctx, reference)
                    key = "notify.needs_info"
                elif ctx.state.info_request == reference and status in DECIDED:
                    ctx.state.info_request = None
                label = self.engine.t(ctx, f"status.name.{status.value}")
                replies = [
                    self.engine.reply(ctx, key, reference=reference, status=label, note=note),
                    *after,
                ]
                if status is RequestStatus.CLOSED:
                    # Not over a form's question: then once the form is over.
                    replies += self.engine.ask_rating_when_free(ctx, reference)
                return replies

            await self._say(tx, conversation, build, DeliveryKind.DECISION)

    async def close_conversation(self, conversation_id: int, *, actor: str) -> bool:
        """Staff close a conversation: the bot takes over again and, when a staff member had
        taken this handover (even if it went back to the queue since), asks for a rating;
        one closed before anyone took it says so, and asks nothing. Whether a rating was
        asked for; NotOpen for a conversation the bot already has."""
        async with self.db.session() as session:
            tx = Tx(session)
            conversation = await tx.conversation_for_update(conversation_id)
            status = conversation.status
            if status not in ("staff", "queued"):
                # Closed already (or never handed over): nothing to tell the beneficiary.
                raise NotOpen(str(conversation_id))
            taken = status == "staff" or (
                status == "queued" and await tx.taken_since(conversation.id, conversation.queued_at)
            )
            untaken = status == "queued" and not taken
            await tx.end_turn(conversation.id, "closed")
            conversation.status = "bot"
            conversation.handoff_reason = None
            conversation.queued_at = None
            conversation.assigned_to = None
            await tx.audit(actor, "conversation.closed", str(conversation_id))

            def build(ctx: Context) -> list[Reply]:
                ctx.status = ConversationStatus.BOT
                if untaken:
                    return [self.engine.reply(ctx, "notify.closed_in_queue"), self.engine.menu(ctx)]
                replies = [self.engine.reply(ctx, "notify.closed")]
                if taken:
                    replies += self.engine.start_survey(ctx, None)
                return replies

            await self._say(tx, conversation, build, DeliveryKind.NOTIFICATION)
        return taken


async def run_workers(service: Service, stop: asyncio.Event, senders: Mapping[str, Sender]) -> None:
    """Process stored inbound messages and deliver the outbox until ``stop`` is set."""
    service.senders.update(senders)
    service.stopping = stop

    poll = service.outbox_poll_seconds
    outbox = [
        _repeat("outbox", service.deliver_due, service.outbox_wakeup, stop, poll)
        for _ in range(OUTBOX_PASSES)
    ]
    await asyncio.gather(
        _repeat("inbox", service.process_pending, service.inbox_wakeup, stop, 5.0), *outbox
    )


async def _repeat(
    name: str,
    work: Callable[[], Awaitable[int]],
    wakeup: asyncio.Event,
    stop: asyncio.Event,
    seconds: float,
) -> None:
    """Run ``work`` whenever woken, or every ``seconds``, until stopped; errors are logged.

    After a failure it waits before trying again, longer each time (up to
    ``MAX_WORKER_PAUSE``), whatever wakes it: while the database is down every webhook wakes
    it, and it would spin and fill the log with the same error. The first failure is logged
    with its traceback, the next ones in a line each."""
    failures = 0
    while not stop.is_set():
        wakeup.clear()
        try:
            await work()
        except Exception as error:
            failures += 1
            if failures == 1 or not transient(error):
                log.exception(f"{name}.error", failures=failures)
            else:
                log.warning(f"{name}.error", failures=failures, error=type(error).__name__)
            pause = min(MAX_WORKER_PAUSE, 0.5 * 2 ** (failures - 1)) * random.uniform(0.5, 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), pause)
            continue
        if failures:
            log.info(f"{name}.recovered", failures=failures)
            failures = 0
        await _wait(wakeup, stop, seconds)


async def _wait(event: asyncio.Event, stop: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
