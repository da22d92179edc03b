"""The permission rules and the small pure helpers of the console."""

from __future__ import annotations

import pytest

from conversations.ports import RequestStatus
from staff.canned import fill, pick_text
from staff.console import safe_next
from staff.events import _decode, _encode
from staff.permissions import (
    ConversationView,
    Perm,
    Role,
    Staff,
    can,
    may_act,
    may_claim,
    may_note,
    may_open_attachment,
    may_reply,
    may_set_status,
    may_view,
)

AGENT = Staff(1, "a@x.org", "A", Role.AGENT)
OTHER_AGENT = Staff(2, "b@x.org", "B", Role.AGENT)
SUPERVISOR = Staff(3, "s@x.org", "S", Role.SUPERVISOR)
ADMIN = Staff(4, "admin@x.org", "", Role.ADMIN)

QUEUED = ConversationView("queued", None, "asked")
ESCALATED = ConversationView("queued", None, "escalated")
MINE = ConversationView("staff", "a@x.org")
THEIRS = ConversationView("staff", "b@x.org")
WITH_BOT = ConversationView("bot", None)


def test_roles_grow_from_agent_to_admin() -> None:
    for perm in Perm:
        if can(AGENT, perm):
            assert can(SUPERVISOR, perm), perm
        if can(SUPERVISOR, perm):
            assert can(ADMIN, perm), perm
    assert not can(AGENT, Perm.REPORTS) and can(SUPERVISOR, Perm.REPORTS)
    assert not can(SUPERVISOR, Perm.STAFF_MANAGE) and can(ADMIN, Perm.STAFF_MANAGE)
    assert not can(AGENT, Perm.ANONYMISE) and not can(AGENT, Perm.EXPORT)


@pytest.mark.parametrize(
    ("staff", "conversation", "expected"),
    [
        (AGENT, QUEUED, True),
        (AGENT, MINE, True),
        (AGENT, THEIRS, False),
        (AGENT, WITH_BOT, False),
        (AGENT, ESCALATED, True),
        (SUPERVISOR, THEIRS, True),
        (SUPERVISOR, WITH_BOT, True),
    ],
)
def test_who_may_view(staff: Staff, conversation: ConversationView, expected: bool) -> None:
    assert may_view(staff, conversation) is expected


@pytest.mark.parametrize(
    ("staff", "conversation", "expected"),
    [
        (AGENT, QUEUED, True),
        (AGENT, ESCALATED, False),
        (AGENT, MINE, False),
        (AGENT, THEIRS, False),
        (AGENT, WITH_BOT, False),
        (SUPERVISOR, ESCALATED, True),
        (SUPERVISOR, THEIRS, True),
        (SUPERVISOR, WITH_BOT, False),
    ],
)
def test_who_may_claim(staff: Staff, conversation: ConversationView, expected: bool) -> None:
    assert may_claim(staff, conversation) is expected


@pytest.mark.parametrize(
    ("staff", "conversation", "expected"),
    [
        (AGENT, MINE, True),
        (AGENT, QUEUED, False),
        (AGENT, THEIRS, False),
        (OTHER_AGENT, THEIRS, True),
        (SUPERVISOR, THEIRS, True),
        (SUPERVISOR, QUEUED, False),
        (ADMIN, MINE, True),
    ],
)
def test_who_may_act(staff: Staff, conversation: ConversationView, expected: bool) -> None:
    assert may_act(staff, conversation) is expected


def test_only_the_holder_writes_to_the_beneficiary() -> None:
    assert may_reply(AGENT, MINE)
    assert not may_reply(SUPERVISOR, MINE)  # takes it over first
    assert not may_reply(AGENT, QUEUED) and not may_reply(OTHER_AGENT, MINE)


def test_notes_follow_what_one_may_see() -> None:
    assert may_note(AGENT, QUEUED) and may_note(AGENT, MINE)
    assert not may_note(AGENT, THEIRS)
    assert may_note(SUPERVISOR, THEIRS)


@pytest.mark.parametrize("status", list(RequestStatus))
def test_decisions_belong_to_supervisors(status: RequestStatus) -> None:
    decision = status in (RequestStatus.APPROVED, RequestStatus.REJECTED)
    assert may_set_status(AGENT, status) is not decision
    assert may_set_status(SUPERVISOR, status)


def test_canned_placeholders() -> None:
    values = {"name": "سارة", "reference": "SR-1448-00001", "staff": "هند", "org": "الجمعية"}
    assert fill("أهلًا {name}، طلبك {reference}. {staff} — {org}", values) == (
        "أهلًا سارة، طلبك SR-1448-00001. هند — الجمعية"
    )
    assert fill("{name} {other} {{x}}", {"name": ""}) == "{other} {{x}}"
    assert pick_text("عربي", "English", "en") == "English"
    assert pick_text("عربي", "  ", "en") == "عربي"
    assert pick_text("", "English", "ar") == "English"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/staff/requests?status=late", "/staff/requests?status=late"),
        ("/staff/", "/staff/"),
        ("//evil.example", "/staff/"),
        ("/staff//evil.example", "/staff/"),
        ("/staff/\\evil", "/staff/"),
        ("https://evil.example/staff/", "/staff/"),
        ("/", "/staff/"),
        (None, "/staff/"),
    ],
)
def test_only_console_paths_are_followed(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_event_ids_round_trip() -> None:
    signatures = {"history": "12:[('sent', 2)]", "status": "staff:a@x.org"}
    assert _decode(_encode(signatures)) == signatures


def test_a_file_follows_the_conversations_it_is_shown_in_or_its_request() -> None:
    # Shown on the pages of the beneficiary's conversations: the queue's, or the member's own.
    assert may_open_attachment(AGENT, [WITH_BOT, MINE], of_request=False)
    assert may_open_attachment(AGENT, [QUEUED], of_request=False)
    assert not may_open_attachment(AGENT, [WITH_BOT, THEIRS], of_request=False)
    assert not may_open_attachment(AGENT, [], of_request=False)
    assert may_open_attachment(SUPERVISOR, [THEIRS], of_request=False)
    # A request's document: everyone who reads requests.
    assert may_open_attachment(AGENT, [THEIRS], of_request=True)
