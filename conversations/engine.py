"""The conversation engine: one step per inbound message, the same on every channel.

``Engine.handle`` takes a message, the conversation's loaded state and a port onto
storage (inside the caller's transaction), mutates the state and returns the replies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from conversations.arabizi import language_of
from conversations.catalog import Catalog
from conversations.faq import FaqEntry, FaqMatcher
from conversations.faq_index import Decision, Outcome
from conversations.faq_text import content_words
from conversations.fields import NO_WORDS, YES_WORDS, format_dual_date, match_choice, number_word
from conversations.formflow import FormFlow
from conversations.forms import Form
from conversations.hours import WorkingHours
from conversations.messages import (
    Channel,
    Choice,
    Inbound,
    Reply,
    identity_kind,
    lang_hint,
    numbered_label,
)
from conversations.normalize import normalize_arabic, to_latin_digits
from conversations.ports import (
    EnginePort,
    FailedChecks,
    HandoffReason,
    InfoAnswer,
    RequestSummary,
)
from conversations.references import (
    canonical_reference,
    has_reference,
    is_reference,
    mask_long_numbers,
    without_reference,
)
from conversations.state import Mode, State, Survey


class ConversationStatus(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    STAFF = "staff"
    CLOSED = "closed"


# Modes in which the conversation waits for an answer to a question of its own: what the
# beneficiary sends then is that answer, even while staff wait for more information.
ANSWERING = frozenset(
    {
        Mode.FORM,
        Mode.RESUME,
        Mode.STATUS_REF,
        Mode.STATUS_VERIFY,
        Mode.SURVEY_RATING,
        Mode.SURVEY_COMMENT,
    }
)
# A rating said in words is read from a short sentence only, never from a negated one
# ("ماكانت ممتازة", "مهي ممتازة") nor from a greeting ("Good morning").
RATING_SENTENCE_WORDS = 8
NEGATIONS = frozenset(
    {"مو", "مب", "مش", "ما", "غير", "ليس", "ليست", "لا", "not", "no", "isn't", "wasn't", "never"}
)
NEGATING = ("ماكان", "ماهي", "ماهو", "مهو", "مهي", "مافي", "مب")
GREETING_WORDS = frozenset(
    {"morning", "evening", "afternoon", "night", "day", "bye", "goodbye", "luck", "صباح", "مساء"}
)


QUESTION_WORDS = frozenset(
    {
        *("وين", "فين", "اين", "متى", "كيف", "شلون", "كم", "هل", "ليش", "ليه", "لماذا"),
        *("ماذا", "ايش", "وش", "شو", "مين"),
        *("how", "what", "when", "where", "why", "who", "which", "can", "could", "do"),
        *("does", "is", "are", "will", "should"),
    }
)


def is_question(text: str) -> bool:
    """A question by its mark or its first word ("متى", "how")."""
    if "?" in text or "؟" in text:
        return True
    words = normalize_arabic(text).lower().split()
    return bool(words) and words[0].strip(".,،!") in QUESTION_WORDS


class InfoKind(StrEnum):
    """What a message is while staff wait for information on a request."""

    INFORMATION = "information"  # added to the request
    GREETING = "greeting"  # a hello alone, before anything came: reminded what is awaited
    OTHER = "other"  # a question, a request for staff...: handled as anywhere else


def _rating_word(word: str) -> str:
    """A word as the ratings are compared: punctuation and a feminine ending (ة/ه) aside."""
    word = word.strip(".,،!؟?")
    return word[:-1] if len(word) > 3 and word.endswith("ه") else word


MENU = ("faq", "apply", "status", "update", "volunteer", "complaint", "staff")
FORM_OF_MENU = {
    "apply": "support_request",
    "update": "update_data",
    "volunteer": "volunteer",
    "complaint": "complaint",
}
GLOBAL_WORDS = ("menu", "back", "cancel", "staff", "help", "english", "arabic", "my_data")


@dataclass
class Context:
    beneficiary_id: int
    conversation_id: int
    status: ConversationStatus
    state: State
    now: datetime
    channel: Channel
    # The offers made while answering (see State.offers), filled in by ``Engine.say``.
    offers: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class EngineSettings:
    response_days: int = 14
    misunderstood_limit: int = 2
    status_attempts: int = 3  # wrong answers in one conversation before staff step in
    # Across conversations: wrong answers within ``status_window`` by one sender, or about
    # one reference from anyone, after which checking pauses for ``status_lock``.
    status_sender_attempts: int = 5
    status_reference_attempts: int = 10
    status_window: timedelta = timedelta(hours=1)
    status_lock: timedelta = timedelta(hours=1)
    resume_after: timedelta = timedelta(hours=6)
    # Once information asked for by staff came: what follows within ``info_follow_up`` (or
    # after "send more") is more of it; ``info_lasts`` after the latest, none is taken.
    info_follow_up: timedelta = timedelta(minutes=30)
    info_lasts: timedelta = timedelta(days=1)
    # Waiting in the queue, the person who writes is told at most this often that their place
    # is kept (and, out of hours, when staff answer).
    queue_reminder: timedelta = timedelta(hours=2)


class Engine:
    def __init__(
        self,
        *,
        forms: dict[str, Form],
        catalog: Catalog,
        faq: FaqMatcher,
        hours: WorkingHours,
        settings: EngineSettings | None = None,
    ) -> None:
        self.forms = forms
        self.catalog = catalog
        self.faq = faq
        self.hours = hours
        self.settings = settings or EngineSettings()
        self.flow = FormFlow(self)
        self._words = {
            name: {
                normalize_arabic(w)
                for lang in ("ar", "en")
                for w in catalog.text(lang, f"words.{name}").split("|")
            }
            for name in (*GLOBAL_WORDS, "skip", "done", "yes", "no")
        }
        # A yes or a no is the same word to a button and to a yes/no question of a form.
        self._words["yes"] |= YES_WORDS
        self._words["no"] |= NO_WORDS

    # -- helpers shared with the form flow ------------------------------------------------

    def t(self, ctx: Context, key: str, **params: object) -> str:
        return self.catalog.text(ctx.state.lang or "ar", key, **params)

    def reply(
        self,
        ctx: Context,
        key: str,
        choices: Sequence[tuple[str, str]] = (),
        /,
        **params: object,
    ) -> Reply:
        lang = ctx.state.lang or "ar"
        return self.say(
            ctx,
            self.catalog.text(lang, key, **params),
            choices,
            short=self.catalog.short(lang, key, **params),
            key=key,
            params=tuple((name, str(value)) for name, value in params.items()),
        )

    def say(
        self,
        ctx: Context,
        text: str,
        choices: Sequence[tuple[str, str]] = (),
        *,
        short: str | None = None,
        lang: str | None = None,
        **extra: Any,
    ) -> Reply:
        """A reply (in the conversation's language unless ``lang`` says otherwise); its
        choices become what a number or label picks next."""
        offer = None
        if choices:
            state = ctx.state
            state.choices = [[label, value] for label, value in choices]
            draft = state.draft
            where = [draft.phase.value, draft.current or ""] if draft else ["", ""]
            key = [state.mode.value, *where, *(value for _, value in choices)]
            if key != state.offer_key:  # another question: a new number
                state.offer, state.offer_key = state.offer + 1, key
            offer = state.offer
            ctx.offers.append(offer)
        return Reply(
            text=text,
            choices=tuple(Choice(label, value) for label, value in choices),
            short_text=short,
            lang=lang or ctx.state.lang or "ar",
            offer=offer,
            **extra,
        )

    def word(self, text: str) -> str | None:
        norm = normalize_arabic(text)
        for name, variants in self._words.items():
            if norm in variants:
                return name
        return None

    def picked(self, ctx: Context, text: str) -> str | None:
        # A label that begins with its own number (the rating's "5 ممتاز") is also its words.
        options = [
            (value, [label, numbered_label(n, label), value])
            for n, (label, value) in enumerate(ctx.state.choices, start=1)
        ]
        if not options:
            return None
        # Offered questions are picked by number or in full: a question's first word ("كيف")
        # more likely starts a new question than names one of them.
        offered = any(value.startswith("faq:") for value, _ in options)
        return match_choice(text, options, by_first_word=not offered)

    def menu_choices(self, ctx: Context) -> list[tuple[str, str]]:
        return [(self.t(ctx, f"menu.{item}"), item) for item in MENU]

    def menu(self, ctx: Context, key: str = "menu.prompt") -> Reply:
        ctx.state.mode = Mode.MENU
        return self.reply(ctx, key, self.menu_choices(ctx))

    def yes_no(self, ctx: Context) -> list[tuple[str, str]]:
        return [(self.t(ctx, "choice.yes"), "yes"), (self.t(ctx, "choice.no"), "no")]

    def due_date(self, ctx: Context) -> datetime:
        return ctx.now + timedelta(days=self.settings.response_days)

    def dual_date(self, ctx: Context, when: datetime) -> str:
        local = when.astimezone(self.hours.zone).date()
        return format_dual_date(local, ctx.state.lang or "ar")

    # -- the step --------------------------------------------------------------------------

    async def handle(self, msg: Inbound, ctx: Context, port: EnginePort) -> list[Reply]:
        replies = await self._handle(msg, ctx, port)
        due = ctx.state.survey_due
        if due and replies and self._free_for_a_survey(ctx):
            ctx.state.survey_due = None
            replies = [*replies, *self.start_survey(ctx, due)]
        if replies:  # only the buttons of this answer are current (none, if it had none)
            ctx.state.offers = sorted(set(ctx.offers))
        return replies

    def _free_for_a_survey(self, ctx: Context) -> bool:
        """Nothing waits for an answer and nobody from staff has the conversation."""
        state = ctx.state
        return (
            ctx.status is ConversationStatus.BOT
            and not self.answering(ctx)
            and state.survey is None
            and state.info_request is None
            and state.mode in (Mode.MENU, Mode.FAQ)
        )

    def ask_rating_when_free(self, ctx: Context, reference: str) -> list[Reply]:
        """The rating of a closed request: asked now, or once what the person is answering
        is over."""
        if self._free_for_a_survey(ctx) or ctx.state.mode is Mode.NEW:
            return self.start_survey(ctx, reference)
        if ctx.status is ConversationStatus.BOT:
            ctx.state.survey_due = reference
        return []

    def stale(self, msg: Inbound, ctx: Context) -> bool:
        """Whether a pressed button belongs to an earlier message than the latest answer."""
        return msg.offer is not None and msg.offer not in ctx.state.offers

    async def _handle(self, msg: Inbound, ctx: Context, port: EnginePort) -> list[Reply]:
        state = ctx.state
        returning = self._returning(ctx)
        state.last_seen = ctx.now.isoformat()
        text = msg.text.strip()
        if state.lang is None:
            state.lang = language_of(text) or lang_hint(msg.lang_hint) or "ar"

        if ctx.status in (ConversationStatus.QUEUED, ConversationStatus.STAFF):
            return await self._while_with_staff(msg, ctx, port)

        command = (msg.command or "").lower()
        if command.startswith("lang:"):
            return self._set_language(ctx, command.split(":", 1)[1])
        if self.stale(msg, ctx) and self.word(text) not in ("menu", "staff"):
            # A button of an earlier message (a second tap, an old keyboard) would answer the
            # question asked now, or be taken for the information staff asked for, with what
            # was meant for another; an old "main menu" or "staff" still does what it says.
            if self.answering(ctx):
                return [self.reply(ctx, "old_button"), *self._ask_again(ctx)]
            if state.info_request is not None:
                return [self.reply(ctx, "old_button")]
        if state.info_request is not None and not self.answering(ctx):
            answered = await self._info_answer(msg, ctx, port, command)
            if answered is not None:
                return answered
        if command == "start:status":
            return await self._status_start(ctx, port)
        if command.startswith("start") or (state.mode is Mode.NEW and not command):
            return await self._greet(msg, ctx, port)
        if command == "menu":
            return [self.menu(ctx)]
        if command == "help":
            return [self.reply(ctx, "help"), *self._ask_again(ctx)]
        if command == "cancel":
            return self._cancel(ctx)

        word = self.word(text) if text else None
        if word == "staff" and self.flow.names_an_option(ctx, text):
            word = None  # a complaint about "a staff member", not a handover
        said = await self._global_word(word, ctx, port)
        if said is not None:
            return said
        if word == "my_data" and "data_request" in self.forms and state.mode is not Mode.FORM:
            # A copy or the deletion of one's personal data can be asked from anywhere (PDPL).
            return self._start_form(ctx, self.forms["data_request"])

        if returning and state.mode is Mode.FORM and state.draft is not None:
            return [self._offer_resume(ctx)]

        mode = state.mode
        if mode is Mode.FORM:
            return await self.flow.step(msg, ctx, port, word)
        if mode is Mode.RESUME:
            return await self._resume_answer(msg, ctx, port)
        if mode is Mode.STATUS_LIST:
            return await self._status_list_answer(msg, ctx, port, word)
        if mode is Mode.STATUS_REF:
            return await self._status_reference(msg, ctx, port, word)
        if mode is Mode.STATUS_VERIFY:
            return await self._status_verify(msg, ctx, port, word)
        if mode in (Mode.SURVEY_RATING, Mode.SURVEY_COMMENT):
            return await self._survey_answer(msg, ctx, port, word)
        if msg.attachments and text:
            # A question sent with a file: answered, and the file said not to be needed.
            notice = self.reply(ctx, "attachment.not_expected")
            return [notice, *await self._menu_or_question(msg, ctx, port, word)]
        return await self._menu_or_question(msg, ctx, port, word)

    async def _global_word(
        self, word: str | None, ctx: Context, port: EnginePort
    ) -> list[Reply] | None:
        """What a word that works everywhere does (a language, menu, staff, help, cancel);
        None for any other text."""
        if word == "english" or word == "arabic":
            return self._set_language(ctx, "en" if word == "english" else "ar")
        if word == "menu":
            ctx.state.misunderstood = 0
            return [self.menu(ctx)]
        if word == "staff":
            return await self.handoff(ctx, port, HandoffReason.ASKED)
        if word == "help":
            return [self.reply(ctx, "help"), *self._ask_again(ctx)]
        if word == "cancel":
            return self._cancel(ctx)
        return None

    def _returning(self, ctx: Context) -> bool:
        if ctx.state.last_seen is None:
            return False
        last = datetime.fromisoformat(ctx.state.last_seen)
        return ctx.now - last >= self.settings.resume_after

    async def _while_with_staff(self, msg: Inbound, ctx: Context, port: EnginePort) -> list[Reply]:
        """The bot is silent while staff own the conversation; a queued one may be left, and
        is told now and then that it still waits."""
        # Before anyone has taken it, "cancel", "menu" or "back" leave the queue for the bot.
        leaving = msg.command in ("cancel", "menu") or self.word(msg.text.strip()) in (
            "cancel",
            "menu",
            "back",
        )
        if ctx.status is ConversationStatus.QUEUED and leaving:
            await port.leave_queue(ctx.conversation_id)
            ctx.status = ConversationStatus.BOT
            return [self.menu(ctx, "handoff.left_queue")]
        if ctx.state.info_request is not None and self._info_over(ctx):
            self._end_info(ctx)
        if (
            ctx.state.info_request is not None
            and msg.command is None
            and self._sent_as(msg, ctx) is InfoKind.INFORMATION
        ):
            # Asked for more information, then talking with staff: what is sent is still
            # added to the request (silently: staff own the conversation and see it there).
            await self._add_info(msg, ctx, port)
        if ctx.status is ConversationStatus.QUEUED:
            return self._still_queued(ctx)
        return []

    def _still_queued(self, ctx: Context) -> list[Reply]:
        """Nobody has taken the conversation yet (P16): now and then the person is told that
        their place is kept and, out of working hours, when staff will answer; once for each
        closed period, and not on every message."""
        state = ctx.state
        said = state.queue_said
        due = said is None or ctx.now - datetime.fromisoformat(said) >= self.settings.queue_reminder
        replies = [self.reply(ctx, "handoff.still_waiting")] if due else []
        if not self.hours.is_open(ctx.now):
            opening = self.hours.next_opening(ctx.now)
            if due or state.hours_told != opening.isoformat():
                replies.append(self._out_of_hours(ctx, opening))
        if replies:
            state.queue_said = ctx.now.isoformat()
        return replies

    def _out_of_hours(self, ctx: Context, opening: datetime) -> Reply:
        ctx.state.hours_told = opening.isoformat()
        return self.reply(
            ctx,
            "handoff.out_of_hours",
            day=self.dual_date(ctx, opening),
            time=opening.strftime("%H:%M"),
        )

    def _set_language(self, ctx: Context, lang: str) -> list[Reply]:
        ctx.state.lang = lang if lang in ("ar", "en") else "ar"
        return [self.reply(ctx, "language.changed"), *self._ask_again(ctx)]

    def question_again(self, ctx: Context) -> list[Reply]:
        """The question the conversation waits an answer to, asked again after a message
        that could be no answer (a location, a sticker); nothing when none waits."""
        return self._ask_again(ctx) if self.answering(ctx) else []

    def _ask_again(self, ctx: Context) -> list[Reply]:
        """What the conversation waits for, asked again after an aside (help, a change of
        language): the form's question, the reference, the rating...; else the menu."""
        state = ctx.state
        mode = state.mode
        if mode is Mode.FORM and state.draft is not None:
            return self.flow.prompt_current(ctx)
        if mode is Mode.RESUME and state.draft is not None:
            switching = self._switching_to(ctx)
            if switching is not None:
                return [self._offer_switch(ctx, switching)]
            return [self._offer_resume(ctx)]
        if mode is Mode.STATUS_REF:
            return [self._ask_reference(ctx)]
        if mode is Mode.STATUS_VERIFY and state.status_reference:
            return [self.reply(ctx, "status.ask_last4")]
        if mode is Mode.SURVEY_RATING and state.survey is not None:
            return self.start_survey(ctx, state.survey.request_reference)
        if mode is Mode.SURVEY_COMMENT and state.survey is not None:
            return [self._ask_comment(ctx)]
        return [self.menu(ctx)]

    async def _greet(self, msg: Inbound, ctx: Context, port: EnginePort) -> list[Reply]:
        replies = [self.reply(ctx, "greeting")]
        if ctx.state.draft is not None:
            replies.append(self._offer_resume(ctx))
            return replies
        text = msg.text.strip()
        word = self.word(text) if text and msg.command is None else None
        if word in ("english", "arabic"):
            # The greeting is said again in the language asked for, the menu in it too.
            ctx.state.lang = "en" if word == "english" else "ar"
            return [self.reply(ctx, "greeting"), self.menu(ctx)]
        # A first "القائمة" (or "help", "موظف") does what it says, after the greeting: it is
        # not a question for the knowledge base.
        said = await self._global_word("menu" if word == "back" else word, ctx, port)
        if said is not None:
            return [*replies, *said]
        if text and msg.command is None:
            choice = self.picked(ctx, text)
            if choice is None:
                ctx.state.choices = [[label, value] for label, value in self.menu_choices(ctx)]
                choice = self.picked(ctx, text)
            if choice in MENU:
                return [*replies, *await self._menu_pick(choice, ctx, port)]
            if is_reference(text):
                return [*replies, *await self._check_reference(msg, ctx, port, None)]
            if content_words(text):
                decided = await self._decided(msg, ctx, port, text, ctx.state.lang)
                if decided is not None:
                    return [*replies, *decided]
        replies.append(self.menu(ctx))
        return replies

    def _offer_resume(self, ctx: Context) -> Reply:
        assert ctx.state.draft is not None
        form = self.forms[ctx.state.draft.form_id]
        ctx.state.mode = Mode.RESUME
        lang = ctx.state.lang or "ar"
        return self.reply(
            ctx,
            "form.resume",
            [(self.t(ctx, "choice.continue"), "yes"), (self.t(ctx, "choice.start_over"), "no")],
            form=form.title_in(lang),
        )

    async def _resume_answer(self, msg: Inbound, ctx: Context, port: EnginePort) -> list[Reply]:
        choice = self.picked(ctx, msg.text) or self.word(msg.text)
        draft = ctx.state.draft
        if draft is None:
            return [self.menu(ctx)]
        switching = self._switching_to(ctx)
        if choice == "no" and switching is not None:
            choice = f"switch:{switching.id}"  # "no" to continuing the other form: the new one
        if choice is not None and choice.startswith("switch:"):
            new = self.forms.get(choice.removeprefix("switch:"))
            if new is not None:
                ctx.state.draft = None
                return self.flow.start(ctx, new)
        if choice == "yes":
            ctx.state.mode = Mode.FORM
            return self.flow.prompt_current(ctx)
        if choice == "no":
            form_id = draft.form_id
            ctx.state.draft = None
            return self.flow.start(ctx, self.forms[form_id])
        return self._ask_again(ctx)

    def _cancel(self, ctx: Context) -> list[Reply]:
        replies: list[Reply] = []
        if ctx.state.draft is not None and ctx.state.mode in (Mode.FORM, Mode.RESUME):
            ctx.state.draft = None
            replies.append(self.reply(ctx, "form.cancelled"))
        ctx.state.survey = None
        ctx.state.status_reference = None
        replies.append(self.menu(ctx))
        return replies

    def _answer(self, ctx: Context, entry: FaqEntry, lang: str) -> Reply:
        """An entry's answer in ``lang`` (the question's), its buttons in the same language:
        what it offers to do, the main menu, a staff member."""
        ctx.state.misunderstood = 0
        offer = entry.offer
        offered = [(self.catalog.text(lang, f"menu.{offer}"), offer)] if offer else []
        return self.say(
            ctx,
            entry.answer(lang),
            [
                *offered,
                (self.catalog.text(lang, "choice.main_menu"), "menu"),
                (self.catalog.text(lang, "menu.staff"), "staff"),
            ],
            lang=lang,
        )

    async def _menu_or_question(
        self, msg: Inbound, ctx: Context, port: EnginePort, word: str | None
    ) -> list[Reply]:
        text = msg.text.strip()
        if msg.attachments and not text:
            return [self.reply(ctx, "attachment.not_expected"), self.menu(ctx)]
        if word == "back":
            return [self.menu(ctx)]
        choice = self.picked(ctx, text)
        if choice == "menu":
            return [self.menu(ctx)]
        if choice in MENU:
            return await self._menu_pick(choice, ctx, port)
        if choice is not None and choice.startswith("faq:"):
            return await self._faq_pick(choice, ctx, port, text)
        if is_reference(text):
            return await self._check_reference(msg, ctx, port, word)
        ctx.state.last_question = text
        if ctx.state.mode is not Mode.FAQ:
            ctx.state.choices = [[label, value] for label, value in self.menu_choices(ctx)]
            choice = self.picked(ctx, text)
            if choice in MENU:
                return await self._menu_pick(choice, ctx, port)
        lang = ctx.state.lang or "ar"
        detected = language_of(text)
        # Emoji alone ("🙏🙏", "👍") say thanks or hello: not a question nobody understood.
        said = content_words(text) if any(ch.isalnum() for ch in text) else []
        if detected and detected != lang and len(text.split()) >= 2 and said:
            # A sentence in the other language: the conversation goes on in it (not a mere
            # "ok thanks" in an Arabic conversation).
            ctx.state.lang = lang = detected
        if not said:
            # Only a greeting or a thank-you: nothing to misunderstand.
            return [self.menu(ctx)]
        decided = await self._decided(msg, ctx, port, text, lang)
        if decided is not None:
            return decided
        return await self._not_understood(ctx, port, text, lang)

    async def _check_reference(
        self, msg: Inbound, ctx: Context, port: EnginePort, word: str | None
    ) -> list[Reply]:
        """A request's reference sent on its own (pasted from the confirmation): check it."""
        ctx.state.mode = Mode.STATUS_REF
        return await self._status_reference(msg, ctx, port, word)

    async def _decided(
        self, msg: Inbound, ctx: Context, port: EnginePort, text: str, lang: str | None
    ) -> list[Reply] | None:
        """What the knowledge base makes of a question: an entry's action, its answer, the
        closest questions, or that the question is outside the association's work; None
        when it was not understood."""
        referred = has_reference(text)
        decision = self.faq.decide(without_reference(text) if referred else text, lang)
        action = decision.entry.action if decision.entry is not None else None
        closest = decision.suggestions[0] if decision.suggestions else None
        if referred and "status" in (action, closest.action if closest else None):
            # "وين وصل طلبي SR-1448-12؟": the reference is taken from the question. A
            # request's reference in it makes a question closest to the status check that
            # check, even when the words alone would only offer it among choices.
            return await self._check_reference(msg, ctx, port, None)
        if action:
            return await self._menu_pick(action, ctx, port)
        if decision.outcome is not Outcome.NONE:
            ctx.state.mode = Mode.MENU
            return self._from_decision(ctx, decision)
        if decision.outside:
            # Understood, as none of the association's business: not a miss in a row, but
            # listed for staff (it may be a question the association does answer after all).
            await self._record_unanswered(port, text, decision.lang)
            ctx.state.misunderstood = 0
            return [self.menu(ctx, "faq.outside")]
        return None

    async def _record_unanswered(self, port: EnginePort, text: str, lang: str) -> None:
        if text:
            # Kept for staff to teach the bot: an ID or a phone number typed here is not.
            await port.record_unanswered(mask_long_numbers(text), lang)

    async def _not_understood(
        self, ctx: Context, port: EnginePort, text: str, lang: str
    ) -> list[Reply]:
        await self._record_unanswered(port, text, lang)
        ctx.state.misunderstood += 1
        if ctx.state.misunderstood >= self.settings.misunderstood_limit:
            return await self.handoff(ctx, port, HandoffReason.MISUNDERSTOOD)
        return [self.menu(ctx, "not_understood")]

    def _from_decision(self, ctx: Context, decision: Decision) -> list[Reply]:
        """An answer in the language of the question, or the closest questions to pick from."""
        lang = decision.lang
        if decision.entry is not None:
            return [self._answer(ctx, decision.entry, lang)]
        choices = [(self._question_label(e, lang), f"faq:{e.id}") for e in decision.suggestions]
        choices.append((self.catalog.text(lang, "faq.none_of_these"), "faq:none"))
        return [self.say(ctx, self.catalog.text(lang, "faq.suggest"), choices, lang=lang)]

    @staticmethod
    def _question_label(entry: FaqEntry, lang: str) -> str:
        questions = entry.questions.get(lang) or next(iter(entry.questions.values()))
        return questions[0]

    async def _faq_pick(
        self, choice: str, ctx: Context, port: EnginePort, text: str
    ) -> list[Reply]:
        entry_id = choice.removeprefix("faq:")
        entry = self.faq.entry(entry_id)
        lang = ctx.state.lang or "ar"
        ctx.state.mode = Mode.MENU
        if entry is None:
            return await self._not_understood(ctx, port, ctx.state.last_question or text, lang)
        if entry.action:
            return await self._menu_pick(entry.action, ctx, port)
        answer_lang = language_of(text) or lang
        return [self._answer(ctx, entry, answer_lang)]

    async def _menu_pick(self, choice: str, ctx: Context, port: EnginePort) -> list[Reply]:
        ctx.state.misunderstood = 0
        if choice == "faq":
            ctx.state.mode = Mode.FAQ
            return [self.reply(ctx, "faq.ask", [(self.t(ctx, "choice.main_menu"), "menu")])]
        if choice == "staff":
            return await self.handoff(ctx, port, HandoffReason.ASKED)
        if choice == "status":
            return await self._status_start(ctx, port)
        return self._start_form(ctx, self.forms[FORM_OF_MENU[choice]])

    def _switching_to(self, ctx: Context) -> Form | None:
        """The form the person chose while another was half filled, while that is asked."""
        switch = next((v for _, v in ctx.state.choices if v.startswith("switch:")), None)
        return self.forms.get(switch.removeprefix("switch:")) if switch else None

    def _start_form(self, ctx: Context, form: Form) -> list[Reply]:
        """A form started: the same one half filled is offered to resume, another one half
        filled is not thrown away without asking."""
        draft = ctx.state.draft
        if draft is not None and draft.form_id == form.id:
            return [self._offer_resume(ctx)]
        if draft is not None and draft.answers and draft.form_id in self.forms:
            return [self._offer_switch(ctx, form)]
        return self.flow.start(ctx, form)

    def _offer_switch(self, ctx: Context, new: Form) -> Reply:
        assert ctx.state.draft is not None
        lang = ctx.state.lang or "ar"
        old = self.forms[ctx.state.draft.form_id].title_in(lang)
        title = new.title_in(lang)
        ctx.state.mode = Mode.RESUME
        return self.reply(
            ctx,
            "form.switch",
            [
                (self.t(ctx, "choice.continue"), "yes"),
                (self.t(ctx, "form.start_new", new=title), f"switch:{new.id}"),
            ],
            old=old,
            new=title,
        )

    # -- handoff ------------------------------------------------------------------------------

    async def handoff(self, ctx: Context, port: EnginePort, reason: HandoffReason) -> list[Reply]:
        await port.handoff(ctx.conversation_id, reason)
        ctx.status = ConversationStatus.QUEUED
        ctx.state.misunderstood = 0
        ctx.state.mode = Mode.MENU
        ctx.state.choices = []
        key = "handoff.misunderstood" if reason is HandoffReason.MISUNDERSTOOD else "handoff.queued"
        replies = [self.reply(ctx, key)]
        ctx.state.queue_said = ctx.now.isoformat()
        ctx.state.hours_told = None
        if not self.hours.is_open(ctx.now):
            replies.append(self._out_of_hours(ctx, self.hours.next_opening(ctx.now)))
        return replies

    # -- more information on a request (P7) ----------------------------------------------------

    @staticmethod
    def answering(ctx: Context) -> bool:
        """Whether the conversation waits for the answer to a question of its own."""
        return ctx.state.mode in ANSWERING

    def await_info(self, ctx: Context, reference: str) -> list[Reply]:
        """Staff asked for more: what the beneficiary sends next goes onto the request, once
        nothing else waits for an answer. In the middle of a form (or a check, a rating) the
        answers stay the form's: what to say after the notice is its question, again."""
        ctx.state.info_request = reference
        ctx.state.info_received = None
        ctx.state.info_more = False
        if self.answering(ctx):
            return self._ask_again(ctx)
        ctx.state.choices = []  # a number they send now is information, not a menu pick
        return []

    def _end_info(self, ctx: Context) -> None:
        ctx.state.info_request = None
        ctx.state.info_received = None
        ctx.state.info_more = False

    def _info_over(self, ctx: Context) -> bool:
        """A day after the latest information (or "send more"), nothing more is added."""
        received = ctx.state.info_received
        if received is None:
            return False
        return ctx.now - datetime.fromisoformat(received) >= self.settings.info_lasts

    def _asks_something_else(self, ctx: Context, text: str) -> bool:
        """A message that asks for something rather than brings it: a person from staff, the
        status of a request, a question the knowledge base answers with confidence."""
        entry = self.faq.decide(text, ctx.state.lang).entry
        if entry is None:
            return False
        return entry.action is not None or is_question(text)

    def _sent_as(self, msg: Inbound, ctx: Context) -> InfoKind:
        """What a message sent while staff wait for information on a request is."""
        state = ctx.state
        text = msg.text.strip()
        if msg.attachments:
            return InfoKind.INFORMATION
        if not text:
            return InfoKind.OTHER
        if state.info_received is not None and not state.info_more:
            # Information came already: only what follows shortly after is more of it.
            last = datetime.fromisoformat(state.info_received)
            if ctx.now - last > self.settings.info_follow_up:
                return InfoKind.OTHER
        if self._asks_something_else(ctx, text):
            return InfoKind.OTHER
        if not any(ch.isalnum() for ch in text) or (
            not content_words(text) and not any(ch.isdigit() for ch in to_latin_digits(text))
        ):
            # "السلام عليكم", "شكرا", an emoji: nothing staff asked for.
            return InfoKind.GREETING if state.info_received is None else InfoKind.OTHER
        return InfoKind.INFORMATION

    async def _add_info(self, msg: Inbound, ctx: Context, port: EnginePort) -> bool:
        """The message put onto the request; False (and the waiting over) when the request
        no longer takes any."""
        reference = ctx.state.info_request
        assert reference is not None
        answer = InfoAnswer(msg.text.strip(), msg.attachments, ctx.channel, ctx.now)
        if not await port.add_request_info(reference, ctx.beneficiary_id, answer):
            self._end_info(ctx)
            return False
        ctx.state.info_received = ctx.now.isoformat()
        ctx.state.info_more = False
        return True

    async def _info_answer(
        self, msg: Inbound, ctx: Context, port: EnginePort, command: str
    ) -> list[Reply] | None:
        """Replies when the message was taken as information (or for it); None to carry on
        as usual: a request for staff, a question, the status, a choice of the last answer's
        buttons are handled as anywhere else, and the request still waits."""
        state = ctx.state
        reference = state.info_request
        assert reference is not None
        text = msg.text.strip()
        word = self.word(text) if text else None
        choice = self.picked(ctx, text) if text else None
        if command in ("menu", "cancel") or command.startswith("start"):
            self._end_info(ctx)
            return None
        if word in ("menu", "cancel", "back") or choice == "menu":
            self._end_info(ctx)
            return None
        if command or word in ("english", "arabic", "help", "staff", "my_data"):
            return None
        if choice == "more":
            state.info_received = ctx.now.isoformat()
            state.info_more = True
            state.choices = []
            return [self.reply(ctx, "info.more")]
        if self._info_over(ctx):
            self._end_info(ctx)
            return None
        if choice is not None:
            return None  # a button of the answer just given (a question's, the status list's)
        kind = self._sent_as(msg, ctx)
        if kind is InfoKind.GREETING:
            state.choices = []
            return [self.reply(ctx, "info.waiting", reference=reference)]
        if kind is InfoKind.OTHER:
            return None
        if not await self._add_info(msg, ctx, port):
            return None
        state.misunderstood = 0
        choices = [
            (self.t(ctx, "info.send_more"), "more"),
            (self.t(ctx, "choice.main_menu"), "menu"),
        ]
        return [self.reply(ctx, "info.received", choices, reference=reference)]

    # -- request status (P20: only to the person who applied) -------------------------------------

    async def _status_start(self, ctx: Context, port: EnginePort) -> list[Reply]:
        ctx.state.status_reference = None
        own = await port.requests_of(ctx.beneficiary_id)
        other = (self.t(ctx, "status.other_reference"), "other")
        if not own:
            ctx.state.mode = Mode.STATUS_REF
            return [self._ask_reference(ctx)]
        lines = [self._status_line(ctx, r) for r in own]
        # The list answers the question: what comes next is not taken for a reference.
        ctx.state.mode = Mode.STATUS_LIST
        return [
            self.say(
                ctx,
                self.t(ctx, "status.yours") + "\n\n" + "\n\n".join(lines),
                [other, (self.t(ctx, "choice.main_menu"), "menu")],
            )
        ]

    async def _status_list_answer(
        self, msg: Inbound, ctx: Context, port: EnginePort, word: str | None
    ) -> list[Reply]:
        if self.picked(ctx, msg.text) == "other":
            ctx.state.mode = Mode.STATUS_REF
            return [self._ask_reference(ctx)]
        ctx.state.mode = Mode.MENU
        return await self._menu_or_question(msg, ctx, port, word)

    def _ask_reference(self, ctx: Context) -> Reply:
        return self.reply(ctx, "status.ask_reference", [(self.t(ctx, "choice.main_menu"), "menu")])

    def _status_line(self, ctx: Context, request: Any) -> str:
        lang = ctx.state.lang or "ar"
        form = self.forms.get(request.form_id)
        due = self.dual_date(ctx, request.due_at) if request.due_at else "—"
        return self.t(
            ctx,
            "status.line",
            reference=request.reference,
            form=form.title_in(lang) if form else request.form_id,
            status=self.t(ctx, f"status.name.{request.status.value}"),
            submitted=self.dual_date(ctx, request.submitted_at),
            due=due,
        )

    async def _status_reference(
        self, msg: Inbound, ctx: Context, port: EnginePort, word: str | None
    ) -> list[Reply]:
        choice = self.picked(ctx, msg.text)
        if choice == "menu" or word == "back":
            return [self.menu(ctx)]
        if choice == "other":
            return [self._ask_reference(ctx)]
        digits = to_latin_digits(msg.text.strip())
        if ctx.state.status_reference and len(digits) == 4 and digits.isdigit():
            # The four digits again, after a wrong answer: for the same reference.
            ctx.state.mode = Mode.STATUS_VERIFY
            return await self._status_verify(msg, ctx, port, word)
        if not has_reference(msg.text):
            if any(ch.isalpha() for ch in msg.text) and content_words(msg.text):
                # A sentence, not a reference ("I lost it", a question): it is answered.
                ctx.state.mode = Mode.MENU
                return await self._menu_or_question(msg, ctx, port, word)
            menu = (self.t(ctx, "choice.main_menu"), "menu")
            return [self.reply(ctx, "status.bad_reference", [menu])]
        reference = canonical_reference(msg.text)
        own = next(
            (r for r in await port.requests_of(ctx.beneficiary_id) if r.reference == reference),
            None,
        )
        if own is not None:
            # Their own request (the list from the menu shows it unasked): nothing to prove.
            return self._status_shown(ctx, own)
        locked = await self._status_locked(msg, ctx, port, reference)
        if locked:
            return locked
        ctx.state.status_reference = reference
        ctx.state.mode = Mode.STATUS_VERIFY
        return [self.reply(ctx, "status.ask_last4")]

    async def _status_verify(
        self, msg: Inbound, ctx: Context, port: EnginePort, word: str | None
    ) -> list[Reply]:
        if word == "back":
            ctx.state.mode = Mode.STATUS_REF
            return [self._ask_reference(ctx)]
        digits = "".join(ch for ch in to_latin_digits(msg.text) if ch.isdigit())
        text = msg.text.strip()
        if is_reference(text):
            # The reference sent again (pasted once more): for it, the digits are asked.
            ctx.state.mode = Mode.STATUS_REF
            return await self._status_reference(msg, ctx, port, word)
        if not digits and any(ch.isalpha() for ch in text) and content_words(text):
            # A sentence, not digits ("ما لقيت الهوية، وش اسوي؟", "لحظة اشوف الهوية"): not a
            # wrong answer. A question (or one the knowledge base answers) is answered;
            # anything else waits for the digits.
            if is_question(text) or self._asks_something_else(ctx, text):
                ctx.state.mode = Mode.MENU
                decided = await self._decided(msg, ctx, port, text, ctx.state.lang)
                if decided is not None:
                    return decided
            ctx.state.mode = Mode.STATUS_VERIFY
            return [self.reply(ctx, "status.ask_last4")]
        reference = ctx.state.status_reference or ""
        locked = await self._status_locked(msg, ctx, port, reference)
        if locked:
            return locked
        found = await port.verify_request(reference, digits) if len(digits) == 4 else None
        if found is None:
            await port.record_failed_check(self._sender(msg), reference, ctx.now)
            ctx.state.status_failures += 1
            if ctx.state.status_failures >= self.settings.status_attempts:
                ctx.state.status_failures = 0
                ctx.state.status_reference = None
                return [
                    self.reply(ctx, "status.too_many"),
                    *await self.handoff(ctx, port, HandoffReason.STATUS_VERIFICATION),
                ]
            locked = await self._status_locked(msg, ctx, port, reference)
            if locked:
                return locked
            ctx.state.mode = Mode.STATUS_REF
            return [self.reply(ctx, "status.not_verified")]
        return self._status_shown(ctx, found)

    def _status_shown(self, ctx: Context, request: RequestSummary) -> list[Reply]:
        ctx.state.status_failures = 0
        ctx.state.status_reference = None
        ctx.state.mode = Mode.MENU
        return [
            self.say(
                ctx,
                self._status_line(ctx, request),
                [(self.t(ctx, "choice.main_menu"), "menu")],
            )
        ]

    @staticmethod
    def _sender(msg: Inbound) -> tuple[str, str]:
        return identity_kind(msg.channel), msg.sender_id

    def _lock_ends(self, failed: FailedChecks) -> datetime | None:
        """When checking may resume, if the recent wrong answers have reached a limit."""
        settings = self.settings
        ends = [
            last + settings.status_lock
            for count, limit, last in (
                (failed.by_sender, settings.status_sender_attempts, failed.sender_last),
                (failed.by_reference, settings.status_reference_attempts, failed.reference_last),
            )
            if count >= limit and last is not None
        ]
        return max(ends) if ends else None

    async def _status_locked(
        self, msg: Inbound, ctx: Context, port: EnginePort, reference: str
    ) -> list[Reply]:
        """The polite refusal while checking is paused for this sender or reference."""
        since = ctx.now - self.settings.status_window
        ends = self._lock_ends(await port.failed_checks(self._sender(msg), reference, since))
        if ends is None or ends <= ctx.now:
            return []
        ctx.state.status_reference = None
        ctx.state.status_failures = 0
        ctx.state.mode = Mode.MENU
        minutes = max(1, -(-int((ends - ctx.now).total_seconds()) // 60))
        return [
            self.reply(
                ctx,
                "status.locked",
                [(self.t(ctx, "choice.main_menu"), "menu")],
                minutes=self.catalog.minutes(ctx.state.lang or "ar", minutes),
            )
        ]

    # -- satisfaction survey (P9) -----------------------------------------------------------

    def start_survey(self, ctx: Context, request_reference: str | None) -> list[Reply]:
        ctx.state.survey = Survey(request_reference)
        ctx.state.mode = Mode.SURVEY_RATING
        key = "survey.ask_request" if request_reference else "survey.ask_conversation"
        return [self.reply(ctx, key, self._ratings(ctx), reference=request_reference or "")]

    def _rating_said(self, ctx: Context, text: str) -> int | None:
        """The rating a short sentence says in the rating's own words ("الخدمة ممتازة"),
        the longest that fits ("جيد جدا" before "جيد"); None if negated, a greeting, or not
        said. Words are compared whole, a feminine ending aside."""
        words = [_rating_word(w) for w in normalize_arabic(text).lower().split()]
        if not words or len(words) > RATING_SENTENCE_WORDS:
            return None
        if any(w in NEGATIONS or w.startswith(NEGATING) for w in words) or GREETING_WORDS & set(
            words
        ):
            return None
        found: list[tuple[int, int]] = []
        for lang in ("ar", "en"):
            for n in range(1, 6):
                label = normalize_arabic(self.catalog.text(lang, f"survey.rating.{n}")).lower()
                phrase = [_rating_word(w) for w in label.split() if not w.isdigit()]
                size = len(phrase)
                if size and any(words[i : i + size] == phrase for i in range(len(words))):
                    found.append((size, n))
        return max(found)[1] if found else None

    def _ratings(self, ctx: Context) -> list[tuple[str, str]]:
        choices = [(self.t(ctx, f"survey.rating.{n}"), str(n)) for n in range(1, 6)]
        return [*choices, (self.t(ctx, "choice.skip"), "skip")]

    def _ask_comment(self, ctx: Context) -> Reply:
        return self.reply(ctx, "survey.ask_comment", [(self.t(ctx, "choice.skip"), "skip")])

    async def _survey_answer(
        self, msg: Inbound, ctx: Context, port: EnginePort, word: str | None
    ) -> list[Reply]:
        survey = ctx.state.survey
        if survey is None:
            return [self.menu(ctx)]
        text = msg.text.strip()
        if ctx.state.mode is Mode.SURVEY_RATING:
            choice = self.picked(ctx, text)
            if choice is None:
                digits = to_latin_digits(text)
                choice = digits if digits in {"1", "2", "3", "4", "5"} else None
            if choice is None and (number_word(text) or 0) in range(1, 6):
                choice = str(number_word(text))
            if choice == "skip" or word == "skip":
                ctx.state.survey = None
                return [self.menu(ctx, "survey.skipped")]
            said = self._rating_said(ctx, text) if choice is None else None
            if said is not None:
                # "الخدمة ممتازة جزاكم الله خير": the rating and the comment in one message.
                await port.record_survey(
                    ctx.beneficiary_id,
                    ctx.conversation_id,
                    survey.request_reference,
                    said,
                    text[:2000],
                )
                ctx.state.survey = None
                return [self.menu(ctx, "survey.thanks")]
            if choice is None and any(ch.isalpha() for ch in text) and content_words(text):
                # A question or a request rather than a rating: the survey is left, unanswered
                # (rating is a right, not a duty), and the message is answered.
                ctx.state.survey = None
                ctx.state.mode = Mode.MENU
                return await self._menu_or_question(msg, ctx, port, word)
            if choice is None:
                return [self.reply(ctx, "survey.bad_rating", self._ratings(ctx))]
            survey.rating = int(choice)
            ctx.state.mode = Mode.SURVEY_COMMENT
            return [self._ask_comment(ctx)]
        skipped = self.picked(ctx, text) == "skip" or word == "skip" or not text
        asking = not skipped and self._asks_something_else(ctx, text)
        if asking:
            # A question rather than a comment ("وين وصل طلبي الثاني؟"): the rating is kept,
            # and the question answered.
            skipped = True
        await port.record_survey(
            ctx.beneficiary_id,
            ctx.conversation_id,
            survey.request_reference,
            survey.rating or 0,
            None if skipped else text[:2000],
        )
        ctx.state.survey = None
        if asking:
            ctx.state.mode = Mode.MENU
            return await self._menu_or_question(msg, ctx, port, word)
        return [self.menu(ctx, "survey.thanks")]
