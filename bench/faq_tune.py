"""Fit the FAQ matcher's calibrated decision on the development cases, cross-validated.

    python bench/faq_tune.py [CASES] [--max-wrong 0.015] [--folds 5] [--repeats 3] [--write]

For every development question it computes the decision's features (see
conversations/faq_index.FEATURES) and whether the best entry is the right one. The decision is
a small logistic model over those features (numpy, L2-regularised) and an answer threshold:
the highest accuracy whose share of wrong answers stays at most --max-wrong.

Before the decision, the ten best entries of the ranking are ordered again by a reranker: a
conditional logit (a softmax over the candidates) over what each of them has for the
question (conversations/faq_index.CANDIDATE_FEATURES), fitted on the cases in scope whose
right entry is among the ten. Its score for the entry it puts first, and that less its
second's, are two of the decision's features; those the decision is fitted on come from
rerankers fitted without the case (five folds, split apart from the decision's own), as they
would for a new question.

The figures it prints are cross-validated twice over: the cases are split into --folds folds,
and each fold is scored by a model and a threshold chosen on the other folds only (the
threshold from cross-validated probabilities within those folds), so no case ever has a say in
the decision that scores it. This is repeated with --repeats different splits and averaged.
With --write the model and threshold are fitted the same way on all the cases and stored in
conversations/data/faq_calibration.toml.

The shipped knowledge base stores the development cases themselves (those in scope as ways of
asking their entry, the others as out-of-scope examples), so the features are cross-fitted:
the cases are split into --folds folds, and each fold's questions are scored by an index built
without the texts of that fold. No question is ever scored by an index that holds it. For a
knowledge base that holds none of the cases this is the same as one index for all of them.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bot.faq_eval import Case, cross_fitted, read_cases
from bot.knowledge import E5Embedder, read_faq, read_out_of_scope
from conversations.faq import FaqEntry
from conversations.faq_index import (
    CANDIDATE_FEATURES,
    FEATURES,
    Calibration,
    Embedder,
    Logistic,
    Reranker,
    rerank_features,
)

ROOT = Path(__file__).resolve().parent.parent
Array = NDArray[np.float64]
Bools = NDArray[np.bool_]
Model = tuple[Array, Array, Array]
Decision = tuple[Model, Model]  # P(in scope), P(best entry right | in scope)


@dataclass
class Found:
    """What the matcher finds for each case: the candidates' features (cases x candidates x
    CANDIDATE_FEATURES), which candidate is the expected entry, and the decision's features
    but the reranker's two."""

    rows: Array
    labels: Bools
    base: Array

    def take(self, which: Bools | NDArray[np.intp]) -> Found:
        return Found(self.rows[which], self.labels[which], self.base[which])


