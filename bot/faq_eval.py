"""Measuring the FAQ matcher on labelled questions: accuracy, wrong answers, latency."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conversations.faq_index import Decision, FaqIndex, Outcome


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


def evaluate(index: FaqIndex, cases: Iterable[Case]) -> Report:
    known = {e.id for e in index.entries}
    report = Report()
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
