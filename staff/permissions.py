"""Who may do what in the console: pure rules over roles and a conversation's owner."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from conversations.ports import RequestStatus


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Perm(StrEnum):
    QUEUE = "queue"
    REPLY = "reply"
    REQUESTS = "requests"
    REVIEW = "review"
    DECIDE = "decide"
    BENEFICIARY = "beneficiary"
    CONTACT_LOG = "contact_log"
    CANNED_USE = "canned_use"
    CANNED_MANAGE = "canned_manage"
    SEE_ALL = "see_all"
    REASSIGN = "reassign"
    EXPORT = "export"
    ANONYMISE = "anonymise"
    REPORTS = "reports"
    STAFF_MANAGE = "staff_manage"
    KNOWLEDGE_MANAGE = "knowledge_manage"
    SETTINGS = "settings"
    OUTBOX = "outbox"


_AGENT = frozenset(
    {
        Perm.QUEUE,
        Perm.REPLY,
        Perm.REQUESTS,
        Perm.REVIEW,
        Perm.BENEFICIARY,
        Perm.CONTACT_LOG,
        Perm.CANNED_USE,
    }
)
_SUPERVISOR = _AGENT | {
    Perm.DECIDE,
    Perm.CANNED_MANAGE,
    Perm.SEE_ALL,
    Perm.REASSIGN,
    Perm.EXPORT,
    Perm.ANONYMISE,
    Perm.REPORTS,
    Perm.OUTBOX,
}
ROLE_PERMS: dict[Role, frozenset[Perm]] = {
    Role.AGENT: _AGENT,
    Role.SUPERVISOR: frozenset(_SUPERVISOR),
    Role.ADMIN: frozenset(_SUPERVISOR | {Perm.STAFF_MANAGE, Perm.KNOWLEDGE_MANAGE, Perm.SETTINGS}),
}

# A decision on a request is the committee's (supervisors); agents move it through review.
DECISIONS = frozenset({RequestStatus.APPROVED, RequestStatus.REJECTED})

ESCALATED = "escalated"


@dataclass(frozen=True, slots=True)
class Staff:
    """The signed-in staff member, as the pages see them."""

    id: int
    email: str
    name: str
    role: Role
    csrf: str = ""

    @property
    def actor(self) -> str:
        return f"staff:{self.email}"

    @property
    def label(self) -> str:
        return self.name or self.email


def can(staff: Staff, perm: Perm) -> bool:
    return perm in ROLE_PERMS[staff.role]


@dataclass(frozen=True, slots=True)
class ConversationView:
    """What the rules need to know about a conversation."""

    status: str
    assigned_to: str | None
    handoff_reason: str | None = None


def owns(staff: Staff, conv: ConversationView) -> bool:
    return conv.status == "staff" and conv.assigned_to == staff.email


def may_view(staff: Staff, conv: ConversationView) -> bool:
    """Agents see the queue and their own conversations; supervisors see everyone's."""
    return can(staff, Perm.SEE_ALL) or conv.status == "queued" or owns(staff, conv)


def may_claim(staff: Staff, conv: ConversationView) -> bool:
    """Anyone with the queue takes a waiting conversation; an escalated one needs a supervisor;
    taking one another member holds is a reassignment."""
    if not can(staff, Perm.QUEUE):
        return False
    if conv.status == "queued":
        return conv.handoff_reason != ESCALATED or can(staff, Perm.REASSIGN)
    if conv.status == "staff":
        return conv.assigned_to != staff.email and can(staff, Perm.REASSIGN)
    return False


def may_act(staff: Staff, conv: ConversationView) -> bool:
    """Transfer, escalate, give back or close: the owner, or a supervisor."""
    if not can(staff, Perm.REPLY):
        return False
    if owns(staff, conv):
        return True
    return conv.status == "staff" and can(staff, Perm.REASSIGN)


def may_reply(staff: Staff, conv: ConversationView) -> bool:
    """Write to the beneficiary: only the member who holds the conversation. A supervisor
    takes it over first, so that the beneficiary hears from one person and the console names
    who answers them."""
    return can(staff, Perm.REPLY) and owns(staff, conv)


def may_note(staff: Staff, conv: ConversationView) -> bool:
    """Internal notes may be left on any conversation the member can see."""
    return can(staff, Perm.REPLY) and may_view(staff, conv)


def may_open_attachment(
    staff: Staff, conversations: Iterable[ConversationView], *, of_request: bool
) -> bool:
    """A file a beneficiary sent is shown on the pages of their conversations (each shows
    the beneficiary's whole history): whoever may open one of those pages may open it. A
    file that is also a request's document follows the request's rule (those who read
    requests read their documents)."""
    if of_request and can(staff, Perm.REQUESTS):
        return True
    return any(may_view(staff, c) for c in conversations)


def may_set_status(staff: Staff, new: RequestStatus) -> bool:
    if new in DECISIONS:
        return can(staff, Perm.DECIDE)
    return can(staff, Perm.REVIEW)
