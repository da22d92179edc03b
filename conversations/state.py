"""A conversation's state between messages: plain data, saved as JSON after every step."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, is_dataclass
from enum import StrEnum
from typing import Any


class Mode(StrEnum):
    NEW = "new"
    MENU = "menu"
    FAQ = "faq"
    FORM = "form"
    RESUME = "resume"
    STATUS_LIST = "status_list"
    STATUS_REF = "status_ref"
    STATUS_VERIFY = "status_verify"
    SURVEY_RATING = "survey_rating"
    SURVEY_COMMENT = "survey_comment"


class Phase(StrEnum):
    INTRO = "intro"
    FIELD = "field"
    SUMMARY = "summary"
    PICK_CORRECTION = "pick_correction"
    DECLARATION = "declaration"


@dataclass
class Draft:
    """A form being filled in. Answers are kept as given, so it survives restarts."""

    form_id: str
    phase: Phase = Phase.INTRO
    current: str | None = None
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    trail: list[str] = field(default_factory=list)
    correcting: bool = False
    started_at: str = ""
    # The answers as they were when a correction began: "back" during it puts them back,
    # so leaving a correction half-way never leaves a required answer (or the files) out.
    before: dict[str, Any] | None = None  # {"answers": ..., "trail": ...}


@dataclass
class Survey:
    request_reference: str | None
    rating: int | None = None


@dataclass
class State:
    lang: str | None = None
    mode: Mode = Mode.NEW
    draft: Draft | None = None
    # What the last reply offered, so "2" or a label picks it: [label, value] pairs.
    choices: list[list[str]] = field(default_factory=list)
    misunderstood: int = 0
    status_reference: str | None = None
    status_failures: int = 0
    survey: Survey | None = None
    # A request closed while the person was answering a question of ours: its rating is
    # asked once that is over.
    survey_due: str | None = None
    last_seen: str | None = None
    # The question the closest-questions choice was offered for (stored as unanswered if
    # none of them fits).
    last_question: str | None = None
    # Staff asked for more information on this request: what comes next is attached to it.
    info_request: str | None = None
    # When the latest information on it came (or "send more" was chosen), and whether more
    # was announced: later messages are added only shortly after, or after "send more".
    info_received: str | None = None
    info_more: bool = False
    # While waiting in the queue: when the bot last spoke to the person, and the opening time
    # it last gave them (out of hours), so neither is said again on every message.
    queue_said: str | None = None
    hours_told: str | None = None
    # Each reply with choices is an offer, numbered: channels with buttons send the number
    # back with a press, so a button of an earlier question does not answer the current one.
    # ``offers`` are those of the latest reply to the person (none if it offered nothing);
    # the same question asked again keeps its number (``offer_key`` says which question).
    offer: int = 0
    offers: list[int] = field(default_factory=list)
    offer_key: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The state as plain data, sharing nothing that can change with the state itself."""
        saved: dict[str, Any] = _plain(self)
        return saved

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> State:
        if not data:
            return cls()
        draft = data.get("draft")
        survey = data.get("survey")
        return cls(
            lang=data.get("lang"),
            mode=Mode(data.get("mode", Mode.NEW)),
            draft=Draft(
                form_id=draft["form_id"],
                phase=Phase(draft.get("phase", Phase.INTRO)),
                current=draft.get("current"),
                answers=dict(draft.get("answers", {})),
                trail=list(draft.get("trail", [])),
                correcting=bool(draft.get("correcting", False)),
                started_at=str(draft.get("started_at", "")),
                before=dict(draft["before"]) if draft.get("before") is not None else None,
            )
            if draft
            else None,
            choices=[list(c) for c in data.get("choices", [])],
            misunderstood=int(data.get("misunderstood", 0)),
            status_reference=data.get("status_reference"),
            status_failures=int(data.get("status_failures", 0)),
            survey=Survey(survey.get("request_reference"), survey.get("rating"))
            if survey
            else None,
            survey_due=data.get("survey_due"),
            last_seen=data.get("last_seen"),
            last_question=data.get("last_question"),
            info_request=data.get("info_request"),
            info_received=data.get("info_received"),
            info_more=bool(data.get("info_more", False)),
            queue_said=data.get("queue_said"),
            hours_told=data.get("hours_told"),
            offer=int(data.get("offer", 0)),
            offers=[int(n) for n in data.get("offers", [])],
            offer_key=[str(k) for k in data.get("offer_key", [])],
        )


_SCALARS = frozenset({str, int, float, bool, type(None)})


_FIELDS: dict[type, tuple[str, ...] | None] = {}


def _field_names(kind: type) -> tuple[str, ...] | None:
    if kind not in _FIELDS:
        _FIELDS[kind] = tuple(f.name for f in fields(kind)) if is_dataclass(kind) else None
    return _FIELDS[kind]


def _plain(value: Any) -> Any:
    """``dataclasses.asdict`` for the state's kind of data (dataclasses, lists, dicts and
    scalars), several times as fast: it runs after every step, and ``asdict`` deep-copies
    each string and number one by one."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is dict:
        return {k: _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return kind(_plain(v) for v in value)
    names = _field_names(kind)
    if names is not None:
        return {name: _plain(getattr(value, name)) for name in names}
    if isinstance(value, str):  # the state's enums: immutable, as asdict keeps them
        return value
    return copy.deepcopy(value)
