"""Answer a question with the best units of an index.

Three modes: `semantic` (cosine over unit embeddings through hnswlib), `lexical`
(SQLite FTS5/BM25 over names, split identifiers, path, doc comment and code) and
`hybrid` (both, fused by reciprocal rank). Filters (`--lang`, `--path`) restrict the
candidates before top-k is taken, never after. Each unit appears once, whichever of
its pieces matched.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .ann import AnnIndex
from .chunking import split_identifier
from .errors import CorruptIndexError
from .store import Store

RRF_K = 60
SNIPPET_LINES = 12
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[\u4e00-\u9fff]+")
STOPWORDS = set("""a an the of to in on for from by with and or is are be it its this that how
what which when where do does i we you my me into as at if not no all any can get given
using use""".split())


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_SECONDARY_DIRS = {"test", "tests", "__tests__", "testing", "spec", "specs", "testdata", "fixtures",
                   "examples", "example", "samples", "benchmark", "benchmarks", "bench", "vendor",
                   "third_party", "thirdparty", "external", "node_modules", "dist", "build", "generated",
                   "gen", "mocks", "mock"}
_SECONDARY_FILE = re.compile(
    r"(^test_.*|.*_test\.\w+|.*_tests?\.py|.*Tests?\.(java|cs|kt|scala|swift|php)|.*\.(test|spec)\.[jt]sx?"
    r"|.*\.min\.js|.*\.pb\.go|.*_pb2\.py|.*\.generated\.\w+|.*_generated\.\w+)$")


def is_secondary_path(path: str) -> bool:
    """Tests, examples, vendored and generated code, judged by path alone."""
    parts = path.split("/")
    if any(p.lower() in _SECONDARY_DIRS or p.lower().endswith((".tests", ".test", "tests")) for p in parts[:-1]):
        return True
    return bool(_SECONDARY_FILE.match(parts[-1]))


@dataclass
class RankWeights:
    """How the candidate lists are fused; chosen on the development benchmark (docs/quality.md)."""

    semantic: float = 1.0
    translated: float = 1.0  # the English rendering of a Chinese question
    lexical: float = 0.7
    lexical_zh: float = 0.7
    rrf_k: int = RRF_K
    secondary: float = 0.8  # factor on tests/vendored/generated code
    fusion: str = "convex"  # "convex" (min-max normalised scores) or "rrf" (ranks)


@dataclass
class QueryPlan:
    texts: list[str]
    terms: list[str]
    is_chinese: bool = False


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


def lexical_terms(query: str) -> list[str]:
    """Search terms of a question: words and the parts of identifiers, minus stopwords."""
    terms: list[str] = []
    for word in _WORD.findall(query):
        low = word.lower()
        if low in STOPWORDS:
            continue
        parts = split_identifier(word) if re.match(r"[A-Za-z_]", word) else [word]
        for t in [low, *parts]:
            if t and t not in terms and t not in STOPWORDS:
                terms.append(t)
    return terms


def rrf(rankings: list[list[int]], weights: list[float] | None = None, k: int = RRF_K) -> dict[int, float]:
    """Reciprocal-rank fusion of several best-first lists of ids."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        for rank, uid in enumerate(ranking):
            fused[uid] = fused.get(uid, 0.0) + w / (k + rank + 1)
    return fused


def candidate_pool(k: int) -> int:
    """How many units each signal proposes before fusion (the devset was measured with k=10)."""
    return max(60, 5 * k)


def convex(scored_lists: list[list[tuple[int, float]]], weights: list[float]) -> dict[int, float]:
    """Weighted sum of scores min-max normalised within each list (absent: 0)."""
    fused: dict[int, float] = {}
    for items, w in zip(scored_lists, weights):
        if not items:
            continue
        values = [v for _, v in items]
        lo, hi = min(values), max(values)
        span = (hi - lo) or 1.0
        for uid, v in items:
            fused[uid] = fused.get(uid, 0.0) + w * (v - lo) / span
    return fused


