"""Taking over a conversation over HTTP: queue, claim, reply, note, transfer, close."""

from __future__ import annotations

import html
import re
from typing import Any

from sqlalchemy import select

from bot.service import Service
from conversations.messages import Channel
from storage.models import Conversation, Message, OutboxItem, SurveyAnswer
from storage.staff_models import Handling, StaffUser
from tests.conftest import Chat
from tests.staff.conftest import audit_count, queued


async def conversation(service: Service, conversation_id: int) -> Conversation:
    async with service.db.session(write=False) as session:
        row = await session.get(Conversation, conversation_id)
    assert row is not None
    return row


async def messages(service: Service, conversation_id: int) -> list[tuple[Message, Any]]:
    async with service.db.session(write=False) as session:
        rows = (
            await session.execute(
                select(Message, OutboxItem)
                .outerjoin(OutboxItem, OutboxItem.message_id == Message.id)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.id)
            )
        ).all()
    return [(m, o) for m, o in rows]


async def test_the_queue_shows_a_waiting_conversation(
    console_service: Service, browser_for: Any
) -> None:
    conversation_id = await queued(console_service)
    agent = await browser_for("agent")
    page = await agent.get("/staff/")
    assert page.status_code == 200
    assert f'data-conversation="{conversation_id}"' in page.text
    assert "موظف" in page.text  # the last message
    assert 'dir="rtl"' in page.text
    fragment = await agent.get("/staff/queue/rows")
    assert f'data-conversation="{conversation_id}"' in fragment.text
    assert "<html" not in fragment.text


async def test_claim_reply_note_and_close(console_service: Service, browser_for: Any) -> None:
    conversation_id = await queued(console_service)
    agent = await browser_for("agent")

    claimed = await agent.post(f"/staff/conversations/{conversation_id}/claim")
    assert claimed.status_code == 303
    assert claimed.headers["location"] == f"/staff/conversations/{conversation_id}"
    row = await conversation(console_service, conversation_id)
    assert row.status == "staff" and row.assigned_to == "agent@example.org"

    page = await agent.get(f"/staff/conversations/{conversation_id}")
    assert page.status_code == 200
    assert 'data-testid="composer"' in page.text
    assert await audit_count(console_service, "conversation.viewed") == 1

    sent = await agent.post(
        f"/staff/conversations/{conversation_id}/reply", {"text": "أهلًا، كيف أخدمك؟"}
    )
    assert sent.status_code == 303
    await agent.post(f"/staff/conversations/{conversation_id}/note", {"text": "يحتاج متابعة"})

    rows = await messages(console_service, conversation_id)
    staff_rows = [(m, o) for m, o in rows if m.author == "staff:agent@example.org"]
    assert [m.text for m, _ in staff_rows] == ["أهلًا، كيف أخدمك؟", "يحتاج متابعة"]
    reply, outbox = staff_rows[0]
    assert reply.direction == "out" and outbox.kind == "staff" and outbox.status == "pending"
    note, no_outbox = staff_rows[1]
    assert note.direction == "note" and no_outbox is None
    # The beneficiary was told a staff member joined, in the outbox of their channel.
    assert any(o is not None and o.channel == "webchat" and m.author == "bot" for m, o in rows)

    history = await agent.get(f"/staff/conversations/{conversation_id}/history")
    assert "أهلًا، كيف أخدمك؟" in history.text and 'data-testid="note"' in history.text
    assert 'data-delivery="pending"' in history.text

    closed = await agent.post(f"/staff/conversations/{conversation_id}/close")
    assert closed.status_code == 303 and "done=closed" in closed.headers["location"]
    row = await conversation(console_service, conversation_id)
    assert row.status == "bot" and row.assigned_to is None
    survey = [m for m, _ in await messages(console_service, conversation_id)][-1]
    assert survey.payload.get("key") == "survey.ask_conversation"
    async with console_service.db.session(write=False) as session:
        handling = await session.scalar(select(Handling))
    assert handling is not None
    assert handling.outcome == "closed" and handling.replies == 1
    assert handling.first_reply_at is not None


