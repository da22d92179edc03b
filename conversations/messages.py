"""The one inbound message type and the channel-neutral replies adapters render."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Channel(StrEnum):
    CONSOLE = "console"
    WEBCHAT = "webchat"
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    SMS = "sms"
    EMAIL = "email"


def identity_kind(channel: Channel) -> str:
    """The kind of address a channel reaches: WhatsApp and SMS share the phone number."""
    if channel in (Channel.WHATSAPP, Channel.SMS):
        return "phone"
    return channel.value


# A web chat's address is the secret its browser's session cookie carries: whoever holds it
# reads and writes as the beneficiary.
SECRET_ADDRESS_KINDS = frozenset({Channel.WEBCHAT.value})


def shown_address(kind: str, address: str) -> str:
    """An address as staff and exports may show it: a secret one by its last four
    characters only, enough to tell two sessions apart."""
    if kind in SECRET_ADDRESS_KINDS and not address.startswith("anonymised:"):
        return f"…{address[-4:]}"
    return address


class Lang(StrEnum):
    AR = "ar"
    EN = "en"


def lang_hint(code: object) -> str | None:
    """A language the catalogues hold, from a channel's language tag ("en-GB" is "en").
    Anything but a string (a malformed update's ``true``, say) is no hint."""
    if not isinstance(code, str):
        return None
    primary = code.split("-")[0].split("_")[0].strip().lower()
    return primary if primary in (Lang.AR, Lang.EN) else None


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file the beneficiary sent or the bot sends.

    ``ref`` is the storage key (a safe generated name under the attachments folder),
    never a path taken from the sender.
    """

    ref: str
    content_type: str
    size: int
    filename: str = ""


# A catalogue key and its parameters, as text: what a channel tells the sender about a message.
Notice = tuple[str, tuple[tuple[str, str], ...]]


def notice(key: str, **params: object) -> Notice:
    return key, tuple((name, str(value)) for name, value in params.items())


@dataclass(frozen=True, slots=True)
class Inbound:
    channel: Channel
    sender_id: str
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    channel_message_id: str = ""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    thread_id: str | None = None
    reply_to: str | None = None
    # A channel-level command rather than typed text: "start", "menu", "cancel", "help",
    # "lang:ar", "lang:en", or "start:<payload>" for deep links.
    command: str | None = None
    # A phone number the channel vouches for (Telegram contact sharing, WhatsApp/SMS sender).
    verified_phone: str | None = None
    display_name: str = ""
    # The language the channel says the person reads (Telegram's language setting, the web
    # chat page's), "ar" or "en": a new conversation starts in it when its first message
    # does not tell.
    lang_hint: str | None = None
    # The offer (``Reply.offer``) a pressed button belonged to, when the channel sends it back.
    offer: int | None = None
    # What the channel has to tell the sender about this message (a file it did not keep), as
    # catalogue keys and their parameters: told by the step, before its answer, so that it
    # goes out once and in the conversation's order.
    notices: tuple[Notice, ...] = ()


@dataclass(frozen=True, slots=True)
class Choice:
    label: str
    value: str


class Ask(StrEnum):
    ATTACHMENT = "attachment"
    PHONE = "phone"


@dataclass(frozen=True, slots=True)
class Reply:
    """One message to the beneficiary.

    ``text`` is always present and readable on its own; ``choices`` are offered as
    buttons where the channel has them and as numbered lines where it does not;
    ``ask`` tells the channel to offer an upload or a share-my-phone button.
    """

    text: str
    choices: tuple[Choice, ...] = ()
    ask: Ask | None = None
    attachment: Attachment | None = None
    # A short SMS variant of ``text`` where the catalogue has one.
    short_text: str | None = None
    # The catalogue key and parameters the text was made from (for channel templates).
    key: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    # The language it is written in, where the engine knows it (a page can follow it).
    lang: str | None = None
    # The number of the offer its choices make (``State.offer``), for channels with buttons.
    offer: int | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "text": self.text,
            "choices": [{"label": c.label, "value": c.value} for c in self.choices],
        }
        if self.ask is not None:
            data["ask"] = self.ask.value
        if self.attachment is not None:
            data["attachment"] = {
                "ref": self.attachment.ref,
                "content_type": self.attachment.content_type,
                "size": self.attachment.size,
                "filename": self.attachment.filename,
            }
        if self.short_text:
            data["short_text"] = self.short_text
        if self.key:
            data["key"] = self.key
            data["params"] = dict(self.params)
        if self.lang:
            data["lang"] = self.lang
        if self.offer is not None:
            data["offer"] = self.offer
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Reply:
        raw_choices = data.get("choices") or []
        assert isinstance(raw_choices, list)
        att = data.get("attachment")
        ask = data.get("ask")
        short = data.get("short_text")
        key = data.get("key")
        params = data.get("params")
        lang = data.get("lang")
        offer = data.get("offer")
        return cls(
            text=str(data.get("text", "")),
            choices=tuple(Choice(str(c["label"]), str(c["value"])) for c in raw_choices),
            ask=Ask(str(ask)) if ask else None,
            attachment=Attachment(
                ref=str(att["ref"]),
                content_type=str(att["content_type"]),
                size=int(att["size"]),
                filename=str(att.get("filename", "")),
            )
            if isinstance(att, dict)
            else None,
            short_text=str(short) if short else None,
            key=str(key) if key else None,
            params=tuple((str(k), str(v)) for k, v in params.items())
            if isinstance(params, dict)
            else (),
            lang=str(lang) if lang else None,
            offer=offer if isinstance(offer, int) else None,
        )


def file_kinds(content_types: Iterable[str]) -> str:
    """File types as a person names them: "image/jpeg", "application/pdf" -> "JPEG, PDF"."""
    return ", ".join(t.split("/")[-1].upper() for t in content_types)


def numbered_label(n: int, label: str) -> str:
    """A choice's label as it reads after its number in a numbered list: one that begins
    with that very number (the rating's "1 ضعيف") does not say it twice."""
    head = f"{n} "
    return label[len(head) :] if label.startswith(head) and label[len(head) :].strip() else label


def combine_replies(replies: Sequence[Reply]) -> list[Reply]:
    """Fold replies into as few as read well as one message (an email, say).

    A reply without choices, request or attachment joins the next one; the text of each
    stays its own paragraph, and the last reply's choices and request are kept.
    """
    combined: list[Reply] = []
    pending: list[Reply] = []
    for reply in replies:
        pending.append(reply)
        if reply.choices or reply.ask or reply.attachment:
            combined.append(_fold(pending))
            pending = []
    if pending:
        combined.append(_fold(pending))
    return combined


def _fold(replies: Sequence[Reply]) -> Reply:
    if len(replies) == 1:
        return replies[0]
    last = replies[-1]
    return Reply(
        text="\n\n".join(r.text for r in replies),
        choices=last.choices,
        ask=last.ask,
        attachment=last.attachment,
        key=last.key,
        params=last.params,
        lang=last.lang,
    )