def newton(size: int, derivatives: Callable[[Array], tuple[Array, Array]]) -> Array:
    """The weights that minimise a convex loss, by Newton's method from zero;
    ``derivatives(w)`` gives the loss's gradient and Hessian there."""
    w = np.zeros(size)
    for _ in range(50):
        grad, hess = derivatives(w)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def fit(x: Array, y: Array, l2: float = 1.0) -> Model:
    """Logistic regression on standardised features (L2-penalised, but the intercept)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.c_[np.ones(len(x)), (x - mean) / scale]
    penalty = l2 * np.r_[0.0, np.ones(z.shape[1] - 1)]

    def derivatives(w: Array) -> tuple[Array, Array]:
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
        return z.T @ (p - y) + penalty * w, (z.T * (p * (1 - p))) @ z + np.diag(penalty)

    return newton(z.shape[1], derivatives), mean, scale


def predict(model: Model, x: Array) -> Array:
    w, mean, scale = model
    z = np.c_[np.ones(len(x)), (x - mean) / scale]
    return 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))


def fit_decision(x: Array, right: Bools, outside: Bools) -> Decision:
    """P(in scope), fitted on all the cases, and P(best entry right), on those in scope."""
    inside = ~outside
    return fit(x, inside.astype(np.float64)), fit(x[inside], right[inside].astype(np.float64))


def probability(decision: Decision, x: Array) -> Array:
    return predict(decision[0], x) * predict(decision[1], x)


def outcome(answered: Bools, right: Bools, outside: Bools) -> tuple[float, float]:
    accuracy = float(np.mean(np.where(answered, right, outside)))
    wrong = float(np.mean(answered & ~right))
    return accuracy, wrong


THRESHOLDS = np.round(np.arange(0.30, 0.995, 0.005), 3)


def choose_decision(
    x: Array, right: Bools, outside: Bools, max_wrong: float, seed: int, folds: int
) -> tuple[Decision, float]:
    """The decision fitted on these cases, and the threshold chosen on their cross-validated
    probabilities: the highest accuracy with wrong answers at most max_wrong."""
    split = np.random.default_rng(seed).permutation(len(x)) % folds
    held = np.zeros(len(x))
    for k in range(folds):
        train = split != k
        held[~train] = probability(fit_decision(x[train], right[train], outside[train]), x[~train])
    best: tuple[float, float] | None = None
    for t in THRESHOLDS:
        accuracy, wrong = outcome(held >= t, right, outside)
        if wrong <= max_wrong and (best is None or accuracy > best[0]):
            best = (accuracy, float(t))
    threshold = best[1] if best else float(THRESHOLDS[-1])
    return fit_decision(x, right, outside), threshold


def fit_reranker(rows: Array, labels: Bools, l2: float = 1.0) -> Reranker:
    """The conditional logit by Newton's method on standardised features, fitted on the cases
    whose right entry is among the candidates."""
    flat = rows.reshape(-1, rows.shape[2])
    mean, scale = flat.mean(axis=0), flat.std(axis=0) + 1e-6
    has = labels.any(axis=1)
    z, y = (rows[has] - mean) / scale, labels[has].astype(np.float64)
    size = z.shape[2]

    def derivatives(w: Array) -> tuple[Array, Array]:
        p = softmax(z @ w)
        expected = np.einsum("nk,nkf->nf", p, z)
        grad = (expected - np.einsum("nk,nkf->nf", y, z)).sum(axis=0) + l2 * w
        hess = np.einsum("nk,nkf,nkg->fg", p, z, z) - expected.T @ expected
        return grad, hess + l2 * np.eye(size)

    coef = newton(size, derivatives)
    return Reranker(tuple(mean.tolist()), tuple(scale.tolist()), tuple(coef.tolist()))


def softmax(scores: Array) -> Array:
    """Each row's scores as probabilities over the row's candidates."""
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    probabilities: Array = weights / weights.sum(axis=1, keepdims=True)
    return probabilities


def decision_inputs(scores: Array, found: Found) -> tuple[Array, Bools]:
    """The decision's features (as ``Candidates.reranked`` makes them) and whether the entry
    the reranker puts first is the right one."""
    first = scores.argmax(axis=1)
    right = found.labels[np.arange(len(first)), first]
    return np.c_[found.base, rerank_features(scores)], right


def out_of_fold(found: Found, folds: int, seed: int) -> Array:
    """Each case's reranker scores from a reranker fitted without its fold."""
    split = np.random.default_rng(seed).permutation(len(found.rows)) % folds
    scores = np.zeros(found.labels.shape)
    for k in range(folds):
        train = split != k
        reranker = fit_reranker(found.rows[train], found.labels[train])
        scores[~train] = reranker.scores(found.rows[~train])
    return scores


def choose(
    found: Found, outside: Bools, max_wrong: float, seed: int, folds: int
) -> tuple[Reranker, Decision, float]:
    """The reranker and the decision fitted on these cases, the decision on the reranker's
    out-of-fold scores (folds of their own, not the decision's), and its threshold."""
    x, right = decision_inputs(out_of_fold(found, folds, seed + 1), found)
    decision, threshold = choose_decision(x, right, outside, max_wrong, seed, folds)
    return fit_reranker(found.rows, found.labels), decision, threshold


def cross_validated(
    found: Found, outside: Bools, max_wrong: float, folds: int, repeats: int
) -> tuple[float, float, int]:
    """Accuracy and wrong answers, each fold scored by a reranker and a decision chosen
    without it; and for how many cases in scope the reranked first entry was right (the last
    split)."""
    figures = []
    right = np.zeros(len(outside), dtype=bool)
    for seed in range(repeats):
        split = np.random.default_rng(seed).permutation(len(outside)) % folds
        answered = np.zeros(len(outside), dtype=bool)
        right = np.zeros(len(outside), dtype=bool)
        for k in range(folds):
            train, test = split != k, split == k
            reranker, decision, threshold = choose(
                found.take(train), outside[train], max_wrong, 100 + seed, folds
            )
            part = found.take(test)
            x, right[test] = decision_inputs(reranker.scores(part.rows), part)
            answered[test] = probability(decision, x) >= threshold
        figures.append(outcome(answered, right, outside))
    accuracy, wrong = np.mean(figures, axis=0)
    return float(accuracy), float(wrong), int((right & ~outside).sum())