async def test_a_claimed_conversation_keeps_the_bot_silent(
    console_service: Service, browser_for: Any
) -> None:
    from conversations.messages import Channel
    from tests.conftest import Chat

    conversation_id = await queued(console_service, sender="web-session-silent-00001")
    agent = await browser_for("agent")
    await agent.post(f"/staff/conversations/{conversation_id}/claim")
    chat = Chat(console_service, Channel.WEBCHAT, sender="web-session-silent-00001")
    assert await chat.say("السلام عليكم") == []
    page = await agent.get(f"/staff/conversations/{conversation_id}/history")
    assert page.text.count('data-testid="message-in"') >= 3


async def test_a_second_agent_cannot_take_or_answer_a_claimed_conversation(
    console_service: Service, browser_for: Any
) -> None:
    conversation_id = await queued(console_service)
    first, second = await browser_for("agent"), await browser_for("agent2")
    await first.post(f"/staff/conversations/{conversation_id}/claim")

    late = await second.post(f"/staff/conversations/{conversation_id}/claim")
    assert late.status_code == 303 and late.headers["location"] == "/staff/?error=taken"
    assert (await second.get(f"/staff/conversations/{conversation_id}")).status_code == 403
    reply = await second.post(f"/staff/conversations/{conversation_id}/reply", {"text": "x"})
    # Refused, saying who has it (and not the conversation itself, which this agent may not
    # open): nothing was sent.
    assert reply.status_code == 409
    assert 'data-testid="moved-why">المحادثة الآن لدى Agent،' in reply.text
    assert f'href="/staff/conversations/{conversation_id}"' not in reply.text
    assert (await conversation(console_service, conversation_id)).assigned_to == (
        "agent@example.org"
    )


async def test_a_file_sent_to_a_claimed_conversation_is_only_its_viewers(
    console_service: Service, browser_for: Any
) -> None:
    """A medical report sent during agent2's handoff: another agent may not open the
    conversation, and so may not open the file either, nor find it by trying ids."""
    from conversations.messages import Channel
    from tests.conftest import Chat
    from tests.test_engine import pdf

    sender = "web-session-report-00001"
    conversation_id = await queued(console_service, sender=sender)
    holder, other = await browser_for("agent2"), await browser_for("agent")
    supervisor = await browser_for("supervisor")
    await holder.post(f"/staff/conversations/{conversation_id}/claim")
    chat = Chat(console_service, Channel.WEBCHAT, sender=sender)
    await chat.say("التقرير الطبي", attachments=[await pdf(console_service, "report.pdf")])
    async with console_service.db.session(write=False) as session:
        with_file = [
            m
            for m in await session.scalars(
                select(Message).where(Message.conversation_id == conversation_id)
            )
            if (m.payload or {}).get("attachments")
        ]
    assert len(with_file) == 1
    url = f"/staff/messages/{with_file[0].id}/attachments/0"

    page = await holder.get(f"/staff/conversations/{conversation_id}/history")
    assert f'href="{url}"' in page.text
    opened = await holder.get(url)
    assert opened.status_code == 200 and opened.content.startswith(b"%PDF")
    assert (await supervisor.get(url)).status_code == 200

    assert (await other.get(f"/staff/conversations/{conversation_id}")).status_code == 403
    before = await audit_count(console_service, "attachment.viewed")
    refused = await other.get(url)
    assert refused.status_code == 403 and b"%PDF" not in refused.content
    # Another index of the same message says no more than the first.
    assert (await other.get(f"/staff/messages/{with_file[0].id}/attachments/7")).status_code == 403
    assert await audit_count(console_service, "attachment.viewed") == before

    # Transferred to the other agent, it is theirs to open, and the file with it.
    moved = await holder.post(
        f"/staff/conversations/{conversation_id}/transfer", {"to": "agent@example.org"}
    )
    assert moved.status_code == 303
    assert (await other.get(url)).status_code == 200


