"""Measuring the FAQ matcher on labelled questions: accuracy, wrong answers, latency."""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conversations.faq import FaqEntry
from conversations.faq_index import (
    Calibration,
    Decision,
    Embedder,
    FaqIndex,
    Outcome,
    exact_form,
)

# Cases whose texts the knowledge base stores are scored in this many folds (below).
FOLDS = 5


class CasesError(ValueError):
    pass


@dataclass(frozen=True)
class Case:
    text: str
    expect: str | None
    line: int


@dataclass
class Report:
    cases: int = 0
    correct: int = 0
    wrong_answers: int = 0
    unanswered_in_scope: int = 0
    answered_out_of_scope: int = 0
    suggested: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        n = max(self.cases, 1)
        ordered = sorted(self.latencies_ms) or [0.0]
        return {
            "cases": self.cases,
            "accuracy": round(self.correct / n, 4),
            "wrong_answers": round(self.wrong_answers / n, 4),
            "unanswered_in_scope": self.unanswered_in_scope,
            "answered_out_of_scope": self.answered_out_of_scope,
            "suggested": self.suggested,
            "p50_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        }


def read_cases(path: Path) -> list[Case]:
    cases = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            text, expect = data["text"], data["expect"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CasesError(
                f'{path}, line {number}: expected {{"text", "expect"}}: {exc}'
            ) from None
        if not isinstance(text, str) or not (expect is None or isinstance(expect, str)):
            raise CasesError(f"{path}, line {number}: text must be text, expect text or null")
        cases.append(Case(text, expect, number))
    return cases


def evaluate(index: FaqIndex, cases: Iterable[Case], report: Report | None = None) -> Report:
    """How the index decides the cases, counted in ``report`` (a new one by default)."""
    known = {e.id for e in index.entries}
    report = report if report is not None else Report()
    for case in cases:
        if case.expect is not None and case.expect not in known:
            raise CasesError(f"line {case.line}: no knowledge-base entry {case.expect!r}")
        started = time.perf_counter()
        decision = index.decide(case.text)
        report.latencies_ms.append((time.perf_counter() - started) * 1000)
        report.cases += 1
        answered = decision.entry.id if decision.entry is not None else None
        if decision.outcome is Outcome.SUGGEST:
            report.suggested += 1
        if answered == case.expect:
            report.correct += 1
            continue
        if answered is not None:
            report.wrong_answers += 1
            if case.expect is None:
                report.answered_out_of_scope += 1
        else:
            report.unanswered_in_scope += 1
        report.failures.append(describe(case, decision))
    return report


def stored(entries: Sequence[FaqEntry], outside: Sequence[str], cases: Iterable[Case]) -> int:
    """How many of the cases the knowledge base would answer by an exact match: stored as
    they are written (normalised, greetings aside), as ways of asking or as out-of-scope
    examples."""
    forms = {exact_form(q) for e in entries for qs in e.questions.values() for q in qs}
    forms.update(exact_form(q) for q in outside)
    forms.discard("")
    return sum(exact_form(case.text) in forms for case in cases)


def without(
    entries: Sequence[FaqEntry], outside: Sequence[str], texts: Iterable[str]
) -> tuple[tuple[FaqEntry, ...], tuple[str, ...]]:
    """The knowledge base with nothing written as one of ``texts`` (as the exact match
    compares them) among its questions or examples."""
    forms = {exact_form(t) for t in texts} - {""}
    kept = tuple(
        dataclasses.replace(
            entry,
            questions={
                lang: tuple(q for q in questions if exact_form(q) not in forms)
                for lang, questions in entry.questions.items()
            },
        )
        for entry in entries
    )
    return kept, tuple(q for q in outside if exact_form(q) not in forms)


def cross_fitted(
    entries: Sequence[FaqEntry],
    outside: Sequence[str],
    embedder: Embedder | None,
    cases: Sequence[Case],
    *,
    calibration: Calibration | None = None,
    folds: int = FOLDS,
    seed: int = 7,
) -> Iterator[tuple[FaqIndex, list[int]]]:
    """For cases the knowledge base stores (taught, or the shipped development cases): the
    cases split into ``folds``, each fold with an index built without the fold's own texts,
    so that no case is scored by an index that holds it. Yields each index with the
    positions of its fold's cases."""
    order = list(range(len(cases)))
    random.Random(seed).shuffle(order)
    for k in range(folds):
        fold = sorted(order[k::folds])
        if not fold:
            continue
        kept, kept_outside = without(entries, outside, [cases[i].text for i in fold])
        index = FaqIndex(kept, embedder, calibration=calibration, out_of_scope=kept_outside)
        yield index, fold


def evaluate_folds(folds: Iterable[tuple[FaqIndex, list[int]]], cases: Sequence[Case]) -> Report:
    """``evaluate`` over folds of the cases, each scored by its own index (``cross_fitted``)."""
    report = Report()
    for index, fold in folds:
        evaluate(index, [cases[i] for i in fold], report)
    report.failures.sort(key=lambda failure: int(failure["line"]))
    return report


def measure(
    entries: Sequence[FaqEntry],
    outside: Sequence[str],
    embedder: Embedder | None,
    cases: Sequence[Case],
) -> tuple[Report, int]:
    """How the knowledge base does on the cases, and how many of them it stores: with any
    stored, every case is scored cross-fitted (``cross_fitted``), since an index holding one
    would answer it at once; otherwise by one index."""
    known = stored(entries, outside, cases)
    if known:
        return evaluate_folds(cross_fitted(entries, outside, embedder, cases), cases), known
    return evaluate(FaqIndex(entries, embedder, out_of_scope=outside), cases), 0


def describe(case: Case, decision: Decision) -> dict[str, Any]:
    return {
        "line": case.line,
        "text": case.text,
        "expect": case.expect,
        "outcome": decision.outcome.value,
        "answer": decision.entry.id if decision.entry else None,
        "confidence": round(decision.confidence, 3),
        "top": [(s.entry.id, round(s.score, 3)) for s in decision.ranked[:3]],
    }