def cross_fitted_candidates(
    entries: Sequence[FaqEntry],
    outside: Sequence[str],
    embedder: Embedder,
    cases: Sequence[Case],
    folds: int,
) -> Found:
    """What the matcher finds for each case, from an index built without its fold's texts."""
    # The candidates do not depend on the calibration: a neutral one, so that the tuner also
    # runs when the features have changed and the stored calibration no longer fits.
    neutral = Calibration(Logistic.constant(0.0), threshold=0.5)
    rows: list[Array] = [np.zeros(0)] * len(cases)
    labels: list[Bools] = [np.zeros(0, dtype=bool)] * len(cases)
    base = np.zeros((len(cases), len(FEATURES) - 2))
    for index, fold in cross_fitted(
        entries, outside, embedder, cases, calibration=neutral, folds=folds
    ):
        for i in fold:
            found = index.candidates(cases[i].text)
            assert found is not None
            rows[i], base[i] = found.rows, found.base
            labels[i] = np.array([s.entry.id == cases[i].expect for s in found.scored])
    return Found(np.stack(rows), np.stack(labels), base)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="?", default=str(ROOT / "tests/data/faq_dev.jsonl"))
    parser.add_argument("--max-wrong", type=float, default=0.015)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    cases = read_cases(Path(args.cases))
    embedder = E5Embedder(Path(tempfile.gettempdir()) / "tawasul-test-embeddings")
    found = cross_fitted_candidates(
        read_faq(None), read_out_of_scope(None), embedder, cases, args.folds
    )
    embedder.save()
    outside = np.array([c.expect is None for c in cases])
    accuracy, wrong, reranked = cross_validated(
        found, outside, args.max_wrong, args.folds, args.repeats
    )
    print(
        f"{len(cases)} development cases ({int(outside.sum())} out of scope); best entry right "
        f"for {int(found.labels[:, 0].sum())} of {int((~outside).sum())} in scope, "
        f"{reranked} once reranked (cross-validated). {args.folds}-fold cross-validated over "
        f"{args.repeats} splits: accuracy {accuracy:.3f}, wrong answers {wrong:.3f}"
    )
    reranker, (scope, right_model), threshold = choose(
        found, outside, args.max_wrong, 100, args.folds
    )
    print(f"fitted on all the cases: answer at probability {threshold:.3f}")
    print(f"  {'feature':<16} {'in scope':>9} {'right':>9}")
    for name, a, b in zip(FEATURES, scope[0][1:], right_model[0][1:], strict=True):
        print(f"  {name:<16} {a:+9.3f} {b:+9.3f}")
    print(f"  {'candidate':<16} {'rerank':>9}")
    for name, c in zip(CANDIDATE_FEATURES, reranker.coef, strict=True):
        print(f"  {name:<16} {c:+9.3f}")
    if args.write:
        path = ROOT / "conversations/data/faq_calibration.toml"
        fmt = ", ".join

        def numbers(values: Sequence[float] | Array) -> str:
            return f"[{fmt(f'{v:.6g}' for v in values)}]"

        def names(values: Sequence[str]) -> str:
            return f"[{fmt(repr(n).replace(chr(39), chr(34)) for n in values)}]"

        def model(m: Model) -> str:
            w, mean, scale = m
            return (
                f"intercept = {w[0]:.6g}\n"
                f"mean = {numbers(mean)}\n"
                f"scale = {numbers(scale)}\n"
                f"coef = {numbers(w[1:])}\n"
            )

        path.write_text(
            "# The FAQ matcher's calibrated decision, fitted by bench/faq_tune.py on\n"
            f"# tests/data/faq_dev.jsonl ({len(cases)} cases, --max-wrong {args.max_wrong}; "
            f"{args.folds}-fold cross-validated\n# accuracy {accuracy:.3f}, "
            f"wrong answers {wrong:.3f}).\n"
            "# P(answer right) = P(in scope) x P(best entry right | in scope); the first model\n"
            "# is [in_scope], the second the top-level intercept, mean, scale and coef.\n"
            "# [rerank] orders the best entries again by coef . (x - mean) / scale (fitted as a\n"
            "# softmax over them).\n"
            f"features = {names(FEATURES)}\n"
            f"threshold = {threshold:.3f}\n"
            + model(right_model)
            + "\n[in_scope]\n"
            + model(scope)
            + f"\n[rerank]\nfeatures = {names(CANDIDATE_FEATURES)}\n"
            f"mean = {numbers(reranker.mean)}\nscale = {numbers(reranker.scale)}\n"
            f"coef = {numbers(reranker.coef)}\n",
            "utf-8",
        )
        print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
