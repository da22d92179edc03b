"""What storage promises, checked the same way on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy import func, select, text

from conversations.messages import Channel, Inbound, Reply
from conversations.ports import RequestStatus, Submission
from storage.db import Database
from storage.locks import Job, run_singleton, singleton
from storage.migrate import current_revision, head_revision, upgrade
from storage.models import (
    Beneficiary,
    Conversation,
    Identity,
    OutboxItem,
    ProviderReport,
    hashed_match,
    utcnow,
)
from storage.repository import InvalidTransition, Tx
from tests.conftest import TEST_KEYRING, statements_seen
from tests.pg.fixtures import database_url, pg_cluster  # noqa: F401

AT = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
T = TypeVar("T")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:  # noqa: F811
    database = Database(database_url, keyring=TEST_KEYRING)
    await upgrade(database.engine)
    yield database
    await database.dispose()


def inbound(
    sender: str, message_id: str, channel: Channel = Channel.WHATSAPP, **kw: object
) -> Inbound:
    return Inbound(
        channel=channel,
        sender_id=sender,
        text="مرحبا",
        channel_message_id=message_id,
        received_at=AT,
        **kw,  # type: ignore[arg-type]
    )


async def ingest(db: Database, msg: Inbound) -> int | None:
    async with db.session() as s:
        ingested = await Tx(s).ingest(msg, {})
    return ingested.message_id if ingested else None


async def count(db: Database, model: type) -> int:
    async with db.session(write=False) as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def only(db: Database, model: type[T]) -> T:
    """The one row of ``model``'s table, as committed."""
    async with db.session(write=False) as s:
        row: T | None = await s.scalar(select(model))
        assert row is not None
        return row


async def test_schema_is_at_head(db: Database) -> None:
    assert await current_revision(db.engine) == head_revision()
    async with db.session() as s:
        # Server defaults of later migrations fill rows written without them.
        await s.execute(
            text("INSERT INTO beneficiaries (created_at, display_name) VALUES (:at, '')"),
            {"at": AT},
        )
        bid = await s.scalar(select(Beneficiary.id))
        await s.execute(
            text(
                "INSERT INTO identities (beneficiary_id, kind, address, created_at, unreachable)"
                " VALUES (:b, 'phone', '+966500000001', :at, :f)"
            ),
            {"b": bid, "at": AT, "f": False},
        )
    async with db.session(write=False) as s:
        identity = await s.scalar(select(Identity))
        assert identity is not None
        assert identity.opted_out is False
        assert identity.created_at == AT and identity.created_at.tzinfo is not None


async def test_message_ingested_once_per_channel_message_id(db: Database) -> None:
    first = await ingest(db, inbound("+966500000001", "SM1"))
    assert first is not None
    assert await ingest(db, inbound("+966500000001", "SM1")) is None
    # The same id on another channel is another message.
    assert await ingest(db, inbound("u1", "SM1", Channel.TELEGRAM)) is not None


async def test_concurrent_ingests_of_one_message_one_wins(db: Database) -> None:
    results = await asyncio.gather(
        *(ingest(db, inbound("+966500000002", "SM-dup")) for _ in range(6))
    )
    assert len([r for r in results if r is not None]) == 1
    assert await count(db, Identity) == 1
    assert await count(db, Beneficiary) == 1


async def test_a_first_contact_is_stored_whole(db: Database) -> None:
    """A sender never seen becomes a beneficiary with an identity and an open conversation."""
    msg = inbound("+966500000009", "SM-first", display_name="أم خالد")
    first = await ingest(db, msg)
    async with db.session(write=False) as s:
        beneficiary = await s.scalar(
            select(Beneficiary).where(
                hashed_match(Beneficiary.phone_hash, Beneficiary.phone, "+966500000009")
            )
        )
        assert beneficiary is not None
        assert (beneficiary.phone, beneficiary.display_name) == ("+966500000009", "أم خالد")
        identity = await s.scalar(select(Identity).where(Identity.lookup("phone", msg.sender_id)))
        assert identity is not None and identity.beneficiary_id == beneficiary.id
        assert identity.last_inbound_at == AT
        assert (identity.opted_out, identity.unreachable) == (False, False)
        conversation = await s.scalar(select(Conversation))
        assert conversation is not None and conversation.beneficiary_id == beneficiary.id
        assert (conversation.status, conversation.state) == ("bot", {})
        assert conversation.last_identity_id == identity.id
        assert conversation.last_channel == "whatsapp"
        stored = await Tx(s).messages_of(beneficiary.id, direction="in")
        assert [m.id for m in stored] == [first]
    # A Telegram first contact has no phone.
    await ingest(db, inbound("tg-77", "tg-first", Channel.TELEGRAM))
    async with db.session(write=False) as s:
        identity = await s.scalar(select(Identity).where(Identity.lookup("telegram", "tg-77")))
        assert identity is not None
        beneficiary = await s.get(Beneficiary, identity.beneficiary_id)
        assert beneficiary is not None and beneficiary.phone is None


