"""FAQ answering through the engine and the `tawasul faq` commands."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from bot.faq_eval import Case, cross_fitted, evaluate, evaluate_folds, stored, without
from bot.knowledge import Knowledge, read_out_of_scope
from bot.service import Service
from conversations import faq_index
from conversations.faq import FaqEntry, FaqError, parse_faq, parse_out_of_scope
from conversations.faq_index import (
    CANDIDATE_FEATURES,
    CANDIDATES,
    FEATURES,
    RERANKED,
    Calibration,
    FaqIndex,
    Logistic,
    MatchParams,
    Outcome,
    Reranker,
    SparseIndex,
    default_calibration,
)
from conversations.faq_text import content_words, word_features
from storage.models import Conversation, UnansweredQuestion
from tests.conftest import Chat, make_config, run_cli

SMALL_KB = """
[[faq]]
id = "hours"
questions.ar = ["ما هي أوقات الدوام؟"]
questions.en = ["What are your working hours?"]
answer.ar = "من الأحد إلى الخميس."
answer.en = "Sunday to Thursday."

[[faq]]
id = "location"
questions.ar = ["أين يقع مقر الجمعية؟"]
questions.en = ["Where is the association?"]
answer.ar = "في الحي الشمالي."
answer.en = "In the north district."
"""


def test_greetings_and_dialect_do_not_count_against_a_match() -> None:
    assert content_words("السلام عليكم لو سمحت") == []
    assert content_words("ابغى اعرف وش الاوراق المطلوبه") == content_words(
        "أريد أن أعرف ما المستندات المطلوبة"
    ) or "المستندات" in content_words("ابغى اعرف وش الاوراق المطلوبه")


async def test_dialect_question_with_greeting_is_answered(chat: Chat) -> None:
    await chat.say("السلام عليكم ابغى اعرف وش الاوراق المطلوبه")
    assert "الهوية" in chat.text


async def test_english_question_gets_an_english_answer(chat: Chat) -> None:
    await chat.say("مرحبا")
    await chat.say("What documents do I need to apply?")
    answer = chat.replies[0].text
    assert "ID" in answer or "identity" in answer.lower()


async def test_out_of_scope_question_is_not_answered(chat: Chat, service: Service) -> None:
    await chat.say("مرحبا")
    await chat.say("متى ينزل حساب المواطن هالشهر")
    # Said so, rather than "not understood" or the closest questions of the association's.
    assert "لا تتولاه الجمعية" in chat.text and "هل تقصد" not in chat.text
    await chat.say("can I get a bank loan")
    assert "does not handle" in chat.text
    # Understood, not misunderstood: two in a row do not hand the conversation over.
    async with service.db.session() as s:
        assert await s.scalar(select(Conversation.status)) == "bot"
        assert await s.scalar(select(func.count()).select_from(UnansweredQuestion)) == 2


def test_broken_file_names_the_line_and_the_reason() -> None:
    broken = SMALL_KB + '\n[[faq]]\nid = "x"\nquestions.ar = ["سؤال"]\n'
    with pytest.raises(FaqError) as info:
        parse_faq(broken, "kb.toml")
    expected = SMALL_KB.count("\n") + 2  # the third [[faq]] header
    assert f"line {expected}" in str(info.value) and "answer.ar" in str(info.value)
    with pytest.raises(FaqError, match="line 2"):
        parse_faq("[[faq]]\nid = \n", "kb.toml")


def test_an_entry_action_is_read_and_an_unknown_one_refused() -> None:
    entry = '[[faq]]\nid = "agent"\nquestions.en = ["a person please"]\nanswer.ar = "."\n'
    assert parse_faq(entry + 'action = "staff"\n', "kb.toml")[0].action == "staff"
    assert parse_faq(entry, "kb.toml")[0].action is None
    with pytest.raises(FaqError, match=r"line 1.*action must be one of staff, status"):
        parse_faq(entry + 'action = "refund"\n', "kb.toml")


def test_an_entry_may_offer_a_service_beside_its_answer() -> None:
    entry = '[[faq]]\nid = "apply"\nquestions.en = ["how to apply"]\nanswer.ar = "."\n'
    assert parse_faq(entry + 'offer = "apply"\n', "kb.toml")[0].offer == "apply"
    with pytest.raises(FaqError, match=r"line 1.*offer must be one of apply, complaint"):
        parse_faq(entry + 'offer = "loan"\n', "kb.toml")


def test_reload_keeps_the_old_knowledge_when_the_new_file_is_broken(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    path = config.knowledge.faq_path
    assert path is not None
    path.write_text(SMALL_KB, "utf-8")
    knowledge = Knowledge(config.knowledge)
    assert len(knowledge.entries) == 2
    path.write_text(SMALL_KB + '\n[[faq]]\nid = "hours"\n', "utf-8")
    assert knowledge.changed()
    with pytest.raises(FaqError, match="duplicate id"):
        knowledge.reload()
    assert len(knowledge.entries) == 2 and knowledge.entry("location") is not None
    assert knowledge.decide("where is the association located").ranked[0].entry.id == "location"


def test_index_without_embeddings_still_ranks(tmp_path: Path) -> None:
    index = FaqIndex(parse_faq(SMALL_KB, "kb.toml"))
    decision = index.decide("اوقات الدوام عندكم")
    assert decision.outcome is not Outcome.NONE
    assert decision.ranked[0].entry.id == "hours"


def test_a_question_asked_again_in_the_same_words_is_decided_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The latest decisions are kept by the question's words (and the conversation's
    language); the oldest are let go, and a knowledge base reloaded is a new index that
    decides afresh."""
    monkeypatch.setattr(faq_index, "DECISIONS_KEPT", 2)
    entries = parse_faq(SMALL_KB, "kb.toml")
    index = FaqIndex(entries)
    first = index.decide("اوقات الدوام عندكم")
    assert index.decide("اوقات الدوام عندكم") is first
    assert index.decide("اوقات الدوام عندكم", "en") is not first  # another language given
    assert index.decide("where are you") is not first
    again = index.decide("اوقات الدوام عندكم")  # let go for the two since
    assert again is not first and again == first
    assert FaqIndex(entries).decide("اوقات الدوام عندكم") is not again