async def test_transfer_then_escalate_then_a_supervisor_takes_it(
    console_service: Service, browser_for: Any
) -> None:
    conversation_id = await queued(console_service)
    agent, agent2 = await browser_for("agent"), await browser_for("agent2")
    supervisor = await browser_for("supervisor")
    await agent.post(f"/staff/conversations/{conversation_id}/claim")

    moved = await agent.post(
        f"/staff/conversations/{conversation_id}/transfer", {"to": "agent2@example.org"}
    )
    assert moved.status_code == 303
    assert (await conversation(console_service, conversation_id)).assigned_to == (
        "agent2@example.org"
    )
    # No longer the agent's: the page says who has it now instead of showing it.
    assert (await agent.get(f"/staff/conversations/{conversation_id}")).status_code == 409

    up = await agent2.post(
        f"/staff/conversations/{conversation_id}/escalate", {"text": "يطلب استثناء"}
    )
    assert up.status_code == 303
    row = await conversation(console_service, conversation_id)
    assert row.status == "queued" and row.handoff_reason == "escalated"
    # Escalated: agents may look but not take it; a supervisor may.
    assert (await agent.post(f"/staff/conversations/{conversation_id}/claim")).status_code == 403
    taken = await supervisor.post(f"/staff/conversations/{conversation_id}/claim")
    assert taken.status_code == 303
    assert (await conversation(console_service, conversation_id)).assigned_to == (
        "supervisor@example.org"
    )
    async with console_service.db.session(write=False) as session:
        outcomes = list(await session.scalars(select(Handling.outcome).order_by(Handling.id)))
    assert outcomes == ["transferred", "escalated", None]
    # The beneficiary was told a staff member joined once; the supervisor's taking it after
    # the escalation says another one carries on, not "joined" again.
    said = [m.text for m, _ in await messages(console_service, conversation_id)]
    catalog = console_service.catalog
    assert said.count(catalog.text("ar", "staff.joined")) == 1
    assert said.count(catalog.text("ar", "staff.joined_another")) == 1


async def test_transfer_refuses_an_unknown_or_disabled_colleague(
    console_service: Service, browser_for: Any
) -> None:
    conversation_id = await queued(console_service)
    agent = await browser_for("agent")
    await agent.post(f"/staff/conversations/{conversation_id}/claim")
    bad = await agent.post(
        f"/staff/conversations/{conversation_id}/transfer", {"to": "nobody@example.org"}
    )
    assert "error=target" in bad.headers["location"]
    assert (await conversation(console_service, conversation_id)).assigned_to == (
        "agent@example.org"
    )


async def test_give_back_to_the_bot(console_service: Service, browser_for: Any) -> None:
    conversation_id = await queued(console_service)
    agent = await browser_for("agent")
    await agent.post(f"/staff/conversations/{conversation_id}/claim")
    back = await agent.post(f"/staff/conversations/{conversation_id}/release")
    assert back.status_code == 303
    row = await conversation(console_service, conversation_id)
    assert row.status == "bot" and row.assigned_to is None and row.queued_at is None
    last = [m for m, _ in await messages(console_service, conversation_id)][-1]
    assert last.text == console_service.catalog.text("ar", "staff.returned")
    async with console_service.db.session(write=False) as session:
        assert await session.scalar(select(SurveyAnswer)) is None


async def test_a_supervisor_sees_everyone_and_may_answer_for_a_colleague(
    console_service: Service, browser_for: Any
) -> None:
    conversation_id = await queued(console_service)
    agent, supervisor = await browser_for("agent"), await browser_for("supervisor")
    await agent.post(f"/staff/conversations/{conversation_id}/claim")
    queue = await supervisor.get("/staff/")
    assert 'data-testid="others"' in queue.text
    assert (await supervisor.get(f"/staff/conversations/{conversation_id}")).status_code == 200
    note = await supervisor.post(
        f"/staff/conversations/{conversation_id}/note", {"text": "راجعتها"}
    )
    assert note.status_code == 303


