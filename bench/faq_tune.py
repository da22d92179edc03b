"""Fit the FAQ matcher's calibrated decision on the development cases, cross-validated.

    python bench/faq_tune.py [CASES] [--max-wrong 0.015] [--folds 5] [--repeats 3] [--write]

For every development question it computes the decision's features (see
conversations/faq_index.FEATURES) and whether the best entry is the right one. The decision is
a small logistic model over those features (numpy, L2-regularised) and an answer threshold:
the highest accuracy whose share of wrong answers stays at most --max-wrong.

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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bot.faq_eval import Case, cross_fitted, read_cases
from bot.knowledge import E5Embedder, read_faq, read_out_of_scope
from conversations.faq import FaqEntry
from conversations.faq_index import FEATURES, Calibration, Embedder, FaqIndex, Logistic

ROOT = Path(__file__).resolve().parent.parent
Array = NDArray[np.float64]
Bools = NDArray[np.bool_]
Model = tuple[Array, Array, Array]
Decision = tuple[Model, Model]  # P(in scope), P(best entry right | in scope)


def fit(x: Array, y: Array, l2: float = 1.0) -> Model:
    """Logistic regression by Newton's method on standardised features."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.c_[np.ones(len(x)), (x - mean) / scale]
    w = np.zeros(z.shape[1])
    penalty = l2 * np.r_[0.0, np.ones(z.shape[1] - 1)]
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ w, -30, 30)))
        grad = z.T @ (p - y) + penalty * w
        hess = (z.T * (p * (1 - p))) @ z + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w, mean, scale


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


def choose(
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


def cross_validated(
    x: Array, right: Bools, outside: Bools, max_wrong: float, folds: int, repeats: int
) -> tuple[float, float, Bools]:
    """Accuracy and wrong answers, each fold scored by a decision chosen without it; and
    which cases the last split answered."""
    figures = []
    answered = np.zeros(len(x), dtype=bool)
    for seed in range(repeats):
        split = np.random.default_rng(seed).permutation(len(x)) % folds
        answered = np.zeros(len(x), dtype=bool)
        for k in range(folds):
            train, test = split != k, split == k
            decision, threshold = choose(
                x[train], right[train], outside[train], max_wrong, 100 + seed, folds
            )
            answered[test] = probability(decision, x[test]) >= threshold
        figures.append(outcome(answered, right, outside))
    accuracy, wrong = np.mean(figures, axis=0)
    return float(accuracy), float(wrong), answered


def case_features(index: FaqIndex, texts: list[str]) -> tuple[list[str | None], Array]:
    tops, rows = [], []
    for text in texts:
        top, features = index.features(text)
        assert features is not None
        tops.append(top)
        rows.append(features)
    return tops, np.array(rows)


def cross_fitted_features(
    entries: Sequence[FaqEntry],
    outside: Sequence[str],
    embedder: Embedder,
    cases: Sequence[Case],
    folds: int,
) -> tuple[list[str | None], Array]:
    """Each case's best entry and features, from an index built without its fold's texts."""
    # The features do not depend on the calibration: a neutral one, so that the tuner also
    # runs when the features have changed and the stored calibration no longer fits.
    neutral = Calibration(Logistic.constant(0.0), threshold=0.5)
    tops: list[str | None] = [None] * len(cases)
    rows = np.zeros((len(cases), len(FEATURES)))
    for index, fold in cross_fitted(
        entries, outside, embedder, cases, calibration=neutral, folds=folds
    ):
        found, x = case_features(index, [cases[i].text for i in fold])
        for at, i in enumerate(fold):
            tops[i], rows[i] = found[at], x[at]
    return tops, rows


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
    tops, x = cross_fitted_features(
        read_faq(None), read_out_of_scope(None), embedder, cases, args.folds
    )
    embedder.save()
    right = np.array([top == c.expect for top, c in zip(tops, cases, strict=True)])
    outside = np.array([c.expect is None for c in cases])
    accuracy, wrong, _ = cross_validated(
        x, right, outside, args.max_wrong, args.folds, args.repeats
    )
    print(
        f"{len(cases)} development cases ({int(outside.sum())} out of scope); best entry right "
        f"for {int(right.sum())} of {int((~outside).sum())} in scope. {args.folds}-fold "
        f"cross-validated over {args.repeats} splits: accuracy {accuracy:.3f}, "
        f"wrong answers {wrong:.3f}"
    )
    (scope, right_model), threshold = choose(x, right, outside, args.max_wrong, 100, args.folds)
    print(f"fitted on all the cases: answer at probability {threshold:.3f}")
    print(f"  {'feature':<16} {'in scope':>9} {'right':>9}")
    for name, a, b in zip(FEATURES, scope[0][1:], right_model[0][1:], strict=True):
        print(f"  {name:<16} {a:+9.3f} {b:+9.3f}")
    if args.write:
        path = ROOT / "conversations/data/faq_calibration.toml"
        fmt = ", ".join

        def numbers(values: Array) -> str:
            return f"[{fmt(f'{v:.6g}' for v in values)}]"

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
            f"features = [{fmt(repr(n).replace(chr(39), chr(34)) for n in FEATURES)}]\n"
            f"threshold = {threshold:.3f}\n" + model(right_model) + "\n[in_scope]\n" + model(scope),
            "utf-8",
        )
        print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