def test_sparse_index_scores_are_cosines() -> None:
    index = SparseIndex([["a", "b"], ["c"], ["a", "a", "d"], []])
    same = index.scores(["a", "b"])
    assert abs(float(same[0]) - 1.0) < 1e-5
    assert float(same[1]) == 0.0 and float(same[3]) == 0.0
    assert 0.0 < float(same[2]) < 1.0
    assert not index.scores(["zzz"]).any() and not index.scores([]).any()


def _calibration(intercept: float) -> Calibration:
    return Calibration(Logistic.constant(intercept), threshold=0.5)


def test_the_calibrated_probability_decides_whether_to_answer() -> None:
    entries = parse_faq(SMALL_KB, "kb.toml")
    sure = FaqIndex(entries, calibration=_calibration(5.0)).decide("اوقات الدوام")
    assert sure.outcome is Outcome.ANSWER and sure.entry is not None
    assert sure.entry.id == "hours" and sure.confidence > 0.99
    doubtful = FaqIndex(entries, calibration=_calibration(-5.0)).decide("اوقات الدوام")
    assert doubtful.outcome is not Outcome.ANSWER and doubtful.confidence < 0.01


def test_the_shipped_calibration_matches_the_features() -> None:
    calibration = default_calibration()
    assert len(calibration.right.coef) == len(calibration.right.mean) == len(FEATURES)
    assert 0.5 <= calibration.threshold < 1.0
    with pytest.raises(ValueError, match="features"):
        Calibration.from_mapping({"features": ["score"], "intercept": 0, "threshold": 0.5})
    assert calibration.rerank is not None
    assert len(calibration.rerank.coef) == len(CANDIDATE_FEATURES)
    table = tomllib.loads(
        (Path(faq_index.__file__).parent / "data" / "faq_calibration.toml").read_text("utf-8")
    )
    table["rerank"]["features"] = table["rerank"]["features"][:-1]
    with pytest.raises(ValueError, match="rerank features"):
        Calibration.from_mapping(table)