async def test_the_conversation_follows_the_channel_its_sender_last_wrote_on(
    db: Database,
) -> None:
    """Messages on the conversation's last channel leave it as it is; another channel moves it."""

    async def last_channel() -> str | None:
        return (await only(db, Conversation)).last_channel

    await ingest(db, inbound("+966500000010", "SM-a"))
    await ingest(db, inbound("+966500000010", "SM-b"))
    assert await last_channel() == "whatsapp"
    await ingest(db, inbound("+966500000010", "SM-c", Channel.SMS))
    assert await last_channel() == "sms"
    await ingest(db, inbound("+966500000010", "SM-d"))
    assert await last_channel() == "whatsapp"
    assert await count(db, Conversation) == 1


async def test_replies_go_by_the_channel_their_message_came_by(db: Database) -> None:
    """A WhatsApp message answered after its sender also wrote by SMS is answered on WhatsApp."""
    first = await ingest(db, inbound("+966500000013", "SM-wa"))
    await ingest(db, inbound("+966500000013", "SM-sms", Channel.SMS))
    assert first is not None
    async with db.session() as s:
        tx = Tx(s)
        claimed = await tx.claim_inbound(first)
        assert claimed is not None
        await tx.save_step(
            claimed,
            state=dict(claimed.conversation.state or {}),
            status=claimed.conversation.status,
            replies=[Reply("أهلًا")],
        )
    async with db.session(write=False) as s:
        item = await s.scalar(select(OutboxItem))
        assert item is not None
        assert (item.channel, item.address) == ("whatsapp", "+966500000013")


async def test_a_message_kept_without_a_step_stamps_its_conversation(db: Database) -> None:
    """The engine's step stamps updated_at (retention and the staff queue read it); a message
    the engine will not take (a STOP, an unreadable file) stamps it when it is stored."""

    async def updated_at() -> datetime:
        return (await only(db, Conversation)).updated_at

    async def keep(message_id: str, *, stepped: bool) -> None:
        async with db.session() as s:
            msg = inbound("+966500000012", message_id)
            assert await Tx(s).ingest(msg, {}, stepped=stepped) is not None

    await keep("SM-1", stepped=True)
    first = await updated_at()
    await asyncio.sleep(0.01)
    await keep("SM-2", stepped=True)  # left to its step
    assert await updated_at() == first
    await keep("SM-3", stepped=False)
    assert await updated_at() > first


async def test_last_inbound_is_stamped_once_a_minute_and_never_moves_back(db: Database) -> None:
    """It opens WhatsApp's window: written again once a minute old, so never late by more."""

    async def last_inbound() -> datetime | None:
        return (await only(db, Identity)).last_inbound_at

    def at(seconds: int, message_id: str) -> Inbound:
        return replace(
            inbound("+966500000011", message_id), received_at=AT + timedelta(seconds=seconds)
        )

    await ingest(db, at(0, "SM-0"))
    await ingest(db, at(30, "SM-30"))
    assert await last_inbound() == AT
    await ingest(db, at(61, "SM-61"))
    assert await last_inbound() == AT + timedelta(seconds=61)
    await ingest(db, at(5, "SM-late"))  # delivered late by its channel
    assert await last_inbound() == AT + timedelta(seconds=61)


