"""Filling in a form: one field at a time, validated, with back, skip, summary and correction."""

from __future__ import annotations

import contextlib
import copy
from datetime import date
from typing import TYPE_CHECKING, Any

from conversations.fields import (
    Parsed,
    ParseResult,
    Rejected,
    display_date,
    left_to_right,
    parse_date,
    parse_email,
    parse_integer,
    parse_national_id,
    parse_saudi_mobile,
    parse_text,
    parse_yesno,
)
from conversations.forms import FieldType, Form, FormField
from conversations.messages import Ask, Attachment, Channel, Inbound, Reply, file_kinds
from conversations.normalize import normalize_arabic, script_language, to_latin_digits
from conversations.ports import EnginePort, HandoffReason, Submission
from conversations.state import Draft, Mode, Phase

if TYPE_CHECKING:
    from conversations.engine import Context, Engine


def parse_answer(field: FormField, raw: str, ctx: Context, engine: Engine) -> ParseResult:
    today = ctx.now.astimezone(engine.hours.zone).date()
    match field.type:
        case FieldType.TEXT:
            return parse_text(raw, min_length=field.min_length, max_length=field.max_length)
        case FieldType.INTEGER:
            return parse_integer(raw, minimum=field.minimum, maximum=field.maximum)
        case FieldType.YESNO:
            picked = engine.picked(ctx, raw)
            if picked not in ("yes", "no"):
                result = parse_yesno(raw)
                if isinstance(result, Rejected):
                    return result
                picked = result.value
            return Parsed(picked, engine.t(ctx, f"choice.{picked}"))
        case FieldType.CHOICE:
            value = engine.picked(ctx, raw)
            options = [(o.value, list(o.labels.values())) for o in field.options]
            if value is None:
                from conversations.fields import match_choice

                value = match_choice(raw, options) or option_naming(field, raw)
            option = field.option(value)
            if option is None:
                return Rejected("error.choice", {})
            return Parsed(option.value, option.label(ctx.state.lang or "ar"))
        case FieldType.DATE:
            return parse_date(
                raw,
                today=today,
                calendar=field.calendar,
                allow_future=field.allow_future,
                allow_past=field.allow_past,
            )
        case FieldType.NATIONAL_ID:
            return parse_national_id(raw)
        case FieldType.MOBILE:
            return parse_saudi_mobile(raw)
        case FieldType.EMAIL:
            return parse_email(raw)
        case FieldType.ATTACHMENT:
            return Rejected("error.attachment_expected", {})


# The fewest letters a word must have to pick the one option whose label holds it.
NAMING_LETTERS = 4


def option_naming(field: FormField, raw: str) -> str | None:
    """The one option whose label holds the word typed ("موظف" in «تعامل أحد الموظفين»,
    "staff" in "A staff member"), or None."""
    word = normalize_arabic(raw.strip()).lower()
    if len(word) < NAMING_LETTERS or " " in word:
        return None
    naming = [
        o.value
        for o in field.options
        if any(word in normalize_arabic(label).lower() for label in o.labels.values())
    ]
    return naming[0] if len(naming) == 1 else None