def test_the_reranker_orders_the_best_entries_and_tells_the_decision_how_sure_it_is() -> None:
    entries = parse_faq(SMALL_KB, "kb.toml")
    question = "اوقات الدوام"
    plain = FaqIndex(entries, calibration=_calibration(0.0))
    assert [s.entry.id for s in plain.rank(question)] == ["hours", "location"]
    found = plain.candidates(question)
    assert found is not None and found.rows.shape == (2, len(CANDIDATE_FEATURES))
    assert list(found.rows[:, CANDIDATE_FEATURES.index("rank")]) == [0, 1]
    # A reranker that weighs nothing but a candidate's place, the other way round.
    weights = [0.0] * len(CANDIDATE_FEATURES)
    weights[CANDIDATE_FEATURES.index("rank")] = 3.0
    ones = (1.0,) * len(CANDIDATE_FEATURES)
    backwards = Calibration(
        Logistic.constant(0.0),
        threshold=0.5,
        rerank=Reranker((0.0,) * len(ones), ones, tuple(weights)),
    )
    turned = FaqIndex(entries, calibration=backwards)
    assert [s.entry.id for s in turned.rank(question)] == ["location", "hours"]
    _, features = turned.features(question)
    assert features is not None  # its scores (3 x place): 3 for the first, a lead of 3
    assert features[FEATURES.index("rerank")] == pytest.approx(3.0)
    assert features[FEATURES.index("rerank_lead")] == pytest.approx(3.0)
    # Places are counted among the candidates, whatever the size of the knowledge base.
    for name in ("classifier_rank", "dense_rank"):
        assert found.rows[:, CANDIDATE_FEATURES.index(name)].max() < len(found.scored)
    # Without a reranker, the ranking's order stands and nothing is said of it.
    _, plain_features = plain.features(question)
    assert plain_features is not None and list(plain_features[-2:]) == [0.0, 0.0]


def test_cases_the_knowledge_base_stores_are_scored_without_their_own_text() -> None:
    entries = parse_faq(SMALL_KB, "kb.toml")
    stored_question = entries[0].questions["ar"][0]
    cases = [
        Case(stored_question, entries[0].id, 1),
        Case("سؤال لا يعرفه احد", None, 2),
        Case("المخزن في الامثله", None, 3),
    ]
    outside = ("المخزن في الامثله", "مثال اخر")
    assert stored(entries, outside, cases) == 2
    kept, kept_outside = without(entries, outside, {stored_question, "المخزن في الامثله"})
    assert stored_question not in kept[0].questions["ar"]
    assert kept[0].questions["ar"] == entries[0].questions["ar"][1:]
    assert kept_outside == ("مثال اخر",)
    # As the exact match compares them: greetings, hamzas and punctuation aside.
    variant = "السلام عليكم " + stored_question.replace("أ", "ا").rstrip("؟")
    assert variant != stored_question and stored(entries, (), [Case(variant, None, 4)]) == 1
    assert stored_question not in without(entries, (), [variant])[0][0].questions["ar"]
    seen: list[int] = []
    for index, fold in cross_fitted(entries, outside, None, cases, folds=2):
        seen += fold
        for i in fold:
            held = {q for e in index.entries for qs in e.questions.values() for q in qs}
            assert cases[i].text not in held
    assert sorted(seen) == [0, 1, 2]
    # Scored as stored, the first case is answered at once; cross-fitted, it is not.
    sure = _calibration(5.0)
    plain = evaluate(FaqIndex(entries, calibration=sure, out_of_scope=outside), cases[:1])
    assert plain.correct == 1
    folds = cross_fitted(entries, outside, None, cases, calibration=sure, folds=3)
    fitted = evaluate_folds(folds, cases)
    assert fitted.cases == 3
    assert [f["line"] for f in fitted.failures] == sorted(f["line"] for f in fitted.failures)


