"""Forms as data: a TOML file declares fields, rules and bilingual prompts."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

DEFAULT_TYPES = ("image/jpeg", "image/png", "application/pdf")


class FieldType(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    CHOICE = "choice"
    YESNO = "yesno"
    DATE = "date"
    NATIONAL_ID = "national_id"
    MOBILE = "mobile"
    EMAIL = "email"
    ATTACHMENT = "attachment"


class FormError(ValueError):
    """A form file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class Option:
    value: str
    labels: Mapping[str, str]

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or self.labels.get("ar") or self.value


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    equals: str | None = None
    any_of: tuple[str, ...] = ()

    def holds(self, answers: Mapping[str, Mapping[str, object]]) -> bool:
        answer = answers.get(self.field)
        if answer is None:
            return False
        value = answer.get("value")
        if self.equals is not None:
            return value == self.equals
        return value in self.any_of


@dataclass(frozen=True, slots=True)
class FormField:
    name: str
    type: FieldType
    prompt: Mapping[str, str]
    required: bool = True
    options: tuple[Option, ...] = ()
    min_length: int = 0
    max_length: int = 2000
    minimum: int | None = None
    maximum: int | None = None
    calendar: str = "any"
    allow_future: bool = True
    allow_past: bool = True
    allowed_types: tuple[str, ...] = DEFAULT_TYPES
    max_size_mb: float = 10.0
    max_files: int = 5
    error: Mapping[str, str] | None = None
    when: Condition | None = None
    label: Mapping[str, str] | None = None

    def text(self, lang: str) -> str:
        return self.prompt.get(lang) or self.prompt["ar"]

    def applies(self, answers: Mapping[str, Mapping[str, object]]) -> bool:
        return self.when is None or self.when.holds(answers)

    def option(self, value: object) -> Option | None:
        """The choice stored as ``value``, if it is one of this field's."""
        return next((o for o in self.options if o.value == value), None)

    @property
    def max_size_bytes(self) -> int:
        return int(self.max_size_mb * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class Form:
    id: str
    title: Mapping[str, str]
    kind: str
    reference_prefix: str
    fields: tuple[FormField, ...]
    declaration: bool = False
    intro: Mapping[str, str] = field(default_factory=dict)
    declaration_text: Mapping[str, str] = field(default_factory=dict)
    # Queue the conversation for staff once the form is submitted (e.g. complaints), when
    # ``handoff_when`` holds if it is given (the person asked to be contacted).
    handoff: bool = False
    handoff_when: Condition | None = None

    def hands_over(self, answers: Mapping[str, Mapping[str, object]]) -> bool:
        return self.handoff and (self.handoff_when is None or self.handoff_when.holds(answers))

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title["ar"]

    def field(self, name: str) -> FormField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def next_field(
        self, after: str | None, answers: Mapping[str, Mapping[str, object]]
    ) -> FormField | None:
        """The first applicable field after ``after`` (or the first one)."""
        names = [f.name for f in self.fields]
        start = 0 if after is None else names.index(after) + 1
        for f in self.fields[start:]:
            if f.applies(answers):
                return f
        return None


def _bilingual(data: Mapping[str, Any], key: str, where: str, *, required: bool) -> dict[str, str]:
    value = data.get(key)
    if value is None:
        if required:
            raise FormError(f"{where}: missing {key}.ar")
        return {}
    if isinstance(value, str):
        return {"ar": value}
    if not isinstance(value, Mapping) or not isinstance(value.get("ar"), str):
        raise FormError(f"{where}: {key}.ar must be text")
    return {k: str(v) for k, v in value.items()}


def _field(data: Mapping[str, Any], where: str, earlier: Sequence[str]) -> FormField:
    name = data.get("name")
    if not isinstance(name, str) or not name.isidentifier():
        raise FormError(f"{where}: name must be a snake_case identifier")
    where = f"{where} ({name})"
    try:
        kind = FieldType(data.get("type", ""))
    except ValueError:
        allowed = ", ".join(t.value for t in FieldType)
        raise FormError(f"{where}: type must be one of {allowed}") from None
    options: tuple[Option, ...] = ()
    if kind is FieldType.CHOICE:
        raw = data.get("options")
        if not isinstance(raw, list) or not raw:
            raise FormError(f"{where}: a choice field needs options")
        options = tuple(
            Option(str(o["value"]), _bilingual(o, "label", f"{where} option", required=True))
            for o in raw
        )
    when = _condition(data["when"], earlier, f"{where}: when") if "when" in data else None
    calendar = str(data.get("calendar", "any"))
    if calendar not in ("any", "hijri", "gregorian"):
        raise FormError(f"{where}: calendar must be any, hijri or gregorian")
    error = _bilingual(data, "error", where, required=False) or None
    return FormField(
        name=name,
        type=kind,
        prompt=_bilingual(data, "prompt", where, required=True),
        required=bool(data.get("required", True)),
        options=options,
        min_length=int(data.get("min_length", 0)),
        max_length=int(data.get("max_length", 2000)),
        minimum=int(data["min"]) if "min" in data else None,
        maximum=int(data["max"]) if "max" in data else None,
        calendar=calendar,
        allow_future=bool(data.get("allow_future", True)),
        allow_past=bool(data.get("allow_past", True)),
        allowed_types=tuple(data.get("allowed_types", DEFAULT_TYPES)),
        max_size_mb=float(data.get("max_size_mb", 10.0)),
        max_files=int(data.get("max_files", 5)),
        error=error,
        when=when,
        label=_bilingual(data, "label", where, required=False) or None,
    )


def _condition(cond: object, names: Sequence[str], where: str) -> Condition:
    """``{ field = "...", equals = "..." }`` or ``{ field = "...", in = [...] }``."""
    if not isinstance(cond, Mapping) or cond.get("field") not in names:
        raise FormError(f"{where}.field must name an earlier field")
    if "equals" in cond:
        return Condition(str(cond["field"]), equals=str(cond["equals"]))
    if "in" in cond:
        return Condition(str(cond["field"]), any_of=tuple(str(v) for v in cond["in"]))
    raise FormError(f"{where} needs equals or in")


def parse_form(text: str, source: str) -> Form:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormError(f"{source}: {exc}") from None
    head = data.get("form")
    if not isinstance(head, Mapping) or not isinstance(head.get("id"), str):
        raise FormError(f"{source}: a [form] table with an id is required")
    raw_fields = data.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise FormError(f"{source}: at least one [[fields]] entry is required")
    fields: list[FormField] = []
    for index, raw in enumerate(raw_fields, start=1):
        fields.append(_field(raw, f"{source}: field {index}", [f.name for f in fields]))
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise FormError(f"{source}: field names must be unique")
    kind = str(head.get("kind", "ticket"))
    if kind not in ("request", "ticket"):
        raise FormError(f"{source}: form.kind must be request or ticket")
    reference_prefix = str(head.get("reference_prefix", "RQ"))
    if not re.fullmatch(r"[A-Z]{2,8}", reference_prefix):
        # As beneficiaries type it back (conversations.references): SR-1448-00012.
        raise FormError(f"{source}: form.reference_prefix must be 2 to 8 capital Latin letters")
    declaration = bool(head.get("declaration", False))
    declaration_text = _bilingual(head, "declaration_text", source, required=declaration)
    return Form(
        id=head["id"],
        title=_bilingual(head, "title", source, required=True),
        kind=kind,
        reference_prefix=reference_prefix,
        fields=tuple(fields),
        declaration=declaration,
        intro=_bilingual(head, "intro", source, required=False),
        declaration_text=declaration_text,
        handoff=bool(head.get("handoff", False)),
        handoff_when=_condition(head["handoff_when"], names, f"{source}: form.handoff_when")
        if "handoff_when" in head
        else None,
    )


BUILTIN_FORMS = ("support_request", "volunteer", "complaint", "update_data", "data_request")


def load_forms(override_dir: Path | None = None) -> dict[str, Form]:
    """The built-in forms, each replaced by a file of the same name in ``override_dir``."""
    base = resources.files("conversations") / "data" / "forms"
    forms: dict[str, Form] = {}
    for name in BUILTIN_FORMS:
        forms[name] = parse_form((base / f"{name}.toml").read_text("utf-8"), f"{name}.toml")
    if override_dir is not None:
        for path in sorted(override_dir.glob("*.toml")):
            form = parse_form(path.read_text("utf-8"), str(path))
            forms[form.id] = form
    return forms