async def test_a_supervisor_takes_a_conversation_over_before_answering(
    console_service: Service, browser_for: Any
) -> None:
    """The beneficiary hears from one person, and the console names who answers them: a
    supervisor sees "take over" on a colleague's conversation, not the reply box, and a
    reply sent without taking over is refused, kept, and offers the takeover."""
    conversation_id = await queued(console_service)
    agent, supervisor = await browser_for("agent"), await browser_for("supervisor")
    base = f"/staff/conversations/{conversation_id}"
    await agent.post(f"{base}/claim")

    page = (await supervisor.get(base)).text
    assert 'data-testid="take-over"' in page and f'action="{base}/claim"' in page
    assert 'data-testid="reply-text"' not in page
    assert 'data-testid="close"' in page  # still managed: transfer, escalate, close

    typed = "أنا المشرف، سأتابع طلبك"
    refused = await supervisor.post(f"{base}/reply", {"text": typed})
    assert refused.status_code == 409
    assert 'data-testid="moved-why">المحادثة لدى Agent، فلم يُرسَل شيء.' in refused.text
    assert typed in refused.text and 'data-testid="take-over"' in refused.text
    assert not [m for m, _ in await messages(console_service, conversation_id) if m.text == typed]
    assert (await conversation(console_service, conversation_id)).assigned_to == (
        "agent@example.org"
    )

    taken = await supervisor.post(f"{base}/claim")
    assert taken.status_code == 303
    assert 'data-testid="reply-text"' in (await supervisor.get(base)).text
    assert (await supervisor.post(f"{base}/reply", {"text": typed})).status_code == 303
    row = await conversation(console_service, conversation_id)
    assert row.assigned_to == "supervisor@example.org"
    assert [
        m.author for m, _ in await messages(console_service, conversation_id) if m.text == typed
    ] == ["staff:supervisor@example.org"]


async def test_an_empty_reply_is_refused(console_service: Service, browser_for: Any) -> None:
    conversation_id = await queued(console_service)
    agent = await browser_for("agent")
    await agent.post(f"/staff/conversations/{conversation_id}/claim")
    empty = await agent.post(f"/staff/conversations/{conversation_id}/reply", {"text": "  "})
    assert "error=empty" in empty.headers["location"]
    assert all(
        m.author != "staff:agent@example.org"
        for m, _ in await messages(console_service, conversation_id)
    )


