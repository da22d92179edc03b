"""The embedding cache: questions asked are kept up to a bound; the knowledge base's stay."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from bot.knowledge import SEED, E5Embedder, read_knowledge
from conversations.faq_index import FaqIndex, Vector, embedding_text


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


def test_questions_prepared_together_go_to_the_model_in_short_batches(tmp_path: Path) -> None:
    from bot.knowledge import PREPARE_BATCH, Knowledge
    from tests.conftest import make_config

    knowledge = Knowledge(make_config(tmp_path).knowledge)
    embedder = knowledge.embedder
    assert embedder is not None
    model = embedder.model
    calls: list[int] = []

    class Counting:
        def query(self, texts: list[str]) -> object:
            calls.append(len(texts))
            return model.query(texts)

    embedder.model = Counting()
    questions = [f"سؤال لم يكتبه أحد من قبل رقم {n}" for n in range(PREPARE_BATCH + 3)]
    knowledge.prepare(questions)
    assert calls == [PREPARE_BATCH, 3]
    assert all(knowledge.ready(q) for q in questions)
    # Embedded in a batch as they would be one by one.
    last = embedding_text(questions[-1])
    assert np.allclose(embedder.cache[embedder.key(last)], model.query([last])[0], atol=1e-5)


def test_a_batch_the_model_refuses_is_tried_one_by_one(tmp_path: Path) -> None:
    """A question asked twice goes to the model once; when a batch fails, the others in it
    are still embedded (not left to the event loop) and the failure is raised after."""
    from bot.knowledge import Knowledge
    from tests.conftest import make_config

    knowledge = Knowledge(make_config(tmp_path).knowledge)
    embedder = knowledge.embedder
    assert embedder is not None
    model = embedder.model
    calls: list[list[str]] = []
    bad = "سؤال لا يقبله النموذج أبدا ٧"

    class Refusing:
        def query(self, texts: list[str]) -> object:
            calls.append(list(texts))
            if embedding_text(bad) in texts:
                raise RuntimeError("the model failed")
            return model.query(texts)

    embedder.model = Refusing()
    good = [f"سؤال جديد يقبله النموذج رقم {n}" for n in range(3)]
    with pytest.raises(RuntimeError, match="the model failed"):
        knowledge.prepare([good[0], good[0], bad, *good[1:]])
    assert calls[0] == [embedding_text(q) for q in (good[0], bad, *good[1:])]  # once each
    assert all(knowledge.ready(q) for q in good) and not knowledge.ready(bad)


def test_a_question_asked_while_the_index_is_rebuilt_is_not_pinned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload builds the index in a worker thread; a question beneficiaries ask meanwhile,
    on the event loop's thread, stays among the recent ones and is not saved for good."""
    import threading

    import bot.knowledge
    from bot.knowledge import Knowledge
    from tests.conftest import make_config

    config = make_config(tmp_path, knowledge={"cache_dir": tmp_path / "cache"})
    knowledge = Knowledge(config.knowledge)
    embedder = knowledge.embedder
    assert embedder is not None
    building, release = threading.Event(), threading.Event()
    real = bot.knowledge.FaqIndex

    def slow_index(*args: object, **kwargs: object) -> FaqIndex:
        building.set()
        assert release.wait(30)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(bot.knowledge, "FaqIndex", slow_index)
    reload = threading.Thread(target=knowledge.reload)
    reload.start()
    try:
        assert building.wait(30)
        asked = "سؤال وصل والفهرس يبنى من جديد ٣١"
        knowledge.prepare([asked])
    finally:
        release.set()
        reload.join(30)
    key = embedder.key(embedding_text(asked))
    assert key not in embedder.pinned and key in embedder.recent
    # What the index was built from is pinned as before.
    question = knowledge.entries[0].questions["ar"][0]
    assert embedder.key(embedding_text(question)) in embedder.pinned


def test_the_index_and_the_cache_hold_the_knowledge_bases_vectors_once(tmp_path: Path) -> None:
    from bot.knowledge import Knowledge
    from tests.conftest import make_config

    config = make_config(tmp_path, knowledge={"cache_dir": tmp_path / "cache"}).knowledge
    for start in ("first", "again"):  # from the shipped vectors, then from the cache on disk
        knowledge = Knowledge(config)
        embedder, vectors = knowledge.embedder, knowledge.index.vectors
        assert embedder is not None and vectors is not None
        assert not vectors.flags.writeable  # the cache's rows cannot be changed through it
        rows = [embedder.cache[k] for k in embedder.pinned]
        shared = sum(np.shares_memory(row, vectors) for row in rows)
        assert shared > 0.9 * len(vectors), start  # (a wording stored twice is one row)
        # Nothing else is held but the vectors of the questions no longer in the file.
        rest = [row for row in rows if not np.shares_memory(row, vectors)]
        held = {id(row.base): row.base for row in rest if row.base is not None}
        assert sum(len(base) for base in held.values()) <= len(rest), start
        embedder.pinning = True  # a question of an earlier version of the file
        embedder.embed(["سؤال كان في الملف ثم حذف"])
        embedder.save()


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
    # The three questions and the first sentence of each answer.
    assert any("5 ways of asking to embed for the first time" in s for s in said), said

    caplog.clear()
    with caplog.at_level("INFO", logger="tawasul.notice"):
        module.Knowledge(config)  # embedded and saved by the first start: nothing to say
    assert not [r for r in caplog.records if r.name == "tawasul.notice"]