async def test_first_messages_at_once_make_one_person_and_one_conversation(
    db: Database,
) -> None:
    results = await asyncio.gather(
        *(ingest(db, inbound("+966500000003", f"SM-{n}")) for n in range(8))
    )
    assert all(r is not None for r in results)
    assert await count(db, Identity) == 1
    assert await count(db, Beneficiary) == 1
    assert await count(db, Conversation) == 1
    # The person comes back after their conversation closed: again exactly one opens.
    async with db.session() as s:
        conversation = await s.scalar(select(Conversation))
        assert conversation is not None
        conversation.status, conversation.closed_at = "closed", AT
    await asyncio.gather(*(ingest(db, inbound("+966500000003", f"SM-b{n}")) for n in range(8)))
    async with db.session(write=False) as s:
        statuses = sorted(c.status for c in await s.scalars(select(Conversation)))
    assert statuses == ["bot", "closed"]


async def test_verified_phone_joins_histories(db: Database) -> None:
    await ingest(db, inbound("+966500000004", "SM-a"))
    await ingest(db, inbound("tg-9", "tg-1", Channel.TELEGRAM))
    async with db.session(write=False) as s:
        owners = {i.address: i.beneficiary_id for i in await s.scalars(select(Identity))}
    assert owners["+966500000004"] != owners["tg-9"]
    await ingest(db, inbound("tg-9", "tg-2", Channel.TELEGRAM, verified_phone="+966500000004"))
    async with db.session(write=False) as s:
        owners = {i.address: i.beneficiary_id for i in await s.scalars(select(Identity))}
        phone_owner = owners["+966500000004"]
        assert owners["tg-9"] == phone_owner
        assert len(await Tx(s).messages_of(phone_owner, direction="in")) == 3
    # A new number the channel vouches for becomes the person's own phone identity.
    await ingest(db, inbound("tg-7", "tg-3", Channel.TELEGRAM, verified_phone="+966500000005"))
    async with db.session(write=False) as s:
        new = await s.scalar(select(Identity).where(Identity.lookup("phone", "+966500000005")))
        tg = await s.scalar(select(Identity).where(Identity.lookup("telegram", "tg-7")))
        assert new is not None and tg is not None and new.beneficiary_id == tg.beneficiary_id


async def test_reference_numbers_unique_under_concurrency(db: Database) -> None:
    async def one() -> str:
        async with db.session() as s:
            return await Tx(s).next_reference("REQ", AT)

    references = await asyncio.gather(*(one() for _ in range(20)))
    assert len(set(references)) == 20
    assert sorted(int(r.rsplit("-", 1)[1]) for r in references) == list(range(1, 21))


async def test_request_lifecycle(db: Database) -> None:
    await ingest(db, inbound("+966500000006", "SM-r"))
    async with db.session() as s:
        tx = Tx(s)
        identity = await s.scalar(select(Identity))
        assert identity is not None
        conversation = await tx.open_conversation(identity.beneficiary_id)
        reference = await tx.submit(
            Submission(
                beneficiary_id=identity.beneficiary_id,
                conversation_id=conversation.id,
                form_id="support",
                kind="support",
                reference_prefix="SUP",
                answers={
                    "national_id": {"value": "1087654321", "display": "1087654321"},
                    "full_name": {"value": "سارة", "display": "سارة"},
                },
                lang="ar",
                channel=Channel.WHATSAPP,
                declared_at=AT,
                submitted_at=AT,
                due_at=AT + timedelta(days=5),
            )
        )
    async with db.session() as s:
        tx = Tx(s)
        assert await tx.verify_request(reference, "4321") is not None
        assert await tx.verify_request(reference, "0000") is None
        request = await tx.request_by_reference(reference)
        await tx.change_status(request, RequestStatus.UNDER_REVIEW, actor="staff@example.org")
        with pytest.raises(InvalidTransition):
            await tx.change_status(request, RequestStatus.DRAFT, actor="staff@example.org")
    async with db.session(write=False) as s:
        tx = Tx(s)
        request = await tx.request_by_reference(reference)
        history = (await tx.request_details(request))["history"]
        assert [h.to_status for h in history] == ["submitted", "under_review"]
        assert await tx.count_by_status() == {"under_review": 1}