def test_ask_eval_misses_and_teach_from_the_cli(tmp_path: Path) -> None:
    run_cli(tmp_path, "db", "upgrade")
    asked = json.loads(run_cli(tmp_path, "faq", "ask", "ابي اتطوع معكم", "--json").stdout)
    assert asked["decision"] == "answer" and asked["answer"] == "volunteering"
    assert {"words", "chars", "dense"} <= set(asked["ranked"][0])

    cases = tmp_path / "cases.jsonl"
    cases.write_text(
        '{"text": "ابي اتطوع معكم", "expect": "volunteering"}\n'
        '{"text": "وش حالة الطقس بكرة في الرياض", "expect": null}\n',
        "utf-8",
    )
    result = run_cli(tmp_path, "faq", "eval", "--cases", str(cases), "--json")
    figures = json.loads(result.stdout.splitlines()[-1])
    assert figures["cases"] == 2
    assert {"accuracy", "wrong_answers", "p50_ms", "p99_ms"} <= set(figures)
    # A knowledge base named but absent is an error, not the shipped one in its place.
    for command in (["ask", "question"], ["eval", "--cases", str(cases)]):
        missing = run_cli(tmp_path, "faq", *command, "--kb", "no-such.toml", check=False)
        assert missing.returncode == 2 and "no-such.toml" in missing.stderr

    run_cli(tmp_path, "chat", "--user", "9", input="مرحبا\nكيكي بوبو زززز\n")
    misses = json.loads(run_cli(tmp_path, "faq", "misses", "--json").stdout)
    assert [m["text"] for m in misses] == ["كيكي بوبو زززز"]
    assert misses[0]["at"].endswith("+03:00")  # the association's time, as elsewhere
    run_cli(tmp_path, "faq", "teach", str(misses[0]["id"]), "volunteering")
    kb = (tmp_path / "faq.toml").read_text("utf-8")
    assert "كيكي بوبو زززز" in kb
    assert json.loads(run_cli(tmp_path, "faq", "misses", "--json").stdout) == []
    taught = json.loads(run_cli(tmp_path, "faq", "ask", "كيكي بوبو زززز", "--json").stdout)
    assert taught["answer"] == "volunteering"
    # Evaluated on a question it stores, the knowledge base would answer it at once: it is
    # scored by an index built without it, and says so.
    cases.write_text('{"text": "كيكي بوبو زززز", "expect": "volunteering"}\n', "utf-8")
    result = run_cli(tmp_path, "faq", "eval", "--cases", str(cases), "--json")
    assert "1 of the 1 cases are stored in the knowledge base" in result.stdout
    assert json.loads(result.stdout.splitlines()[-1])["accuracy"] == 0.0


def test_misses_on_a_database_not_yet_upgraded_say_what_to_do(tmp_path: Path) -> None:
    for command in (["misses"], ["teach", "1", "volunteering"]):
        result = run_cli(tmp_path, "faq", *command, check=False)
        assert result.returncode == 1 and "tawasul db upgrade" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_reload_command_refuses_a_broken_file(tmp_path: Path) -> None:
    (tmp_path / "faq.toml").write_text("[[faq]]\nid = 3\n", "utf-8")
    result = run_cli(tmp_path, "faq", "reload", check=False)
    assert result.returncode != 0 and "line 1" in result.stderr


async def test_the_server_reloads_a_changed_file(tmp_path: Path) -> None:
    import asyncio

    from bot.app import watch_knowledge

    config = make_config(tmp_path, knowledge={"reload_seconds": "0.05"})
    assert config.knowledge.faq_path is not None
    config.knowledge.faq_path.write_text(SMALL_KB, "utf-8")
    service = Service(config)
    stop = asyncio.Event()
    task = asyncio.create_task(watch_knowledge(service, stop))
    try:
        await asyncio.sleep(0.01)
        config.knowledge.faq_path.write_text(SMALL_KB.replace("hours", "opening"), "utf-8")
        for _ in range(100):
            await asyncio.sleep(0.05)
            if service.knowledge.entry("opening") is not None:
                break
        assert service.knowledge.entry("opening") is not None
    finally:
        stop.set()
        await task
        await service.close()


OUT_OF_SCOPE = """
[[out_of_scope]]
questions.ar = ["متى ينزل حساب المواطن", "ابي قرض من البنك"]
questions.en = ["Can I get a bank loan?"]
"""


def test_out_of_scope_examples_are_optional_and_checked() -> None:
    assert parse_out_of_scope(SMALL_KB, "kb.toml") is None
    assert len(parse_faq(SMALL_KB + OUT_OF_SCOPE, "kb.toml")) == 2
    assert parse_out_of_scope(SMALL_KB + OUT_OF_SCOPE, "kb.toml") == (
        "متى ينزل حساب المواطن",
        "ابي قرض من البنك",
        "Can I get a bank loan?",
    )
    with pytest.raises(FaqError, match="out_of_scope 1"):
        parse_out_of_scope('[[out_of_scope]]\nquestions.ar = "قرض"\n', "kb.toml")


def test_a_stored_wording_decides_and_an_out_of_scope_one_declines() -> None:
    entries = parse_faq(SMALL_KB, "kb.toml")
    outside = parse_out_of_scope(OUT_OF_SCOPE, "kb.toml") or ()
    index = FaqIndex(entries, calibration=_calibration(-5.0), out_of_scope=outside)
    stored = index.decide("السلام عليكم، ما هي اوقات الدوام؟؟")
    assert stored.outcome is Outcome.ANSWER and stored.entry is not None
    assert stored.entry.id == "hours"
    assert index.decide("can i get a bank loan").outcome is Outcome.NONE
    assert all(s.entry.id in {"hours", "location"} for s in index.rank("قرض البنك"))