async def test_the_history_tells_who_had_the_conversation_by_name(
    console_service: Service, browser_for: Any
) -> None:
    """Staff read each other's names, not addresses, and see the conversation change hands
    between the messages: taken, transferred, sent back to the queue, taken, closed."""
    conversation_id = await queued(console_service)
    agent, agent2 = await browser_for("agent"), await browser_for("agent2")
    supervisor = await browser_for("supervisor")
    base = f"/staff/conversations/{conversation_id}"
    await agent.post(f"{base}/claim")
    await agent.post(f"{base}/reply", {"text": "أهلًا"})
    await agent.post(f"{base}/note", {"text": "أحوّلها لزميلي"})
    await agent.post(f"{base}/transfer", {"to": "agent2@example.org"})
    await agent2.post(f"{base}/escalate", {"text": "يطلب استثناء"})
    await supervisor.post(f"{base}/claim")
    await supervisor.post(f"{base}/close")

    page = (await supervisor.get(f"{base}/history")).text
    events = re.findall(r'data-event="([a-z]+)"><span>([^<]+)', page)
    assert [kind for kind, _ in events] == [
        "taken",
        "transferred",
        "escalated",
        "taken",
        "closed",
    ]
    texts = [html.unescape(text) for _, text in events]
    assert texts[0].startswith("تولّى المحادثة Agent ·")
    assert texts[1].startswith("حُوّلت المحادثة إلى Agent2 ·")
    assert texts[3].startswith("تولّى المحادثة Supervisor ·")
    # Each event sits where it happened: the reply and the note come between the first
    # two, the escalation's message to the beneficiary before the supervisor takes it.
    order = re.findall(r'data-event="([a-z]+)"|data-testid="(message-staff|note)"', page)
    flat = [event or item for event, item in order]
    assert flat[:4] == ["taken", "message-staff", "note", "transferred"]
    # Messages keep the order they were stored in, whatever the channel's clock said (here the
    # beneficiary's messages carry a morning time, the replies the test's real time).
    ids = [int(i) for i in re.findall(r'data-message-id="(\d+)"', page)]
    assert ids == sorted(ids) and len(ids) > 4
    # The choices the bot offered are shown with its message, numbered as the beneficiary
    # saw them: a reply of "2" can be understood.
    assert 'data-testid="offered"' in page
    # Replies and notes are signed with the name; the address is on hover.
    assert '<bdi title="agent@example.org">Agent</bdi>' in page
    assert "agent@example.org</span>" not in page

    supervisor.client.cookies.set("tawasul_staff_lang", "en")
    english = await supervisor.get(f"{base}/history")
    assert "Conversation transferred to Agent2" in english.text


async def test_an_account_without_a_name_is_shown_by_its_address(
    console_service: Service, browser_for: Any
) -> None:
    conversation_id = await queued(console_service)
    async with console_service.db.session() as session:
        user = await session.scalar(select(StaffUser).where(StaffUser.email == "agent@example.org"))
        assert user is not None
        user.name = ""
    agent = await browser_for("agent")
    await agent.post(f"/staff/conversations/{conversation_id}/claim")
    await agent.post(f"/staff/conversations/{conversation_id}/reply", {"text": "أهلًا"})
    page = (await agent.get(f"/staff/conversations/{conversation_id}/history")).text
    assert '<bdi dir="ltr">agent@example.org</bdi>' in page
    assert "تولّى المحادثة \u2066agent@example.org\u2069" in html.unescape(page)


async def test_a_reply_to_a_conversation_that_changed_hands_is_kept_and_explained(
    console_service: Service, browser_for: Any
) -> None:
    """A supervisor took the conversation over while the agent was typing: the reply is not
    sent, the page says who has it now (not 'your role may not'), and gives the text back."""
    conversation_id = await queued(console_service)
    agent, supervisor = await browser_for("agent"), await browser_for("supervisor")
    base = f"/staff/conversations/{conversation_id}"
    await agent.post(f"{base}/claim")
    await supervisor.post(f"{base}/claim")
    typed = "سأراجع طلبك الآن"
    late = await agent.post(f"{base}/reply", {"text": typed})
    assert late.status_code == 409
    assert 'data-testid="moved-page"' in late.text
    assert 'data-testid="moved-why">المحادثة الآن لدى Supervisor،' in late.text
    assert typed in late.text
    assert not [m for m, _ in await messages(console_service, conversation_id) if m.text == typed]

    # Closed by the supervisor: a second close (a stale page) sends nothing more.
    await supervisor.post(f"{base}/close")
    count = len(await messages(console_service, conversation_id))
    again = await supervisor.post(f"{base}/close")
    assert again.status_code == 409 and "أُغلقت المحادثة" in again.text
    assert len(await messages(console_service, conversation_id)) == count