async def _outbox(db: Database, conversations: int, replies: int) -> dict[int, list[int]]:
    """Queue ``replies`` replies in each of ``conversations`` conversations, interleaved."""
    ids: dict[int, list[int]] = {}
    for n in range(conversations):
        await ingest(db, inbound(f"+9665000001{n:02d}", f"SM-o{n}"))
    async with db.session() as s:
        tx = Tx(s)
        rows = list(await s.scalars(select(Conversation).order_by(Conversation.id)))
        for k in range(replies):
            for conversation in rows:
                await tx.queue_replies(conversation, [Reply(text=f"رد {k}")])
    async with db.session(write=False) as s:
        for item in await s.scalars(select(OutboxItem).order_by(OutboxItem.id)):
            ids.setdefault(item.conversation_id, []).append(item.id)
    return ids


async def _claim(db: Database, limit: int, claimed: asyncio.Event | None, hold: float) -> list[int]:
    async with db.session() as s:
        now = utcnow()
        items = await Tx(s).claim_outbox(now, ["whatsapp"], now + timedelta(minutes=5), limit)
        if claimed is not None:
            claimed.set()
        await asyncio.sleep(hold)  # the other claimer runs while this claim is uncommitted
        return [i.id for i in items]


async def test_outbox_claimers_never_share_and_keep_order(db: Database) -> None:
    ids = await _outbox(db, conversations=4, replies=3)
    first_claimed = asyncio.Event()

    async def second() -> list[int]:
        await first_claimed.wait()
        return await _claim(db, limit=50, claimed=None, hold=0)

    # The first claimer's limit cuts a conversation after its first reply.
    a, b = await asyncio.gather(_claim(db, 1, first_claimed, 0.3), second())
    assert a and b
    assert not set(a) & set(b)
    for items in ids.values():
        taken_a = [i for i in items if i in a]
        taken_b = [i for i in items if i in b]
        assert not (taken_a and taken_b), "one conversation went to two claimers"
        taken = taken_a or taken_b
        assert taken == items[: len(taken)], "a later reply was claimed before an earlier one"
    # Nothing more is due while every conversation has a reply on its way.
    assert await _claim(db, 50, None, 0) == []


async def test_outbox_claim_many_concurrent_claimers(db: Database) -> None:
    ids = await _outbox(db, conversations=6, replies=2)
    results = await asyncio.gather(*(_claim(db, 2, None, 0.05) for _ in range(4)))
    seen = [i for r in results for i in r]
    assert len(seen) == len(set(seen))
    owner = {i: n for n, r in enumerate(results) for i in r}
    for items in ids.values():
        assert len({owner[i] for i in items if i in owner}) <= 1


async def test_cursors(db: Database) -> None:
    async with db.session() as s:
        tx = Tx(s)
        assert await tx.cursor("email:box") == {}
        await tx.set_cursor("email:box", {"uid": 1})
        assert await tx.cursor("email:box") == {"uid": 1}
        await tx.set_cursor("email:box", {"uid": 2})
        assert await tx.cursor("email:box") == {"uid": 2}

    async def write(uid: int) -> None:
        async with db.session() as s:
            await Tx(s).set_cursor("email:other", {"uid": uid})

    await asyncio.gather(*(write(n) for n in range(5)))
    async with db.session(write=False) as s:
        assert (await Tx(s).cursor("email:other"))["uid"] in range(5)
        assert await Tx(s).cursor("email:box") == {"uid": 2}


async def test_provider_status(db: Database) -> None:
    await _outbox(db, conversations=1, replies=2)
    async with db.session() as s:
        items = list(await s.scalars(select(OutboxItem).order_by(OutboxItem.id)))
        items[0].provider_id, items[0].status = "SMa", "sent"
        items[1].provider_id, items[1].status = "SMb", "sent"
    async with db.session() as s:
        tx = Tx(s)
        assert await tx.record_provider_status("SMa", "delivered", None) is not None
        assert await tx.record_provider_status("SMb", "undelivered", "30003") is not None
        assert await tx.record_provider_status("SMx", "delivered", None) is None
    async with db.session(write=False) as s:
        a, b = list(await s.scalars(select(OutboxItem).order_by(OutboxItem.id)))
        assert (a.status, a.provider_status) == ("sent", "delivered")
        assert (b.status, b.error_code) == ("failed", "30003")