class Searcher:
    def __init__(self, store: Store, embedder=None, embedder_loader=None, translate: bool = True):
        self.store = store
        self.translate = translate
        self._embedder = embedder
        self._loader = embedder_loader
        meta = store.get_meta("model")
        if not meta:
            raise CorruptIndexError("the index has no model record; run `codesearch index --rebuild`")
        self.model_meta = meta
        self.ann = AnnIndex(store.dir, meta["dim"])
        if not self.ann.load(store.live_label_stamp()):
            # stale or missing graph (e.g. a crash after the database commit): rebuild in memory
            self.ann.build(*store.vectors_for_chunks())
        self._unit_of_chunk: dict[int, int] | None = None
        self._secondary: set[int] | None = None

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = self._loader()
        return self._embedder

    def chunk_units(self) -> dict[int, int]:
        if self._unit_of_chunk is None:
            self._unit_of_chunk = dict(self.store.conn.execute("SELECT id, unit_id FROM chunks"))
        return self._unit_of_chunk

    # -- filters ------------------------------------------------------------------------
    def allowed_units(self, langs: list[str] | None, path_globs: list[str] | None) -> set[int] | None:
        if not langs and not path_globs:
            return None
        rows = self.store.conn.execute("SELECT id, path, language FROM units").fetchall()
        out = set()
        for uid, path, language in rows:
            if langs and language not in langs:
                continue
            if path_globs and not any(_path_matches(path, g) for g in path_globs):
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

    def lexical(self, terms: list[str], n: int, allowed_units: set[int] | None) -> list[tuple[int, float]]:
        """Best units by BM25 over the full-text index (names weigh most), best first."""
        if not terms:
            return []
        match = " OR ".join('"%s"' % t.replace('"', '""') for t in terms)
        sql = ("SELECT rowid, bm25(units_fts, 10.0, 2.0, 4.0, 1.0) AS s FROM units_fts "
               "WHERE units_fts MATCH ? ORDER BY s LIMIT ?")
        limit = n if allowed_units is None else n * 20 + 200
        rows = self.store.conn.execute(sql, (match, limit)).fetchall()
        out = [(uid, -s) for uid, s in rows if allowed_units is None or uid in allowed_units]
        return out[:n]

    def plan(self, query: str) -> "QueryPlan":
        """What to look for: the question itself and, for a Chinese question, its English rendering."""
        plan = QueryPlan(texts=[query], terms=lexical_terms(query))
        if _CJK.search(query):
            plan.is_chinese = True
            if not self.translate:
                return plan
            try:
                from .zh import translate
            except ImportError:  # pragma: no cover - zh support is optional at import time
                return plan
            tr = translate(query)
            if tr.english and tr.english != query:
                plan.texts.append(tr.english)
            plan.terms = list(dict.fromkeys(plan.terms + [t.lower() for t in tr.terms]))
        return plan

    def candidates(self, plan: "QueryPlan", pool: int, mode: str, allowed: set[int] | None):
        """Best-first unit lists: one semantic list per query text, then the lexical list."""
        sem_lists: list[list[tuple[int, float]]] = []
        vectors = None
        if mode in ("semantic", "hybrid"):
            vectors = self.embedder.embed_queries(plan.texts)
            sem_lists = [self.semantic(v.reshape(1, -1), pool, allowed) for v in vectors]
        lex = self.lexical(plan.terms, pool, allowed) if mode in ("lexical", "hybrid") else []
        if mode == "hybrid":
            sem_lists, lex = self.complete(vectors, plan.terms, sem_lists, lex)
        return sem_lists, lex

    def complete(self, vectors: np.ndarray, terms: list[str], sem_lists, lex):
        """Score every candidate on every signal, so fusion compares real scores, not absences.

        A unit that only BM25 found gets its true cosine (from the stored vectors), and one that
        only the embedding found gets its true BM25 (0 when no term matches).
        """
        union = {u for lst in sem_lists for u, _ in lst} | {u for u, _ in lex}
        if not union:
            return sem_lists, lex
        units = sorted(union)
        chunks_of: dict[int, list[int]] = {}
        for c, u in self.chunk_units().items():
            if u in union:
                chunks_of.setdefault(u, []).append(c)
        ids, mat = self.store.vectors_for_chunks([c for u in units for c in chunks_of.get(u, [])])
        row_unit = [self.chunk_units()[int(c)] for c in ids]
        out_sem = []
        for vec in vectors:
            sims = mat @ vec.astype(np.float32) if len(ids) else np.zeros(0)
            best: dict[int, float] = {}
            for u, v in zip(row_unit, sims.tolist()):
                if v > best.get(u, -2.0):
                    best[u] = v
            out_sem.append(sorted(best.items(), key=lambda x: -x[1]))
        lex_scores = dict(lex)
        missing = [u for u in units if u not in lex_scores]
        if terms and missing:
            match = " OR ".join('"%s"' % t.replace('"', '""') for t in terms)
            sql = ("SELECT rowid, bm25(units_fts, 10.0, 2.0, 4.0, 1.0) FROM units_fts WHERE units_fts MATCH ? "
                   "AND rowid IN (%s)" % ",".join("?" * len(missing)))
            for uid, score in self.store.conn.execute(sql, [match, *missing]):
                lex_scores[uid] = -score
        out_lex = sorted(((u, lex_scores.get(u, 0.0)) for u in units), key=lambda x: -x[1])
        return out_sem, out_lex

    def rank(self, plan, sem_lists, lex, mode: str, weights: "RankWeights | None" = None):
        """Fuse the candidate lists into one best-first [(unit id, score)] list."""
        w = weights or RankWeights()
        if mode == "lexical":
            ranked = lex
        elif mode == "semantic" and len(sem_lists) == 1:
            ranked = sem_lists[0]
        else:
            lists, ws = [], []
            for i, sem in enumerate(sem_lists):
                lists.append([u for u, _ in sem])
                ws.append(w.semantic if i == 0 else w.translated)
            if mode == "hybrid":
                lists.append([u for u, _ in lex])
                ws.append(w.lexical_zh if plan.is_chinese else w.lexical)
            if w.fusion == "convex":
                scored = [sem for sem in sem_lists] + ([lex] if mode == "hybrid" else [])
                fused = convex(scored, ws)
                best_possible = sum(ws)
            else:
                fused = rrf(lists, ws, w.rrf_k)
                best_possible = sum(ws) / (w.rrf_k + 1)  # first in every list
            ranked = sorted(((u, s / best_possible) for u, s in fused.items()), key=lambda x: -x[1])
        if w.secondary < 1.0 and ranked:
            secondary = self.secondary_units()
            ranked = sorted(((u, s * (w.secondary if u in secondary else 1.0)) for u, s in ranked),
                            key=lambda x: -x[1])
        return ranked

    def secondary_units(self) -> set[int]:
        """Units in tests, examples, vendored or generated code: ranked below source, never hidden."""
        if self._secondary is None:
            rows = self.store.conn.execute("SELECT id, path FROM units")
            self._secondary = {uid for uid, path in rows if is_secondary_path(path)}
        return self._secondary

    def search(self, query: str, k: int = 10, mode: str = "hybrid", langs: list[str] | None = None,
               path_globs: list[str] | None = None, weights: "RankWeights | None" = None) -> list[Hit]:
        allowed = self.allowed_units(langs, path_globs)
        if allowed is not None and not allowed:
            return []
        plan = self.plan(query)
        sem_lists, lex = self.candidates(plan, candidate_pool(k), mode, allowed)
        ranked = self.rank(plan, sem_lists, lex, mode, weights)
        sem_scores = dict(sem_lists[0]) if sem_lists else {}
        return self.hits([u for u, _ in ranked[:k]], dict(ranked), sem_scores)

    def hits(self, unit_ids: list[int], scores: dict[int, float], sem_scores: dict[int, float]) -> list[Hit]:
        if not unit_ids:
            return []
        q = ("SELECT id, path, start_line, end_line, name, qualname, language, kind, signature, doc, code "
             "FROM units WHERE id IN (%s)" % ",".join("?" * len(unit_ids)))
        rows = {r[0]: r for r in self.store.conn.execute(q, unit_ids)}
        out = []
        for uid in unit_ids:
            r = rows.get(uid)
            if r is None:
                continue
            code_lines = r[10].split("\n")
            snippet = "\n".join(code_lines[:SNIPPET_LINES])
            out.append(Hit(path=r[1], start_line=r[2], end_line=r[3], name=r[4], qualname=r[5],
                           language=r[6], kind=r[7], score=scores.get(uid, 0.0), snippet=snippet,
                           signature=r[8], doc=r[9], unit_id=uid,
                           why={"semantic": sem_scores.get(uid)}))
        return out


def _path_matches(path: str, pattern: str) -> bool:
    pattern = pattern.strip("/")
    if not any(ch in pattern for ch in "*?["):
        return path == pattern or path.startswith(pattern + "/")
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, pattern.replace("**/", ""))
