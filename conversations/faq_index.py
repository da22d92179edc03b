"""Ranking knowledge-base entries for a question, and deciding whether to answer.

Three signals, each a cosine in [0, 1] against every stored question:
  words   TF-IDF over stemmed words (exact keywords, dialect mapped);
  chars   TF-IDF over character n-grams (typos, missing letters, glued words);
  dense   a multilingual sentence embedding (paraphrases, English against Arabic).
An entry is matched by its questions and by its answer's first sentence in each language.
An entry's score comes from its best questions, plus a classifier's: a ridge regression
from the embedding to the entry, fitted on all the stored questions when the index is built,
and the share of the question's words that the entry's wording holds.
Examples of questions the knowledge base does not answer (``[[out_of_scope]]``) are ranked
like one more entry. Whether to answer is a calibrated probability that the best entry is
the right one: P(in scope) x P(best entry right | in scope), two small logistic models over
features of the ranking (the score, its margin over the next entry, each signal's and the
classifier's own view, how much of the question the entry's wording covers, how close the
out-of-scope examples come), fitted on development questions by bench/faq_tune.py and stored
in conversations/data/faq_calibration.toml. Above its threshold the bot answers; in a band
below, it offers the closest questions; below that, it says it did not understand. A
question written exactly as a stored one is decided by that one.
"""

from __future__ import annotations

import math
import tomllib
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from conversations.arabizi import language_of, matchable
from conversations.faq import FaqEntry
from conversations.faq_text import (
    GREETINGS,
    answer_lead,
    char_features,
    content_words,
    meaningful,
    squeeze,
    without_greetings,
    word_features,
)
from conversations.normalize import normalize_arabic

Vector = NDArray[np.float32]


def embedding_text(question: str) -> str:
    """What of a question is embedded: spelt as it is matched, greetings aside. The cache is
    keyed by it, so a question embedded ahead of matching (``Knowledge.prepare``) is found."""
    return without_greetings(matchable(question))


# How many decisions an index remembers (the latest questions, about 1 KB each).
DECISIONS_KEPT = 4096


class Embedder(Protocol):
    """Sentence embeddings, one L2-normalised row per text."""

    def embed(self, texts: Sequence[str]) -> Vector: ...


@dataclass(frozen=True)
class MatchParams:
    # The ranking's weights, chosen by comparing a few settings on tests/data/faq_dev.jsonl.
    word_weight: float = 0.20
    char_weight: float = 0.40
    dense_weight: float = 0.40
    dense_floor: float = 0.75  # embedding cosines below this count as no similarity
    # How much the entry classifier's score adds to an entry's ranking score (0: not at all).
    classifier_weight: float = 0.3
    classifier_ridge: float = 3.0  # its L2 regularisation
    # How much the share of the question's words found in an entry's wording adds.
    coverage_weight: float = 0.3
    suggest_threshold: float = 0.42
    suggestions: int = 3
    # A question not answered is said to be outside the association's work when an
    # out-of-scope example leads the best entry by this much (a nonsense message leads by
    # about 0.2: it is only not understood). On the development cases, 113 questions out of
    # scope were told so against 6 in scope (0.35: 129 against 11).
    outside_lead: float = 0.4


FEATURES = (
    "score",  # the best entry's combined score
    "margin",  # its lead over the second entry
    "dense",  # the best entry's embedding cosine (raw)
    "dense_lead",  # ... less the best embedding cosine of any other entry
    "chars",  # the best entry's character n-gram cosine
    "words",  # the best entry's word cosine
    "agree",  # how many of the three signals rank the same entry first (0-3)
    "covered",  # share of the question's words found in the best entry's questions
    "known",  # share of the question's words found anywhere in the knowledge base
    "length",  # log(1 + number of meaningful words)
    "classifier",  # the entry classifier's score for the best entry
    "classifier_lead",  # ... less its best score for any other entry (or out of scope)
    "outside",  # the best out-of-scope example's score less the best entry's (-1: none)
    "outside_class",  # the classifier's score for out of scope (0: no examples)
    "rerank",  # the reranker's score for the entry it puts first
    "rerank_lead",  # ... less its score for the second (0: no second)
)

# The best entries by the ranking's score are ordered again by a small model (``Reranker``)
# over what each of them has for the question: this many of them.
RERANKED = 10
# How many stored texts closest to the question the "near_" features look at.
NEIGHBOURS = 10