class FormFlow:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def form_of(self, ctx: Context) -> tuple[Form, Draft]:
        draft = ctx.state.draft
        assert draft is not None
        return self.engine.forms[draft.form_id], draft

    # -- entering and prompting -------------------------------------------------------------

    def start(self, ctx: Context, form: Form) -> list[Reply]:
        ctx.state.draft = Draft(form_id=form.id, started_at=ctx.now.isoformat())
        ctx.state.mode = Mode.FORM
        if form.intro:
            return [self._intro(ctx, form)]
        return self._go_next(ctx, None)

    def _intro(self, ctx: Context, form: Form) -> Reply:
        """The form's introduction, to agree to before its first question."""
        e = self.engine
        lang = ctx.state.lang or "ar"
        intro = form.intro.get(lang) or form.intro["ar"]
        return e.say(
            ctx,
            e.t(ctx, "form.intro", form=form.title_in(lang), intro=intro),
            [(e.t(ctx, "choice.agree_start"), "yes"), (e.t(ctx, "choice.cancel"), "cancel")],
        )

    def prompt_current(self, ctx: Context) -> list[Reply]:
        """The question the form waits for, asked again (after help, a change of language, a
        return); an introduction not yet agreed to is shown again, never passed over."""
        form, draft = self.form_of(ctx)
        ctx.state.mode = Mode.FORM
        if draft.phase is Phase.INTRO:
            if form.intro:
                return [self._intro(ctx, form)]
            return self._go_next(ctx, None)
        if draft.phase is Phase.FIELD and draft.current:
            return [self.ask(ctx, form.field(draft.current))]
        if draft.phase is Phase.PICK_CORRECTION:
            return [self._pick_correction(ctx)]
        if draft.phase is Phase.DECLARATION:
            return [self._declaration(ctx)]
        return [self.summary(ctx)]

    def ask(self, ctx: Context, field: FormField) -> Reply:
        e = self.engine
        form, draft = self.form_of(ctx)
        lang = ctx.state.lang or "ar"
        applicable = [f for f in form.fields if f.applies(draft.answers)]
        position = next((i for i, f in enumerate(applicable, 1) if f.name == field.name), 1)
        text = e.t(ctx, "form.step", n=position, total=len(applicable), prompt=field.text(lang))
        choices: list[tuple[str, str]] = []
        ask: Ask | None = None
        if field.type is FieldType.CHOICE:
            choices = [(o.label(lang), o.value) for o in field.options]
        elif field.type is FieldType.YESNO:
            choices = e.yes_no(ctx)
        elif field.type is FieldType.ATTACHMENT:
            ask = Ask.ATTACHMENT
            choices = self._documents_choices(ctx, field)
            if ctx.channel is Channel.SMS:
                # A text message carries no file here (no MMS in Saudi Arabia): say where to
                # send them, or the form could never be finished.
                text += "\n" + e.t(ctx, "attachment.by_sms")
        elif field.type is FieldType.MOBILE:
            ask = Ask.PHONE
        if field.type is not FieldType.ATTACHMENT:
            choices += self._skip_and_back(ctx, field)
        ctx.state.choices = []
        return e.say(ctx, text, choices, ask=ask)

    def _skip_and_back(self, ctx: Context, field: FormField) -> list[tuple[str, str]]:
        e = self.engine
        _, draft = self.form_of(ctx)
        choices: list[tuple[str, str]] = []
        if not field.required:
            choices.append((e.t(ctx, "choice.skip"), "skip"))
        if draft.trail:
            choices.append((e.t(ctx, "choice.back"), "back"))
        return choices

    def _documents_choices(self, ctx: Context, field: FormField) -> list[tuple[str, str]]:
        """A documents step's choices: "done" once a file came; on SMS, where no file can
        come, going on without the required files, handed in later through a staff member."""
        e = self.engine
        _, draft = self.form_of(ctx)
        choices: list[tuple[str, str]] = []
        if draft.answers.get(field.name, {}).get("value"):
            choices.append((e.t(ctx, "choice.done"), "done"))
        elif ctx.channel is Channel.SMS and field.required:
            choices.append((e.t(ctx, "choice.files_later"), "later"))
        return choices + self._skip_and_back(ctx, field)

    def _documents_again(self, ctx: Context, field: FormField, key: str) -> list[Reply]:
        """No file came: said, with the question again; on SMS, where each part is paid and
        the question is long, one short line and the choices instead."""
        e = self.engine
        if ctx.channel is Channel.SMS:
            return [e.reply(ctx, key, self._documents_choices(ctx, field))]
        return [e.reply(ctx, key), self.ask(ctx, field)]

    # -- answering --------------------------------------------------------------------------

    async def step(
        self, msg: Inbound, ctx: Context, port: EnginePort, word: str | None
    ) -> list[Reply]:
        e = self.engine
        form, draft = self.form_of(ctx)
        picked = e.picked(ctx, msg.text) if msg.text.strip() else None
        if draft.phase is Phase.INTRO:
            if picked == "yes" or word == "yes":
                draft.phase = Phase.FIELD
                return self._go_next(ctx, None)
            if picked == "cancel" or word in ("no", "back"):
                return e._cancel(ctx)
            return [e.reply(ctx, "error.choice"), self._intro(ctx, form)]
        field = form.field(draft.current or form.fields[0].name)
        kept: list[Reply] = []
        if msg.attachments and (
            draft.phase is not Phase.FIELD or field.type is not FieldType.ATTACHMENT
        ):
            # Files sent where the step wants words (with a caption, or an album running past
            # the documents step): kept with the form's documents, or said to be left out.
            kept = self._keep_for_later(msg, ctx)
            if draft.phase is not Phase.FIELD:
                draft.phase = Phase.SUMMARY  # what is declared has changed: shown again
                if not msg.text.strip():
                    return [*kept, self.summary(ctx)]
            elif not msg.text.strip():
                return [*kept, self.ask(ctx, field)]
        return [*kept, *await self._answer(msg, ctx, port, word, picked)]

    async def _answer(
        self, msg: Inbound, ctx: Context, port: EnginePort, word: str | None, picked: str | None
    ) -> list[Reply]:
        e = self.engine
        form, draft = self.form_of(ctx)
        if draft.phase is Phase.SUMMARY:
            return await self._summary_answer(ctx, port, picked or word)
        if draft.phase is Phase.PICK_CORRECTION:
            return self._correction_answer(ctx, picked, word)
        if draft.phase is Phase.DECLARATION:
            return await self._declaration_answer(msg, ctx, port, picked or word)
        field = form.field(draft.current or form.fields[0].name)
        if field.type is FieldType.INTEGER and to_latin_digits(msg.text).strip().isdigit():
            # "1" to "how many are in your family?" is the answer, not the first button
            # (back); the buttons' words still work.
            picked = None
        if picked == "back" or word == "back":
            return self._back(ctx)
        if (picked == "skip" or word == "skip") and not field.required:
            draft.answers[field.name] = {"value": None, "display": e.t(ctx, "form.skipped")}
            return self._advance(ctx, field)
        if field.type is FieldType.ATTACHMENT and picked == "later" and not msg.attachments:
            # No way to send files from here: the request goes on without them, and a staff
            # member arranges them once it is sent.
            later = e.t(ctx, "attachment.later")
            draft.answers[field.name] = {"value": None, "display": later, "later": True}
            return self._advance(ctx, field)
        if field.type is FieldType.ATTACHMENT:
            return self._attachment_step(msg, ctx, field, done=picked == "done" or word == "done")
        raw = msg.text
        if field.type is FieldType.MOBILE and msg.verified_phone and not raw.strip():
            raw = msg.verified_phone  # shared with the channel's "share my number" button
        result = parse_answer(field, raw, ctx, e)
        if isinstance(result, Rejected):
            return [self._rejection(ctx, field, result), self.ask(ctx, field)]
        draft.answers[field.name] = {"value": result.value, "display": result.display}
        return self._advance(ctx, field)

    def names_an_option(self, ctx: Context, text: str) -> bool:
        """Whether the question asked now is a choice one of whose options the text names."""
        draft = ctx.state.draft
        if ctx.state.mode is not Mode.FORM or draft is None or draft.phase is not Phase.FIELD:
            return False
        if draft.current is None or draft.form_id not in self.engine.forms:
            return False
        field = self.form_of(ctx)[0].field(draft.current)
        return field.type is FieldType.CHOICE and option_naming(field, text) is not None

    def _keep_for_later(self, msg: Inbound, ctx: Context) -> list[Reply]:
        """The message's files added to the form's documents where it has a documents step
        (each checked as that step checks it); what was kept, or left out, is said."""
        e = self.engine
        form, draft = self.form_of(ctx)
        later = next(
            (f for f in form.fields if f.type is FieldType.ATTACHMENT and f.applies(draft.answers)),
            None,
        )
        if later is None:
            return [e.reply(ctx, "attachment.not_expected")]
        answer = draft.answers.get(later.name) or {"value": [], "display": ""}
        files: list[dict[str, Any]] = list(answer.get("value") or [])
        replies: list[Reply] = []
        before = len(files)
        for att in msg.attachments:
            problem = self._check_attachment(later, att, len(files))
            if problem is not None:
                replies.append(e.reply(ctx, problem[0], **problem[1]))
                continue
            files.append(_file_answer(att))
        if len(files) > before:
            draft.answers[later.name] = self._files_answer(ctx, files)
            if draft.before is not None:
                # Kept whatever happens to the correction under way ("back" puts the answers
                # of before it back: these files with them).
                earlier = draft.before["answers"].get(later.name) or {}
                kept = [*(earlier.get("value") or []), *files[before:]]
                draft.before["answers"][later.name] = self._files_answer(ctx, kept)
            label = self.label(later, ctx.state.lang or "ar")
            replies.append(e.reply(ctx, "attachment.kept", field=label))
        return replies

    def _files_answer(self, ctx: Context, files: list[dict[str, Any]]) -> dict[str, Any]:
        """A documents step's answer: the files, and how many they are in words."""
        count = self.engine.catalog.counted(ctx.state.lang or "ar", "attachment.count", len(files))
        return {"value": files, "display": count}

    def _rejection(self, ctx: Context, field: FormField, result: Rejected) -> Reply:
        e = self.engine
        lang = ctx.state.lang or "ar"
        if field.error:
            return e.say(ctx, field.error.get(lang) or field.error["ar"])
        return e.reply(ctx, result.error, **result.params)

    def _attachment_step(
        self, msg: Inbound, ctx: Context, field: FormField, *, done: bool
    ) -> list[Reply]:
        e = self.engine
        _, draft = self.form_of(ctx)
        answer = draft.answers.setdefault(field.name, {"value": [], "display": ""})
        files: list[dict[str, Any]] = list(answer.get("value") or [])
        if done and not msg.attachments:
            if not files and field.required:
                return self._documents_again(ctx, field, "attachment.none_yet")
            if not files:  # "done" with nothing to send, where nothing is needed: skipped
                draft.answers[field.name] = {"value": None, "display": e.t(ctx, "form.skipped")}
            return self._advance(ctx, field)
        if not msg.attachments:
            return self._documents_again(ctx, field, "attachment.expected")
        replies: list[Reply] = []
        for att in msg.attachments:
            problem = self._check_attachment(field, att, len(files))
            if problem is not None:
                replies.append(e.reply(ctx, problem[0], **problem[1]))
                continue
            files.append(_file_answer(att))
        answer.update(self._files_answer(ctx, files))
        if len(files) >= field.max_files or (done and files):
            # The last file sent with "done" as its caption is kept, then the form goes on.
            return [*replies, *self._advance(ctx, field)]
        if files:
            replies.append(
                e.reply(
                    ctx,
                    "attachment.received",
                    [(e.t(ctx, "choice.done"), "done")],
                    n=len(files),
                    max=field.max_files,
                )
            )
        else:
            replies.append(self.ask(ctx, field))
        return replies

    @staticmethod
    def _check_attachment(
        field: FormField, att: Attachment, already: int
    ) -> tuple[str, dict[str, object]] | None:
        if att.content_type not in field.allowed_types:
            return "attachment.bad_type", {"types": file_kinds(field.allowed_types)}
        if att.size > field.max_size_bytes:
            return "attachment.too_big", {"max": f"{field.max_size_mb:g}"}
        if already >= field.max_files:
            return "attachment.too_many", {"max": field.max_files}
        return None

    def _advance(self, ctx: Context, field: FormField) -> list[Reply]:
        _, draft = self.form_of(ctx)
        if field.name not in draft.trail:
            draft.trail.append(field.name)
        if draft.correcting:
            draft.correcting = False
            self._drop_inapplicable(ctx)
            form, _ = self.form_of(ctx)
            missing = next(
                (
                    f
                    for f in form.fields
                    if f.applies(draft.answers) and f.name not in draft.answers
                ),
                None,
            )
            if missing is not None:
                draft.correcting = True
                draft.current = missing.name
                return [self.ask(ctx, missing)]
            draft.before = None
            draft.phase = Phase.SUMMARY
            return [self.summary(ctx)]
        return self._go_next(ctx, field.name)

    def _go_next(self, ctx: Context, after: str | None) -> list[Reply]:
        form, draft = self.form_of(ctx)
        nxt = form.next_field(after, draft.answers)
        if nxt is None:
            draft.phase = Phase.SUMMARY
            draft.current = None
            return [self.summary(ctx)]
        draft.phase = Phase.FIELD
        draft.current = nxt.name
        return [self.ask(ctx, nxt)]

    def _drop_inapplicable(self, ctx: Context) -> None:
        form, draft = self.form_of(ctx)
        for f in form.fields:
            if f.name in draft.answers and not f.applies(draft.answers):
                del draft.answers[f.name]
                if f.name in draft.trail:
                    draft.trail.remove(f.name)

    def _back(self, ctx: Context) -> list[Reply]:
        form, draft = self.form_of(ctx)
        if draft.correcting:
            # Back out of a correction: the answers as they were before it.
            draft.correcting = False
            if draft.before is not None:
                draft.answers = draft.before["answers"]
                draft.trail = draft.before["trail"]
                draft.before = None
            draft.phase = Phase.SUMMARY
            draft.current = None
            return [self.summary(ctx)]
        if not draft.trail:
            return [
                self.engine.reply(ctx, "form.at_start"),
                self.ask(ctx, form.field(draft.current or form.fields[0].name)),
            ]
        previous = draft.trail.pop()
        draft.phase = Phase.FIELD
        draft.current = previous
        return [self.ask(ctx, form.field(previous))]

    # -- summary, correction, declaration, submission ---------------------------------------------

    def summary(self, ctx: Context) -> Reply:
        e = self.engine
        form, draft = self.form_of(ctx)
        lang = ctx.state.lang or "ar"
        lines = []
        for index, f in enumerate(self._answered(form, draft), start=1):
            lines.append(f"{index}. {self.label(f, lang)}: {self.shown(ctx, f)}")
        text = e.t(ctx, "form.summary", form=form.title_in(lang), answers="\n".join(lines))
        draft.phase = Phase.SUMMARY
        return e.say(
            ctx,
            text,
            [
                (e.t(ctx, "choice.confirm"), "confirm"),
                (e.t(ctx, "choice.edit"), "edit"),
                (e.t(ctx, "choice.cancel"), "cancel"),
            ],
        )

    def shown(self, ctx: Context, field: FormField) -> str:
        """An answer as the summary shows it, in the conversation's language now (a choice
        made in Arabic reads in English after a switch) and, in Arabic, with numbers, dates
        and Latin text kept left to right."""
        e = self.engine
        _, draft = self.form_of(ctx)
        lang = ctx.state.lang or "ar"
        answer = draft.answers[field.name]
        value, display = answer.get("value"), str(answer.get("display", ""))
        if value is None:
            return e.t(ctx, "attachment.later" if answer.get("later") else "form.skipped")
        if field.type is FieldType.CHOICE:
            option = field.option(value)
            display = option.label(lang) if option is not None else display
        elif field.type is FieldType.YESNO and value in ("yes", "no"):
            display = e.t(ctx, f"choice.{value}")
        elif field.type is FieldType.DATE and isinstance(value, str):
            with contextlib.suppress(ValueError):
                return display_date(date.fromisoformat(value), lang, isolate=lang == "ar")
        elif field.type is FieldType.ATTACHMENT and isinstance(value, list):
            display = e.catalog.counted(lang, "attachment.count", len(value))
        if lang == "ar" and display and script_language(display) != "ar":
            return left_to_right(display)
        return display

    @staticmethod
    def _answered(form: Form, draft: Draft) -> list[FormField]:
        return [f for f in form.fields if f.name in draft.answers and f.applies(draft.answers)]

    @staticmethod
    def label(field: FormField, lang: str) -> str:
        if field.label:
            return field.label.get(lang) or field.label["ar"]
        prompt = field.text(lang).split("\n")[0]
        return prompt if len(prompt) <= 40 else prompt[:38] + "…"

    async def _summary_answer(
        self, ctx: Context, port: EnginePort, choice: str | None
    ) -> list[Reply]:
        e = self.engine
        form, draft = self.form_of(ctx)
        if choice in ("confirm", "yes"):
            if form.declaration:
                draft.phase = Phase.DECLARATION
                return [self._declaration(ctx)]
            return await self.submit(ctx, port, declared=False)
        if choice == "edit":
            draft.phase = Phase.PICK_CORRECTION
            return [self._pick_correction(ctx)]
        if choice == "cancel":
            return e._cancel(ctx)
        if choice == "back":
            return self._back(ctx)
        return [e.reply(ctx, "form.summary_hint"), self.summary(ctx)]

    def _pick_correction(self, ctx: Context) -> Reply:
        e = self.engine
        form, draft = self.form_of(ctx)
        lang = ctx.state.lang or "ar"
        choices = [(self.label(f, lang), f.name) for f in self._answered(form, draft)]
        choices.append((e.t(ctx, "choice.back"), "back"))
        return e.reply(ctx, "form.which_field", choices)

    def _correction_answer(self, ctx: Context, picked: str | None, word: str | None) -> list[Reply]:
        form, draft = self.form_of(ctx)
        if picked == "back" or word == "back":
            draft.phase = Phase.SUMMARY
            return [self.summary(ctx)]
        names = {f.name for f in form.fields}
        if picked not in names:
            return [self._pick_correction(ctx)]
        draft.phase = Phase.FIELD
        draft.current = picked
        draft.correcting = True
        draft.before = copy.deepcopy({"answers": draft.answers, "trail": draft.trail})
        if form.field(picked).type is FieldType.ATTACHMENT:
            draft.answers[picked] = {"value": [], "display": ""}
        return [self.ask(ctx, form.field(picked))]

    def _declaration(self, ctx: Context) -> Reply:
        e = self.engine
        form, _ = self.form_of(ctx)
        lang = ctx.state.lang or "ar"
        text = e.t(
            ctx,
            "form.declaration",
            declaration=form.declaration_text.get(lang) or form.declaration_text["ar"],
        )
        return e.say(
            ctx, text, [(e.t(ctx, "choice.declare"), "yes"), (e.t(ctx, "choice.no"), "no")]
        )

    async def _declaration_answer(
        self, msg: Inbound, ctx: Context, port: EnginePort, choice: str | None
    ) -> list[Reply]:
        e = self.engine
        _, draft = self.form_of(ctx)
        if choice not in ("yes", "no"):
            parsed = parse_yesno(msg.text)
            choice = parsed.value if isinstance(parsed, Parsed) else None
        if choice == "yes":
            return await self.submit(ctx, port, declared=True)
        if choice == "no":
            draft.phase = Phase.SUMMARY
            return [e.reply(ctx, "form.declaration_required"), self.summary(ctx)]
        return [e.reply(ctx, "form.declaration_explicit"), self._declaration(ctx)]

    async def submit(self, ctx: Context, port: EnginePort, *, declared: bool) -> list[Reply]:
        e = self.engine
        form, draft = self.form_of(ctx)
        lang = ctx.state.lang or "ar"
        due = e.due_date(ctx) if form.kind == "request" else None
        answers = {f.name: draft.answers[f.name] for f in self._answered(form, draft)}
        reference = await port.submit(
            Submission(
                beneficiary_id=ctx.beneficiary_id,
                conversation_id=ctx.conversation_id,
                form_id=form.id,
                kind=form.kind,
                reference_prefix=form.reference_prefix,
                answers=answers,
                lang=lang,
                channel=ctx.channel,
                declared_at=ctx.now if declared else None,
                submitted_at=ctx.now,
                due_at=due,
            )
        )
        ctx.state.draft = None
        ctx.state.mode = Mode.MENU
        if due is not None:
            reply = e.reply(
                ctx,
                "form.submitted_request",
                [(e.t(ctx, "choice.main_menu"), "menu")],
                reference=reference,
                form=form.title_in(lang),
                days=e.settings.response_days,
                due=e.dual_date(ctx, due),
            )
        else:
            reply = e.reply(
                ctx,
                "form.submitted_ticket",
                [(e.t(ctx, "choice.main_menu"), "menu")],
                reference=reference,
                form=form.title_in(lang),
            )
        if form.hands_over(answers) or any(a.get("later") for a in answers.values()):
            # Documents to hand in later: a person arranges them with the applicant.
            return [reply, *await e.handoff(ctx, port, HandoffReason.FORM)]
        return [reply]


def _file_answer(att: Attachment) -> dict[str, Any]:
    return {
        "ref": att.ref,
        "content_type": att.content_type,
        "size": att.size,
        "filename": att.filename,
    }
