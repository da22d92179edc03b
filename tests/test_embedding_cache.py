"""The embedding cache: questions asked are kept up to a bound; the knowledge base's stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.knowledge import E5Embedder


def test_asked_questions_are_bounded_and_the_knowledge_base_stays(tmp_path: Path) -> None:
    embedder = E5Embedder(tmp_path, recent=3)
    (kb,) = embedder.embed(["ما هي أوقات الدوام؟"])  # as an index is built: pinned
    embedder.pinning = False  # then serving
    embedder.save()

    asked = [f"سؤال جديد رقم {n}" for n in range(5)]
    first = embedder.embed(asked[:1])[0]
    embedder.embed(asked[1:])
    assert len(embedder.recent) == 3
    assert embedder.key(asked[0]) not in embedder.cache  # least recently asked: dropped
    assert embedder.key(asked[4]) in embedder.cache
    # Asked again, it is embedded again, the same.
    assert np.allclose(embedder.embed(asked[:1])[0], first, atol=1e-5)
    assert np.allclose(embedder.embed(["ما هي أوقات الدوام؟"])[0], kb)
    assert embedder.key("ما هي أوقات الدوام؟") in embedder.cache

    # Only the knowledge base's questions go to disk.
    again = E5Embedder(tmp_path, recent=3)
    assert set(again.cache) == {embedder.key("ما هي أوقات الدوام؟")}


def test_a_serving_knowledge_base_pins_only_its_own_questions(tmp_path: Path) -> None:
    from bot.knowledge import Knowledge
    from tests.conftest import make_config

    knowledge = Knowledge(make_config(tmp_path).knowledge)
    embedder = knowledge.embedder
    assert embedder is not None and not embedder.pinning
    pinned = set(embedder.pinned)
    assert len(pinned) > 100  # every question of the knowledge base
    knowledge.prepare(["سؤال لم يكتبه أحد من قبل ٤٢"])
    assert embedder.pinned == pinned and len(embedder.recent) == 1