def test_a_file_without_out_of_scope_examples_uses_the_shipped_ones(tmp_path: Path) -> None:
    path = tmp_path / "faq.toml"
    path.write_text(SMALL_KB, "utf-8")
    assert len(read_out_of_scope(path)) > 100
    path.write_text(SMALL_KB + "\n[[out_of_scope]]\nquestions.ar = []\n", "utf-8")
    assert read_out_of_scope(path) == ()


class _LetterEmbedder:
    """Embeddings from letter counts: similar wordings get similar vectors."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in zip(rows, texts, strict=True):
            for ch in text:
                row[ord(ch) % 64] += 1.0
            row /= max(float(np.linalg.norm(row)), 1e-6)
        return rows


def test_a_large_knowledge_base_scores_its_closest_entries_with_the_classifier() -> None:
    entries = [
        FaqEntry(f"topic-{n}", {"en": (f"question number {n} about topic {n}",)}, {"ar": "."})
        for n in range(CANDIDATES + 50)
    ]
    index = FaqIndex(entries, _LetterEmbedder(), out_of_scope=["what is the weather today"])
    assert index.classifier is not None
    ranked = index.rank("question number 17 about topic 17")
    assert ranked[0].entry.id == "topic-17"
    assert all(np.isfinite(s.score) for s in ranked)
    # The reranker reads places among its ten candidates, as it was fitted, not among 250.
    found = index.candidates("question number 17 about topic 17")
    assert found is not None and np.isfinite(found.rows).all()
    for name in ("rank", "classifier_rank", "dense_rank"):
        assert found.rows[:, CANDIDATE_FEATURES.index(name)].max() < RERANKED


def test_an_entry_whose_wording_holds_more_of_the_question_ranks_higher() -> None:
    kb = """
[[faq]]
id = "fees"
questions.en = ["Do I pay a fee for the service?"]
answer.ar = "."

[[faq]]
id = "rent"
questions.en = ["Can you help with the rent?", "My landlord wants the rent and I have no salary"]
answer.ar = "."
"""
    entries = parse_faq(kb, "kb.toml")
    index = FaqIndex(entries, out_of_scope=["what is the weather today"])
    # Words of the question found in each entry's wording, then in the out-of-scope examples'.
    terms = set(word_features(content_words("landlord fee salary weather")))
    assert index.coverage(terms).tolist() == pytest.approx([0.25, 0.5, 0.25])
    assert not index.coverage(set()).any()
    question = "no salary, landlord fee"
    plain = FaqIndex(entries, params=MatchParams(coverage_weight=0.0))
    covered = FaqIndex(entries, params=MatchParams(coverage_weight=0.3))
    assert covered.rank(question)[0].entry.id == "rent"
    gap = {s.entry.id: s.score for s in covered.rank(question)}
    plain_gap = {s.entry.id: s.score for s in plain.rank(question)}
    assert gap["rent"] - gap["fees"] > plain_gap["rent"] - plain_gap["fees"]


def test_a_knowledge_base_broken_before_a_start_gives_way_to_the_last_good_one(
    tmp_path: Path,
) -> None:
    """A file broken while the server ran (which went on with the old one) does not stop it
    from starting again: the copy of the last file that loaded answers, else the shipped
    knowledge base, and the reason is said."""
    config = make_config(tmp_path, knowledge={"cache_dir": tmp_path / "cache"})
    path = config.knowledge.faq_path
    assert path is not None
    path.write_text(SMALL_KB, "utf-8")
    assert Knowledge(config.knowledge, dense=False).refused is None
    path.write_text(SMALL_KB + '\n[[faq]]\nid = "hours"\n', "utf-8")
    knowledge = Knowledge(config.knowledge, dense=False)
    assert {entry.id for entry in knowledge.entries} == {"hours", "location"}
    assert knowledge.refused is not None and "duplicate id" in knowledge.refused
    assert "last good copy" in knowledge.refused and not knowledge.changed()
    (tmp_path / "cache" / "faq.last-good.toml").unlink()
    knowledge = Knowledge(config.knowledge, dense=False)
    assert len(knowledge.entries) > 50 and knowledge.refused is not None
    assert "shipped with Tawasul" in knowledge.refused