async def test_a_conversation_a_colleague_moved_on_says_so_to_its_former_holder(
    console_service: Service, browser_for: Any
) -> None:
    """Its page reloads when a colleague acts: the agent reads who closed or transferred it,
    with the way back to the queue, not "you have no permission"."""
    first = await queued(console_service)
    second = await queued(console_service, sender="web-session-0002-abcdefgh")
    agent, agent2 = await browser_for("agent"), await browser_for("agent2")
    supervisor = await browser_for("supervisor")
    await agent.post(f"/staff/conversations/{first}/claim")
    await agent.post(f"/staff/conversations/{second}/claim")
    await supervisor.post(f"/staff/conversations/{first}/close")
    await supervisor.post(f"/staff/conversations/{second}/transfer", {"to": "agent2@example.org"})

    closed = await agent.get(f"/staff/conversations/{first}")
    assert closed.status_code == 409 and 'data-testid="gone-page"' in closed.text
    assert 'data-testid="gone-why">أغلق Supervisor المحادثة.' in closed.text
    assert 'data-testid="back-to-queue"' in closed.text
    transferred = await agent.get(f"/staff/conversations/{second}")
    assert 'data-testid="gone-why">حوّل Supervisor المحادثة إلى Agent2.' in transferred.text
    agent.client.cookies.set("tawasul_staff_lang", "en")
    english = await agent.get(f"/staff/conversations/{second}")
    assert "Supervisor transferred the conversation to Agent2." in english.text
    # A member who never held it learns nothing about it.
    assert (await agent2.get(f"/staff/conversations/{first}")).status_code == 403


async def test_disabling_an_account_puts_its_conversations_back_in_the_queue(
    console_service: Service, browser_for: Any
) -> None:
    """Nobody would answer them otherwise: no agent's view showed them, only supervisors'."""
    conversation_id = await queued(console_service)
    other = await queued(console_service, sender="web-session-0002-abcdefgh")
    agent, admin = await browser_for("agent"), await browser_for("admin")
    await agent.post(f"/staff/conversations/{conversation_id}/claim")
    await agent.post(f"/staff/conversations/{other}/claim")
    await agent.post(f"/staff/conversations/{other}/close")
    first_queued = (await conversation(console_service, conversation_id)).queued_at

    done = await admin.post(
        "/staff/staff-members/active", {"email": "agent@example.org", "active": "0"}
    )
    assert "done=requeued" in done.headers["location"]
    row = await conversation(console_service, conversation_id)
    assert (row.status, row.assigned_to) == ("queued", None)
    assert row.queued_at == first_queued  # in its place, not at the back
    assert (await conversation(console_service, other)).status == "bot"  # closed stays closed
    history = (await admin.get(f"/staff/conversations/{conversation_id}/history")).text
    assert re.findall(r'data-event="([a-z]+)"', history) == ["taken", "requeued"]
    agent2 = await browser_for("agent2")
    claimed = await agent2.post(f"/staff/conversations/{conversation_id}/claim")
    assert claimed.status_code == 303


async def test_the_composer_holds_a_reply_to_what_the_channel_delivers_whole(
    console_service: Service, browser_for: Any
) -> None:
    sms = await queued_on(console_service, Channel.SMS, "+966551234567")
    web = await queued(console_service)
    agent = await browser_for("agent")
    for conversation_id in (sms, web):
        await agent.post(f"/staff/conversations/{conversation_id}/claim")
    on_sms = (await agent.get(f"/staff/conversations/{sms}")).text
    assert 'maxlength="670"' in on_sms and 'data-testid="reply-limit"' in on_sms
    on_web = (await agent.get(f"/staff/conversations/{web}")).text
    assert 'maxlength="4000"' in on_web and 'data-testid="reply-limit"' not in on_web


async def queued_on(service: Service, channel: Channel, sender: str) -> int:
    chat = Chat(service, channel, sender=sender)
    await chat.say("السلام عليكم")
    await chat.say("موظف")
    async with service.db.session(write=False) as session:
        found = await session.scalar(
            select(Conversation.id).where(
                Conversation.status == "queued", Conversation.last_channel == channel.value
            )
        )
    assert found is not None
    return found