async def test_a_report_before_the_send_is_recorded_is_applied_with_the_record(
    db: Database,
) -> None:
    """A channel's report may come before the send's outcome is written down: it is kept,
    applied by the record, and a failure is not cleared by a later report."""
    await _outbox(db, conversations=1, replies=1)
    async with db.session() as s:
        now = utcnow()
        (item,) = await Tx(s).claim_outbox(now, ["whatsapp"], now + timedelta(minutes=1))
    async with db.session() as s:
        assert await Tx(s).record_provider_status("SMc", "undelivered", "63003") is None
    async with db.session() as s:
        assert await Tx(s).record_outbox(item, {"status": "sent", "provider_id": "SMc"})
    async with db.session() as s:
        assert await Tx(s).record_provider_status("SMc", "delivered", None) is not None
    async with db.session(write=False) as s:
        row = await s.get(OutboxItem, item.id)
        assert row is not None
        assert (row.status, row.provider_status, row.error_code) == (
            "failed",
            "undelivered",
            "63003",
        )
        assert await s.scalar(select(func.count()).select_from(ProviderReport)) == 0


async def test_a_send_recorded_with_no_report_waiting_takes_one_statement(db: Database) -> None:
    """Nearly every send has no report before its record: the record looks for one in its own
    statement (besides PostgreSQL's lock against a report arriving meanwhile)."""
    await _outbox(db, conversations=1, replies=1)
    async with db.session() as s:
        now = utcnow()
        (item,) = await Tx(s).claim_outbox(now, ["whatsapp"], now + timedelta(minutes=1))
    with statements_seen(db.engine) as statements:
        async with db.session() as s:
            assert await Tx(s).record_outbox(item, {"status": "sent", "provider_id": "SMd"})
    tables = [q for q in statements if "outbox" in q or "provider_reports" in q]
    assert len(tables) == 1 and tables[0].startswith("UPDATE outbox")
    async with db.session(write=False) as s:
        row = await s.get(OutboxItem, item.id)
        assert row is not None and (row.status, row.provider_id) == ("sent", "SMd")


async def test_a_claim_taken_over_records_nothing(db: Database) -> None:
    """An item whose lease ended and which another claim took: the first claim's outcome is
    not written over the second's."""
    await _outbox(db, conversations=1, replies=1)
    async with db.session() as s:
        now = utcnow()
        (first,) = await Tx(s).claim_outbox(now, ["whatsapp"], now - timedelta(seconds=1))
    async with db.session() as s:
        tx = Tx(s)
        now = await tx.clock()
        await tx.release_expired_leases(now)
        (second,) = await tx.claim_outbox(now, ["whatsapp"], now + timedelta(minutes=1))
    assert first.id == second.id and first.lease != second.lease
    async with db.session() as s:
        assert not await Tx(s).record_outbox(first, {"status": "sent", "provider_id": "SMa"})
        assert await Tx(s).record_outbox(second, {"status": "sent", "provider_id": "SMb"})
    async with db.session(write=False) as s:
        row = await s.get(OutboxItem, first.id)
        assert row is not None and row.provider_id == "SMb"


async def test_outcomes_recorded_together_hold_each_for_its_own_claim(db: Database) -> None:
    """Several outcomes written at once: each only while its own claim holds, and a report
    that came before one of the sends is applied to that send alone."""
    await _outbox(db, conversations=3, replies=1)
    async with db.session() as s:
        now = utcnow()
        stale = await Tx(s).claim_outbox(now, ["whatsapp"], now - timedelta(seconds=1))
    async with db.session() as s:
        tx = Tx(s)
        now = await tx.clock()
        await tx.release_expired_leases(now)
        fresh = await tx.claim_outbox(now, ["whatsapp"], now + timedelta(minutes=1))
    assert [i.id for i in stale] == [i.id for i in fresh] and len(fresh) == 3
    async with db.session() as s:
        assert await Tx(s).record_provider_status("SMr1", "undelivered", "63003") is None
    sent = [{"status": "sent", "provider_id": f"SMr{n}", "attempts": 1} for n in range(3)]
    records = [(stale[0], sent[0]), (fresh[1], sent[1]), (fresh[2], sent[2])]
    async with db.session() as s:
        assert await Tx(s).record_outcomes(records) == [False, True, True]
    async with db.session() as s:  # written already by this claim: it still holds
        assert await Tx(s).record_outcomes(records[1:]) == [True, True]
    async with db.session(write=False) as s:
        rows = list(await s.scalars(select(OutboxItem).order_by(OutboxItem.id)))
        assert [(r.status, r.provider_id, r.provider_status) for r in rows] == [
            ("sending", None, None),
            ("failed", "SMr1", "undelivered"),
            ("sent", "SMr2", None),
        ]
        assert await s.scalar(select(func.count()).select_from(ProviderReport)) == 0


