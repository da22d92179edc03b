"""Fit the FAQ matcher's calibrated decision on the development cases only.

    python bench/faq_tune.py [CASES] [--max-wrong 0.005] [--write]

For every development question it computes the decision's features (see
conversations/faq_index.FEATURES) and whether the best entry is the right one, fits a small
logistic model (numpy, L2-regularised), and chooses the answer threshold on five-fold
cross-validated probabilities: the highest accuracy with wrong answers at most --max-wrong.
It prints the cross-validated figures, and with --write stores the model, fitted on all the
cases, in conversations/data/faq_calibration.toml. The held-out test cases are never read here.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bot.faq_eval import read_cases
from bot.knowledge import E5Embedder, read_faq
from conversations.faq_index import FEATURES, FaqIndex

ROOT = Path(__file__).resolve().parent.parent
Array = NDArray[np.float64]


def fit(x: Array, y: Array, l2: float = 1.0) -> tuple[Array, Array, Array]:
    """Logistic regression by Newton's method on standardised features."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = np.c_[np.ones(len(x)), (x - mean) / scale]
    w = np.zeros(z.shape[1])
    penalty = l2 * np.r_[0.0, np.ones(z.shape[1] - 1)]
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        grad = z.T @ (p - y) + penalty * w
        hess = (z.T * (p * (1 - p))) @ z + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w, mean, scale


def predict(model: tuple[Array, Array, Array], x: Array) -> Array:
    w, mean, scale = model
    z = np.c_[np.ones(len(x)), (x - mean) / scale]
    return 1.0 / (1.0 + np.exp(-(z @ w)))


def outcome(p: Array, right: Array, out_of_scope: Array, threshold: float) -> tuple[float, float]:
    answered = p >= threshold
    accuracy = float(np.mean(np.where(answered, right, out_of_scope)))
    wrong = float(np.mean(answered & ~right))
    return accuracy, wrong


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="?", default=str(ROOT / "tests/data/faq_dev.jsonl"))
    parser.add_argument("--max-wrong", type=float, default=0.005)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    cases = read_cases(Path(args.cases))
    embedder = E5Embedder(Path(tempfile.gettempdir()) / "tawasul-test-embeddings")
    index = FaqIndex(read_faq(None), embedder)
    rows, right, out_of_scope = [], [], []
    for case in cases:
        top, features = index.features(case.text)
        assert features is not None
        rows.append(features)
        right.append(top == case.expect)
        out_of_scope.append(case.expect is None)
    embedder.save()
    x, y = np.array(rows), np.array(right, dtype=np.float64)
    is_right, is_out = np.array(right), np.array(out_of_scope)
    folds = np.random.default_rng(0).permutation(len(x)) % 5
    held = np.zeros(len(x))
    for k in range(5):
        held[folds == k] = predict(fit(x[folds != k], y[folds != k]), x[folds == k])
    candidates = [
        (*outcome(held, is_right, is_out, t), float(t)) for t in np.arange(0.30, 0.99, 0.01)
    ]
    allowed = [c for c in candidates if c[1] <= args.max_wrong] or [
        min(candidates, key=lambda c: c[1])
    ]
    accuracy, wrong, threshold = max(allowed)
    print(
        f"{len(cases)} development cases, best entry right for {int(y.sum())}; "
        f"cross-validated: accuracy {accuracy:.3f}, wrong answers {wrong:.3f} "
        f"at probability {threshold:.2f}"
    )
    w, mean, scale = fit(x, y)
    for name, c in zip(FEATURES, w[1:], strict=True):
        print(f"  {name:<11} {c:+.3f}")
    if args.write:
        path = ROOT / "conversations/data/faq_calibration.toml"
        fmt = ", ".join

        def numbers(values: Array) -> str:
            return f"[{fmt(f'{v:.6g}' for v in values)}]"

        path.write_text(
            "# The FAQ matcher's calibrated decision, fitted by bench/faq_tune.py on\n"
            f"# tests/data/faq_dev.jsonl ({len(cases)} cases; cross-validated accuracy "
            f"{accuracy:.3f}, wrong answers {wrong:.3f}).\n"
            f"features = [{fmt(repr(n).replace(chr(39), chr(34)) for n in FEATURES)}]\n"
            f"intercept = {w[0]:.6g}\n"
            f"mean = {numbers(mean)}\n"
            f"scale = {numbers(scale)}\n"
            f"coef = {numbers(w[1:])}\n"
            f"threshold = {threshold:.2f}\n",
            "utf-8",
        )
        print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