class Recorder:
    """Records what an index asks to embed (answers zeros: nothing is matched here)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vector:
        self.texts.extend(texts)
        return np.zeros((len(texts), 384), np.float32)


class CountingModel:
    """Stands for the model: vectors of one value, and the texts it was asked for."""

    def __init__(self, value: float = 0.5) -> None:
        self.value = value
        self.asked: list[str] = []

    def query(self, texts: Sequence[str]) -> Vector:
        self.asked.extend(texts)
        return np.full((len(texts), 384), self.value, np.float32)


def test_the_shipped_vectors_cover_the_shipped_knowledge_base() -> None:
    recorder = Recorder()
    entries, outside = read_knowledge(None)
    FaqIndex(entries, recorder, out_of_scope=outside)
    with resources.as_file(SEED) as path, np.load(path) as data:
        shipped = {str(k) for k in data["keys"]}
    missing = {E5Embedder.key(t) for t in recorder.texts} - shipped
    assert not missing, f"{len(missing)} questions have no shipped vector: make faq-embeddings"


def test_a_first_start_reads_the_shipped_vectors_instead_of_embedding(tmp_path: Path) -> None:
    embedder = E5Embedder(tmp_path / "cache")
    model = embedder.model
    asked: list[str] = []

    class Counting:
        def query(self, texts: Sequence[str]) -> Vector:
            asked.extend(texts)
            return cast(Vector, model.query(texts))

    embedder.model = Counting()
    entries, outside = read_knowledge(None)
    index = FaqIndex(entries, embedder, out_of_scope=outside)
    assert len(asked) == 1  # one question, to check the shipped vectors against the model
    decision = index.decide("السلام عليكم ابغى اعرف وش الاوراق المطلوبه")
    assert decision.ranked[0].entry.id == "required-documents"
    embedder.save()  # and later starts read them from the cache, as ever
    assert len(E5Embedder(tmp_path / "cache", seed=False).cache) >= len(asked) + 2000


def test_shipped_vectors_another_model_disagrees_with_are_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot import knowledge as module

    texts = [f"سؤال {n}" for n in range(4)]
    seed = tmp_path / "seed.npz"

    def ship(probe_vector: Vector) -> None:
        np.savez(
            seed,
            version=np.asarray(E5Embedder.VERSION),
            probe=np.asarray("سؤال للتحقق"),
            probe_vector=probe_vector,
            keys=np.asarray([E5Embedder.key(t) for t in texts], dtype="U32"),
            vectors=np.full((len(texts), 384), 0.5, np.float16),
        )

    monkeypatch.setattr(module, "SEED", seed)
    monkeypatch.setattr(module, "SLOW_START_QUESTIONS", 3)
    ship(np.full(384, 0.5, np.float32))  # what this model says of the probe: used
    embedder = E5Embedder(None)
    embedder.model = CountingModel()
    embedder.embed(texts)
    assert embedder.model.asked == ["سؤال للتحقق"]
    ship(np.eye(384, dtype=np.float32)[0])  # another model's vectors: embedded afresh
    embedder = E5Embedder(None)
    embedder.model = CountingModel()
    embedder.embed(texts)
    assert embedder.model.asked == ["سؤال للتحقق", *texts]


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 not a whole zip file"])
def test_a_damaged_vectors_file_only_means_embedding_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: bytes
) -> None:
    from bot import knowledge as module

    seed = tmp_path / "seed.npz"
    seed.write_bytes(damage)
    monkeypatch.setattr(module, "SEED", seed)
    monkeypatch.setattr(module, "SLOW_START_QUESTIONS", 3)
    texts = [f"سؤال {n}" for n in range(4)]
    embedder = E5Embedder(None)
    embedder.model = CountingModel()
    assert embedder.embed(texts).shape == (4, 384)
    assert embedder.model.asked == texts


def test_memory_freed_by_a_build_is_given_back_to_the_system() -> None:
    import platform

    from bot.knowledge import give_back_memory

    # About 50 MB in small blocks, most of them freed but one in sixteen kept: the allocator
    # cannot shrink its heap past the ones kept, and keeps the pages between them.
    blocks = [bytes(1000) for _ in range(50_000)]
    kept = blocks[::16]
    del blocks
    before = _resident_kb()
    assert give_back_memory() is (platform.libc_ver()[0] == "glibc")
    if platform.libc_ver()[0] == "glibc":
        assert _resident_kb() < before - 20_000
    del kept


def _resident_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")