# -- jobs held by one instance at a time ---------------------------------------------------------


async def test_singleton_one_holder_at_a_time(db: Database, database_url: str) -> None:  # noqa: F811
    other = Database(database_url, keyring=TEST_KEYRING)  # as another instance would open it
    try:
        async with singleton(db, "email:box", check_every=0.1) as first:
            assert first is not None
            async with singleton(other, "email:box", check_every=0.1) as second:
                assert second is None
            async with singleton(other, "reminders", check_every=0.1) as unrelated:
                assert unrelated is not None
        async with singleton(other, "email:box", check_every=0.1) as second:
            assert second is not None
    finally:
        await other.dispose()


async def test_singleton_taken_over_when_holder_goes(db: Database, database_url: str) -> None:  # noqa: F811
    other = Database(database_url, keyring=TEST_KEYRING)
    runs: list[str] = []
    stop = asyncio.Event()

    def job(tag: str, started: asyncio.Event) -> Job:
        async def run(job_stop: asyncio.Event) -> None:
            runs.append(tag)
            started.set()
            await job_stop.wait()
            runs.append(f"{tag} stopped")

        return run

    b_started = asyncio.Event()
    try:
        async with singleton(db, "email:box", check_every=0.2) as lease:
            assert lease is not None
            b = asyncio.create_task(
                run_singleton(
                    other,
                    "email:box",
                    job("b", b_started),
                    stop,
                    retry_every=0.1,
                    check_every=0.2,
                )
            )
            await asyncio.sleep(0.5)
            assert runs == []  # b keeps retrying while the lock is held
            if not db.is_sqlite:
                # The holding connection dies (a crashed instance, a cut network).
                async with other.engine.connect() as c:
                    await c.execute(
                        text("SELECT pg_terminate_backend(:pid)"), {"pid": lease.backend_pid}
                    )
                await asyncio.wait_for(lease.lost.wait(), timeout=5)
                await asyncio.wait_for(b_started.wait(), timeout=5)
                assert runs == ["b"]
        if db.is_sqlite:
            await asyncio.wait_for(b_started.wait(), timeout=5)
        async with singleton(db, "email:box", check_every=0.1) as third:
            assert third is None  # b holds it now
        stop.set()
        await asyncio.wait_for(b, timeout=5)
        assert runs == ["b", "b stopped"]
    finally:
        stop.set()
        await other.dispose()


async def test_a_search_by_name_reads_every_name_a_few_at_a_time(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names are encrypted: a search reads them in parts, decrypts and compares them in a
    worker thread (the event loop goes on meanwhile), and finds them in every part, newest
    first."""
    import threading

    from storage import staff_people
    from storage.staff import ConsoleTx

    monkeypatch.setattr(staff_people, "NAMES_AT_ONCE", 2)
    monkeypatch.setattr(staff_people, "SEARCH_LIMIT", 3)
    threads: set[str] = set()
    compare = staff_people._named

    def watched(*args: object) -> list[int]:
        threads.add(threading.current_thread().name)
        return compare(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(staff_people, "_named", watched)
    names = ["سارة العتيبي", "نورة الحربي", "سارة الحربي", "ساره الشمري", "فهد", "سارة"]
    async with db.session() as s:
        people = [Beneficiary(display_name=name) for name in names]
        s.add_all(people)
        await s.flush()
        ids = [p.id for p in people]
    async with db.session(write=False) as s:
        found = await ConsoleTx(s).search("سارة")
        none = await ConsoleTx(s).search("زياد")
    # ساره is سارة folded (ة/ه); the newest first, three shown of the four.
    assert [p.id for p in found.people] == [ids[5], ids[3], ids[2]] and found.more
    assert none.people == [] and not none.more
    assert threads and threading.main_thread().name not in threads