CANDIDATE_FEATURES = (
    "total",  # the ranking's score (below)
    "similar",  # its part from the closest stored texts (0.75 best + 0.25 second)
    "covered",  # share of the question's words found in the entry's wording
    "classifier",  # the entry classifier's score
    "dense",  # the embedding cosine of the entry's closest text (raw)
    "chars",  # the best character n-gram cosine of its texts
    "words",  # the best word cosine of its texts
    "near_dense",  # share of the texts closest by embedding that are the entry's
    "near_combined",  # ... closest by the combined score
    "dense_top3",  # mean embedding cosine of the entry's three closest texts
    "rank",  # its place in the ranking (0: first)
    "classifier_rank",  # its place among the candidates by the classifier's score alone
    "dense_rank",  # ... by its closest text's embedding cosine alone
)


@dataclass(frozen=True)
class Logistic:
    """sigmoid(intercept + coef . (features - mean) / scale)."""

    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]

    def probability(self, features: NDArray[np.floating]) -> float:
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = self.intercept + float(np.dot(np.asarray(self.coef), z))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))

    @classmethod
    def constant(cls, intercept: float) -> Logistic:
        """sigmoid(intercept), whatever the features."""
        zeros = (0.0,) * len(FEATURES)
        return cls(intercept, zeros, (1.0,) * len(FEATURES), zeros)


@dataclass(frozen=True)
class Reranker:
    """A score for each candidate, coef . (features - mean) / scale over
    ``CANDIDATE_FEATURES``: fitted as a conditional logit (a softmax over the candidates gives
    the probability that each is the right entry). The scores themselves, not the
    probabilities, go to the decision: they do not depend on how many candidates there are
    (a knowledge base of fewer than ``RERANKED`` entries)."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]

    def scores(self, rows: NDArray[np.floating]) -> NDArray[np.floating]:
        z = (rows - np.asarray(self.mean)) / np.asarray(self.scale)
        scores: NDArray[np.floating] = z @ np.asarray(self.coef)
        return scores


@dataclass(frozen=True)
class Calibration:
    """P(the best entry is right) = P(the question is in scope) x P(the best entry is the
    right one, for a question in scope): two logistic models over the same features. Without
    the first (``in_scope``), one model (``right``) stands for both."""

    right: Logistic
    threshold: float  # answer when the probability reaches this
    in_scope: Logistic | None = None
    # Orders the best entries again; without it they stay in the ranking's order.
    rerank: Reranker | None = None

    def probability(self, features: NDArray[np.floating]) -> float:
        p = self.right.probability(features)
        return p * (self.in_scope.probability(features) if self.in_scope else 1.0)

    @classmethod
    def from_mapping(cls, data: Mapping[str, object]) -> Calibration:
        names = data["features"]
        if list(names) != list(FEATURES):  # type: ignore[call-overload]
            raise ValueError("calibration features do not match the matcher's")

        def floats(table: Mapping[str, object], key: str, size: int) -> tuple[float, ...]:
            values = tuple(float(x) for x in table[key])  # type: ignore[attr-defined]
            if len(values) != size:
                raise ValueError(f"calibration {key} does not match the features")
            return values

        def model(table: Mapping[str, object]) -> Logistic:
            def of(key: str) -> tuple[float, ...]:
                return floats(table, key, len(FEATURES))

            return Logistic(
                intercept=float(table["intercept"]),  # type: ignore[arg-type]
                mean=of("mean"),
                scale=of("scale"),
                coef=of("coef"),
            )

        rerank = None
        table = data.get("rerank")
        if isinstance(table, Mapping):
            if list(table["features"]) != list(CANDIDATE_FEATURES):
                raise ValueError("calibration rerank features do not match the matcher's")
            size = len(CANDIDATE_FEATURES)
            rerank = Reranker(*(floats(table, key, size) for key in ("mean", "scale", "coef")))
        scope = data.get("in_scope")
        return cls(
            model(data),
            threshold=float(data["threshold"]),  # type: ignore[arg-type]
            in_scope=model(scope) if isinstance(scope, Mapping) else None,
            rerank=rerank,
        )


@cache
def default_calibration() -> Calibration:
    text = (resources.files("conversations") / "data" / "faq_calibration.toml").read_text("utf-8")
    return Calibration.from_mapping(tomllib.loads(text))


class Outcome(StrEnum):
    ANSWER = "answer"
    SUGGEST = "suggest"
    NONE = "none"


@dataclass(frozen=True)
class Scored:
    entry: FaqEntry
    score: float
    words: float
    chars: float
    dense: float


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    lang: str
    ranked: tuple[Scored, ...]
    suggestions: tuple[FaqEntry, ...] = ()
    confidence: float = 0.0  # the calibrated probability that the best entry is right
    # Not answered because an out-of-scope example came closest (government programmes,
    # loans...): the bot says so rather than that it did not understand.
    outside: bool = False

    @property
    def entry(self) -> FaqEntry | None:
        return self.ranked[0].entry if self.outcome is Outcome.ANSWER else None

    @property
    def score(self) -> float:
        return self.ranked[0].score if self.ranked else 0.0

    @property
    def margin(self) -> float:
        if len(self.ranked) < 2:
            return self.score
        return self.ranked[0].score - self.ranked[1].score


@dataclass(frozen=True)
class Candidates:
    """The best entries for a question, in the ranking's order, with what the reranker reads
    of each (``CANDIDATE_FEATURES``) and the decision's features of the first (``FEATURES``
    but the reranker's two)."""

    scored: tuple[Scored, ...]
    rows: NDArray[np.floating]
    base: NDArray[np.floating]

    def reranked(self, rerank: Reranker | None) -> tuple[list[Scored], NDArray[np.floating]]:
        """The candidates in the reranker's order, and the decision's features."""
        if rerank is None:  # the ranking's order, and nothing said of it
            return list(self.scored), np.r_[self.base, 0.0, 0.0]
        scores = rerank.scores(self.rows)
        order = np.argsort(-scores, kind="stable")
        return [self.scored[i] for i in order], np.r_[self.base, rerank_features(scores)]


