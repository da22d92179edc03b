"""Choose the FAQ matcher's weights and thresholds on the development cases only.

    python bench/faq_tune.py [CASES|-] [MAX_WRONG]     (defaults: the dev cases, 0.015)

Prints the best settings (highest accuracy with wrong answers at most 1.5 %) for
conversations/faq_index.MatchParams. The held-out test cases are never read here.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
from pathlib import Path

import numpy as np

from bot.faq_eval import read_cases
from bot.knowledge import E5Embedder, read_faq
from conversations.faq_index import FaqIndex, per_entry

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    default = ROOT / "tests/data/faq_dev.jsonl"
    cases_path = Path(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "-" else default
    cases = read_cases(cases_path)
    cache = Path(tempfile.gettempdir()) / "tawasul-test-embeddings"
    index = FaqIndex(read_faq(None), E5Embedder(cache))
    index.embedder.save()  # type: ignore[union-attr]
    ids = [e.id for e in index.entries]
    starts = np.flatnonzero(np.r_[True, index.owners[1:] != index.owners[:-1]])
    signals = [index.signals(c.text) for c in cases]
    words = np.stack([s[0] for s in signals])
    chars = np.stack([s[1] for s in signals])
    cosines = np.stack([s[2] for s in signals])  # type: ignore[misc]
    expect = np.array([ids.index(c.expect) if c.expect else -1 for c in cases])
    results = []
    for ww, cw, floor in itertools.product(
        (0.15, 0.2, 0.25, 0.3, 0.35, 0.4),
        (0.1, 0.15, 0.2, 0.25, 0.3),
        (0.75, 0.78, 0.8, 0.82, 0.84),
    ):
        dw = 1.0 - ww - cw
        if dw < 0.2:
            continue
        dense = np.clip((cosines - floor) / (1 - floor), 0, 1)
        combined = ww * words + cw * chars + dw * dense
        scores = per_entry(combined, starts)
        order = np.argsort(-scores, axis=1)
        best = scores[np.arange(len(cases)), order[:, 0]]
        second = scores[np.arange(len(cases)), order[:, 1]]
        top = order[:, 0]
        for threshold in np.arange(0.30, 0.80, 0.02):
            for margin in (0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.15):
                answered = (best >= threshold) & (best - second >= margin)
                decided = np.where(answered, top, -1)
                accuracy = float(np.mean(decided == expect))
                wrong = float(np.mean(answered & (top != expect)))
                results.append(
                    (
                        accuracy,
                        -wrong,
                        ww,
                        cw,
                        round(dw, 2),
                        floor,
                        round(float(threshold), 2),
                        margin,
                    )
                )
    allowed = [r for r in results if -r[1] <= float(sys.argv[2] if len(sys.argv) > 2 else 0.015)]
    allowed.sort(reverse=True)
    print(
        f"{len(cases)} development cases; best settings (accuracy, wrong answers, weights "
        "words/chars/dense, dense floor, answer threshold, margin):"
    )
    for r in allowed[:10]:
        print(
            f"  accuracy {r[0]:.3f}  wrong {-r[1]:.3f}  w={r[2]} c={r[3]} d={r[4]} "
            f"floor={r[5]} threshold={r[6]} margin={r[7]}"
        )


if __name__ == "__main__":
    main()
