"""FAQ matching at scale: knowledge bases of 50, 1,000 and 10,000 entries.

    python bench/faq.py [SIZES...] [--cache DIR]      (default: 50 1000 10000)

For each size it prints the cold index build time (every question embedded), the time to
load the index again from the embedding cache, the p50/p99 time per question, and the peak
memory. With --cache DIR the embeddings are kept there: a second run skips the cold build
(reported as "-") and measures the rest in seconds. Entries beyond the shipped knowledge
base are made by varying its questions, so the vocabulary and the languages stay realistic.
"""

from __future__ import annotations

import argparse
import random
import resource
import tempfile
import time
from pathlib import Path

from bot.knowledge import E5Embedder, read_faq, read_out_of_scope
from conversations.faq import FaqEntry
from conversations.faq_index import FaqIndex

QUESTIONS = [
    "السلام عليكم ابغى اعرف وش الاوراق المطلوبه",
    "متى يطلع رد اللجنه على طلبي",
    "how can I volunteer with you",
    "وين مقركم",
    "كم ياخذ الطلب وقت",
    "متى ينزل حساب المواطن",
    "ابي اكلم موظف",
    "هل الخدمه مجانيه",
]


def synthetic(size: int, seed: int = 7) -> list[FaqEntry]:
    base = list(read_faq(None))
    rng = random.Random(seed)
    vocabulary = sorted(
        {w for e in base for a in e.answers.values() for w in a.split() if len(w) > 3}
    )
    entries = []
    for n in range(size):
        source = base[n % len(base)]
        if n < len(base):
            entries.append(source)
            continue
        extra = " ".join(rng.sample(vocabulary, 3))
        questions = {
            lang: tuple(f"{q} {extra}" for q in qs[:1]) for lang, qs in source.questions.items()
        }
        entries.append(FaqEntry(f"{source.id}-{n}", questions, source.answers))
    return entries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sizes", nargs="*", type=int, default=[50, 1000, 10000])
    parser.add_argument("--cache", type=Path, help="keep the embeddings here between runs")
    args = parser.parse_args()
    for size in args.sizes:
        entries = synthetic(size)
        outside = read_out_of_scope(None)
        if args.cache:
            cache = args.cache / str(size)
        else:
            cache = Path(tempfile.mkdtemp(prefix=f"tawasul-faq-bench-{size}-"))
        cold = "     -"
        if not (cache / f"{E5Embedder.VERSION}.npz").exists():
            started = time.perf_counter()
            embedder = E5Embedder(cache, seed=False)  # every question embedded: a cold build
            FaqIndex(entries, embedder, out_of_scope=outside)
            embedder.save()
            cold = f"{time.perf_counter() - started:6.1f}"
        started = time.perf_counter()
        embedder = E5Embedder(cache)
        index = FaqIndex(entries, embedder, out_of_scope=outside)
        warm = time.perf_counter() - started
        latencies, embedding = [], []
        for round_ in range(25):
            for question in QUESTIONS:
                t = time.perf_counter()
                embedder.embed([f"{question} {round_}"])
                embedding.append((time.perf_counter() - t) * 1000)
                t = time.perf_counter()
                index.decide(f"{question} {round_}")
                latencies.append((time.perf_counter() - t) * 1000)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"{size:>6} entries ({len(index.owners)} questions): cold build {cold} s, "
            f"from cache {warm:5.2f} s, per question p50 {_pct(latencies, 50):5.1f} ms "
            f"p99 {_pct(latencies, 99):5.1f} ms (the question's embedding alone: "
            f"p50 {_pct(embedding, 50):5.1f} ms p99 {_pct(embedding, 99):5.1f} ms), "
            f"peak RSS {peak:5.0f} MB",
            flush=True,
        )


def _pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * q // 100)]


if __name__ == "__main__":
    main()