def rerank_features(scores: NDArray[np.floating]) -> NDArray[np.floating]:
    """The decision's two features from the reranker's scores of the candidates (last axis):
    the best score, and its lead over the second (0 when there is no second)."""
    ordered = -np.sort(-scores, axis=-1)
    best = ordered[..., 0]
    lead = best - ordered[..., 1] if scores.shape[-1] > 1 else np.zeros_like(best)
    features: NDArray[np.floating] = np.stack([best, lead], axis=-1)
    return features


def exact_key(normalized: str) -> str:
    """A text (normalised with ``normalize_arabic``) as compared for an exact match:
    stretched letters and greetings aside ("السلام عليكم، وش الأوراق؟؟" and "وش الاوراق" are
    the same)."""
    return " ".join(squeeze(w) for w in normalized.split() if w not in GREETINGS)


def exact_form(text: str) -> str:
    """A question as the exact match compares it: Arabizi spelt in Arabic letters, then
    normalised and keyed by ``exact_key``."""
    return exact_key(normalize_arabic(matchable(text)))


def per_entry(combined: NDArray[np.floating], starts: NDArray[np.intp]) -> NDArray[np.floating]:
    """An entry's score from its questions': its best, with a quarter of the weight moved
    to its second best (0.75 best + 0.25 second).

    Two agreeing phrasings are stronger evidence than one lucky match. An entry with fewer
    than three phrasings (one per language, say) is scored by its best one. Works on the
    last axis, so a matrix of many questions' scores is scored at once.
    """
    lengths = np.diff(np.r_[starts, combined.shape[-1]])
    best = np.maximum.reduceat(combined, starts, axis=-1)
    run = np.repeat(np.arange(len(starts)), lengths)
    rest = np.where(combined >= best[..., run], -1.0, combined)
    second = np.maximum.reduceat(rest, starts, axis=-1)
    return np.where((second < 0) | (lengths < 3), best, 0.75 * best + 0.25 * second)


