"""The embedding cache: questions asked are kept up to a bound; the knowledge base's stay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def test_a_start_that_must_embed_many_questions_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from bot import knowledge as module
    from bot.config import KnowledgeConfig

    faq = tmp_path / "faq.toml"
    faq.write_text(
        """
[[faq]]
id = "hours"
questions.ar = ["متى الدوام؟", "وش اوقات العمل"]
questions.en = ["When are you open?"]
answer.ar = "من الأحد إلى الخميس."
answer.en = "Sunday to Thursday."

[[out_of_scope]]
questions.ar = []
""",
        encoding="utf-8",
    )
    config = KnowledgeConfig(faq_path=faq, cache_dir=tmp_path / "cache")
    monkeypatch.setattr(module, "SLOW_START_QUESTIONS", 3)
    with caplog.at_level("INFO", logger="tawasul.notice"):
        module.Knowledge(config)
    said = [r.getMessage() for r in caplog.records if r.name == "tawasul.notice"]
    assert any("3 ways of asking to embed for the first time" in s for s in said), said

    caplog.clear()
    with caplog.at_level("INFO", logger="tawasul.notice"):
        module.Knowledge(config)  # embedded and saved by the first start: nothing to say
    assert not [r for r in caplog.records if r.name == "tawasul.notice"]