class SparseIndex:
    """Cosine similarity of TF-IDF vectors through an inverted index of numpy arrays.

    The postings are stored term by term in two flat arrays (document ids and weights) with
    an offset per term, built with vectorised numpy so that large knowledge bases load fast.
    """

    def __init__(self, docs: Sequence[Sequence[str]]) -> None:
        self.size = len(docs)
        vocabulary: dict[str, int] = {}
        term_ids = [vocabulary.setdefault(t, len(vocabulary)) for doc in docs for t in doc]
        lengths = np.fromiter((len(doc) for doc in docs), dtype=np.int64, count=len(docs))
        n_terms = max(len(vocabulary), 1)
        pairs = np.repeat(np.arange(len(docs), dtype=np.int64), lengths) * n_terms + np.asarray(
            term_ids, dtype=np.int64
        )
        unique, counts = np.unique(pairs, return_counts=True)
        doc_of, term_of = unique // n_terms, unique % n_terms
        df = np.bincount(term_of, minlength=len(vocabulary))
        idf = np.log((self.size + 1) / (df + 1)) + 1.0
        weights = (1.0 + np.log(counts)) * idf[term_of]
        norms = np.sqrt(np.bincount(doc_of, weights * weights, minlength=self.size))
        weights = weights / np.where(norms > 0, norms, 1.0)[doc_of]
        order = np.argsort(term_of, kind="stable")
        self.doc_ids = doc_of[order].astype(np.int32)
        self.weights = weights[order].astype(np.float32)
        self.offsets = np.r_[0, np.cumsum(df)]
        self.vocabulary = vocabulary
        self.idf = dict(zip(vocabulary, idf.tolist(), strict=True))
        self.unknown_idf = math.log(self.size + 1) + 1.0

    def _weights(self, terms: Sequence[str]) -> dict[str, float]:
        counts = Counter(terms)
        return {
            t: (1.0 + math.log(n)) * self.idf.get(t, self.unknown_idf) for t, n in counts.items()
        }

    def scores(self, terms: Sequence[str]) -> Vector:
        out = np.zeros(self.size, dtype=np.float32)
        if not terms:
            return out
        weights = self._weights(terms)
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        for term, w in weights.items():
            index = self.vocabulary.get(term)
            if index is not None:
                start, end = self.offsets[index], self.offsets[index + 1]
                out[self.doc_ids[start:end]] += self.weights[start:end] * (w / norm)
        return out


# Above this many entries, the classifier scores only the entries most similar to a question.
CANDIDATES = 200


class EntryClassifier:
    """A linear classifier from a question's embedding to the entry it asks about.

    Ridge regression onto one-hot targets, fitted in closed form on the knowledge base's own
    questions when the index is built: one 384 x 384 inverse and a few products, so it takes
    well under a second even for tens of thousands of questions, and needs no cache. Where the
    nearest stored questions only see the closest phrasings, it weighs every phrasing of
    every entry, and so tells apart entries whose single best phrasings look alike.
    """

    def __init__(self, vectors: Vector, starts: NDArray[np.intp], ridge: float) -> None:
        count = len(vectors)
        sizes = np.diff(np.r_[starts, count])
        self.mean = vectors.astype(np.float64).mean(axis=0)
        # The centred Gram matrix and each class's sum of centred vectors, from the raw
        # vectors (float32 products, float64 corrections): no centred copy of the vectors.
        gram = (vectors.T @ vectors).astype(np.float64) - count * np.outer(self.mean, self.mean)
        gram += ridge * np.eye(len(self.mean))
        sums = np.add.reduceat(vectors, starts, axis=0).astype(np.float64)
        sums -= sizes[:, None] * self.mean
        weights = sums @ np.linalg.inv(gram)  # one row per class (the Gram matrix is symmetric)
        # An entry with few questions gets small scores from ridge regression, even for its
        # own questions: each entry's scores are divided by the mean it gives its own
        # questions, so a new entry with two questions is not outvoted by an old one with 30.
        mean_own = np.einsum("cj,cj->c", sums, weights) / sizes
        weights /= np.maximum(mean_own, 1e-3)[:, None]
        self.weights = np.ascontiguousarray(weights, dtype=np.float32)
        self.offset = (weights @ self.mean).astype(np.float32)

    def scores(self, query: Vector, classes: NDArray[np.intp] | None = None) -> Vector:
        """The query's score for each class, or for the given ones."""
        weights, offset = self.weights, self.offset
        if classes is not None:
            weights, offset = weights[classes], offset[classes]
        # As for the cosines: one vector against a matrix, without waking BLAS threads.
        scores: Vector = np.einsum("ij,j->i", weights, query) - offset
        return scores.astype(np.float32)


class FaqIndex:
    """Built once when the knowledge base loads; ``decide`` answers one question."""

    def __init__(
        self,
        entries: Sequence[FaqEntry],
        embedder: Embedder | None = None,
        params: MatchParams | None = None,
        calibration: Calibration | None = None,
        out_of_scope: Sequence[str] = (),
    ) -> None:
        """``out_of_scope``: questions the association does not answer (government
        programmes, loans, jobs...): when one of them is the closest match, no entry is."""
        self.entries = tuple(entries)
        self.params = params or MatchParams()
        self.calibration = calibration or default_calibration()
        self.embedder = embedder
        texts: list[str] = []
        owners: list[int] = []
        # Every question as it is matched: Arabizi in Arabic letters (conversations.arabizi);
        # then the first sentence of each of the entry's answers, which names the subject in
        # other words (on the development cases: the best entry right for 1,550 of 1,936
        # questions in scope instead of 1,540; every sentence of the answers did no better,
        # for three times the stored texts).
        for index, entry in enumerate(self.entries):
            wordings = [q for questions in entry.questions.values() for q in questions]
            wordings += [lead for a in entry.answers.values() if (lead := answer_lead(a))]
            for wording in wordings:
                texts.append(matchable(wording))
                owners.append(index)
        # The out-of-scope examples are one more run after the entries' (owner: their count).
        self.outside = len(out_of_scope) > 0
        for question in out_of_scope:
            texts.append(matchable(question))
            owners.append(len(self.entries))
        self.owners = np.asarray(owners, dtype=np.int32)
        # The decisions on the latest questions, by their words: beneficiaries ask the same
        # questions in the same words again and again, and a decision depends on nothing
        # else (an index is never changed: a knowledge base reloaded is a new index).
        self._decided: OrderedDict[tuple[str, str | None], Decision] = OrderedDict()
        # Questions are stored entry by entry: each entry's run starts here.
        self.starts = np.flatnonzero(np.r_[True, self.owners[1:] != self.owners[:-1]])
        self.ends = np.r_[self.starts[1:], len(self.owners)]
        self.run_owner = self.owners[self.starts]
        self.owners_run = np.repeat(np.arange(len(self.starts)), self.ends - self.starts)
        normalized = [normalize_arabic(t) for t in texts]
        words = [meaningful(t) for t in normalized]
        # A question written exactly as one stored (normalised, greetings aside) is answered
        # by that entry, or not at all for an out-of-scope example; a wording stored for two
        # owners decides nothing.
        exact: dict[str, int] = {}
        for owner, text in zip(owners, normalized, strict=True):
            key = exact_key(text)
            if key:
                exact[key] = owner if exact.get(key, owner) == owner else -1
        self.exact = {key: owner for key, owner in exact.items() if owner >= 0}
        stems = [word_features(w) for w in words]
        # Which owners' wording holds each word: an inverted index, so that every entry's
        # coverage of a question costs one array update per word of the question.
        holders: dict[str, set[int]] = {}
        for owner, terms in zip(owners, stems, strict=True):
            for term in terms:
                holders.setdefault(term, set()).add(owner)
        self.holders = {t: np.fromiter(o, dtype=np.intp, count=len(o)) for t, o in holders.items()}
        self.word_index = SparseIndex(stems)
        self.char_index = SparseIndex([char_features(w) for w in words])
        self.vectors: Vector | None = None
        self.classifier: EntryClassifier | None = None
        if embedder is not None and texts:
            self.vectors = embedder.embed([embedding_text(t) for t in texts])
            if self.params.classifier_weight > 0:
                self.classifier = EntryClassifier(
                    self.vectors, self.starts, self.params.classifier_ridge
                )

    def signals(
        self, text: str, words: list[str], stems: list[str]
    ) -> tuple[Vector, Vector, Vector | None, Vector | None]:
        """Per stored question: word and character cosines, and the embedding cosine; and
        the question's embedding. ``words``: the question's ``content_words``, ``stems``
        their ``word_features``."""
        word_scores = self.word_index.scores(stems)
        char_scores = self.char_index.scores(char_features(words))
        cosines = query = None
        if self.vectors is not None and self.embedder is not None:
            query = self.embedder.embed([embedding_text(text)])[0]
            # Not a BLAS matrix product: waking BLAS threads for one vector made the next
            # question's embedding several times slower on a large knowledge base.
            cosines = np.einsum("ij,j->i", self.vectors, query).astype(np.float32)
        return word_scores, char_scores, cosines, query

    def classify(self, query: Vector, similar: Vector) -> Vector:
        """The classifier's score for each run (entries, then out of scope). In a large
        knowledge base only the runs most similar to the question are scored (and out of
        scope); the others get -inf, and so cannot be ranked first."""
        assert self.classifier is not None
        runs = len(similar)
        if runs <= CANDIDATES:
            return self.classifier.scores(query)
        chosen = np.argpartition(-similar, CANDIDATES - 1)[:CANDIDATES]
        if self.outside:
            chosen = np.union1d(chosen, np.arange(len(self.entries), runs))
        classified = np.full(runs, -np.inf, dtype=np.float32)
        classified[chosen] = self.classifier.scores(query, chosen)
        return classified

    def combine(
        self, word_scores: Vector, char_scores: Vector, cosines: Vector | None
    ) -> tuple[Vector, Vector]:
        p = self.params
        if cosines is not None:
            dense = np.clip((cosines - p.dense_floor) / (1.0 - p.dense_floor), 0.0, 1.0)
            combined = (
                p.word_weight * word_scores + p.char_weight * char_scores + p.dense_weight * dense
            )
        else:
            dense = np.zeros_like(word_scores)
            total = p.word_weight + p.char_weight
            combined = (p.word_weight * word_scores + p.char_weight * char_scores) / total
        return combined.astype(np.float32), dense.astype(np.float32)

    def candidates(self, text: str) -> Candidates | None:
        """The best entries for the question in the ranking's order, with what the reranker
        and the decision read (None: an empty knowledge base)."""
        if not len(self.entries):
            return None
        text = matchable(text)
        words = content_words(text)
        stems = word_features(words)
        word_scores, char_scores, cosines, query = self.signals(text, words, stems)
        combined, dense = self.combine(word_scores, char_scores, cosines)
        similar = per_entry(combined, self.starts)
        terms = set(stems)
        coverage = self.coverage(terms)
        # One run per entry, then the out-of-scope examples' run when there are any.
        total = similar + self.params.coverage_weight * coverage
        classified = None
        if query is not None and self.classifier is not None:
            classified = self.classify(query, similar)
            total += self.params.classifier_weight * classified
        n = len(self.entries)
        best = total[:n]
        count = min(RERANKED, n)
        order = np.argpartition(-best, count - 1)[:count]
        order = order[np.argsort(-best[order], kind="stable")]
        scored = []
        for run in order:
            start, end = self.starts[run], self.ends[run]
            top = start + int(np.argmax(combined[start:end]))
            scored.append(
                Scored(
                    entry=self.entries[int(self.run_owner[run])],
                    score=float(best[run]),
                    words=float(word_scores[top]),
                    chars=float(char_scores[top]),
                    dense=float(dense[top]),
                )
            )
        first = int(order[0])
        raw = cosines if cosines is not None else np.zeros_like(word_scores)
        by_signal = [np.maximum.reduceat(m, self.starts) for m in (word_scores, char_scores, raw)]
        dense_runs = by_signal[2][:n]
        others = np.delete(dense_runs, first)
        known = sum(1 for t in terms if t in self.word_index.idf)
        if classified is not None:
            rest = np.delete(classified, first)
            clf = float(classified[first])
            clf_lead = clf - (float(rest.max()) if len(rest) else 0.0)
        else:
            clf = clf_lead = 0.0
        outside = float(total[n] - total[first]) if self.outside else -1.0
        base = np.array(
            [
                best[first],
                best[first] - (best[order[1]] if len(order) > 1 else 0.0),
                dense_runs[first],
                dense_runs[first] - (float(others.max()) if len(others) else 0.0),
                by_signal[1][first],
                by_signal[0][first],
                sum(int(np.argmax(v[:n])) == first for v in by_signal),
                coverage[first],
                known / len(terms) if terms else 0.0,
                math.log1p(len(terms)),
                clf,
                clf_lead,
                outside,
                float(classified[n]) if classified is not None and self.outside else 0.0,
            ],
            dtype=np.float64,
        )
        entry_scores = classified[:n] if classified is not None else np.zeros(n)
        runs = len(self.starts)
        near_dense = self.near(raw) if cosines is not None else np.zeros(runs)
        near_combined = self.near(combined)
        # Places among the candidates (not the whole knowledge base, whose size varies).
        chosen_scores, chosen_dense = entry_scores[order], dense_runs[order]
        rows = np.array(
            [
                [
                    total[run],
                    similar[run],
                    coverage[run],
                    entry_scores[run],
                    dense_runs[run],
                    by_signal[1][run],
                    by_signal[0][run],
                    near_dense[run],
                    near_combined[run],
                    np.sort(raw[self.starts[run] : self.ends[run]])[-3:].mean(),
                    place,
                    int(np.sum(chosen_scores > entry_scores[run])),
                    int(np.sum(chosen_dense > dense_runs[run])),
                ]
                for place, run in enumerate(order)
            ],
            dtype=np.float64,
        )
        return Candidates(tuple(scored), rows, base)

    def near(self, scores: Vector) -> NDArray[np.floating]:
        """For each run: its share of the ``NEIGHBOURS`` stored texts that score highest."""
        k = min(NEIGHBOURS, len(scores))
        closest = np.argpartition(-scores, k - 1)[:k]
        counts = np.bincount(self.owners_run[closest], minlength=len(self.starts))
        shares: NDArray[np.floating] = counts / k
        return shares

    def _ranked(self, text: str, limit: int) -> tuple[list[Scored], NDArray[np.floating] | None]:
        """The best entries (reordered by the reranker), and the decision's features."""
        found = self.candidates(text)
        if found is None:
            return [], None
        ranked, features = found.reranked(self.calibration.rerank)
        return ranked[:limit], features

    def coverage(self, terms: set[str]) -> Vector:
        """For each run (entries, then out of scope): the share of the question's words found
        in its wording."""
        counts = np.zeros(len(self.entries) + 1)  # owners: the entries, then out of scope
        for term in terms:
            owners = self.holders.get(term)
            if owners is not None:
                counts[owners] += 1
        shares = counts[self.run_owner] / max(len(terms), 1)
        return shares.astype(np.float32)

    def rank(self, text: str, limit: int = 5) -> list[Scored]:
        return self._ranked(text, limit)[0]

    def features(self, text: str) -> tuple[str | None, NDArray[np.floating] | None]:
        """The best entry's id and the decision's features (for fitting the calibration)."""
        ranked, features = self._ranked(text, 5)
        return (ranked[0].entry.id if ranked else None), features

    def decide(self, text: str, lang: str | None = None) -> Decision:
        key = (text, lang)
        decided = self._decided.get(key)
        if decided is not None:
            self._decided.move_to_end(key)
            return decided
        decided = self._decide(text, lang)
        self._decided[key] = decided
        if len(self._decided) > DECISIONS_KEPT:
            self._decided.popitem(last=False)
        return decided

    def _decide(self, text: str, lang: str | None) -> Decision:
        p = self.params
        lang = language_of(text) or lang or "ar"
        ranked, features = self._ranked(text, 5)
        if not ranked or features is None:
            return Decision(Outcome.NONE, lang, ())
        owner = self.exact.get(exact_form(text))
        if owner is not None and owner < len(self.entries):
            entry = self.entries[owner]
            first = next((s for s in ranked if s.entry.id == entry.id), None)
            first = first or Scored(entry, 1.0, 1.0, 1.0, 1.0)
            rest = tuple(s for s in ranked if s.entry.id != entry.id)
            return Decision(Outcome.ANSWER, lang, (first, *rest), confidence=1.0)
        if owner is not None:  # an out-of-scope example, or a wording two owners share
            return Decision(Outcome.NONE, lang, tuple(ranked), outside=owner == len(self.entries))
        confidence = self.calibration.probability(features)
        if confidence >= self.calibration.threshold:
            return Decision(Outcome.ANSWER, lang, tuple(ranked), confidence=confidence)
        # No choices to offer when an out-of-scope example is closer than every entry.
        nearer_outside = features[FEATURES.index("outside")] > 0
        if ranked[0].score >= p.suggest_threshold and not nearer_outside:
            close = tuple(
                s.entry for s in ranked[: p.suggestions] if s.score >= p.suggest_threshold
            )
            return Decision(Outcome.SUGGEST, lang, tuple(ranked), close, confidence)
        lead = features[FEATURES.index("outside")]
        return Decision(
            Outcome.NONE, lang, tuple(ranked), confidence=confidence, outside=lead >= p.outside_lead
        )
