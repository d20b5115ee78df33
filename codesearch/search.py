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


class Searcher:
    def __init__(self, store: Store, embedder=None, embedder_loader=None):
        self.store = store
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

    def search(self, query: str, k: int = 10, mode: str = "hybrid", langs: list[str] | None = None,
               path_globs: list[str] | None = None) -> list[Hit]:
        allowed = self.allowed_units(langs, path_globs)
        if allowed is not None and not allowed:
            return []
        pool = max(50, 5 * k)
        sem: list[tuple[int, float]] = []
        lex: list[tuple[int, float]] = []
        if mode in ("semantic", "hybrid"):
            sem = self.semantic(self.embedder.embed_queries([query]), pool, allowed)
        if mode in ("lexical", "hybrid"):
            lex = self.lexical(lexical_terms(query), pool, allowed)
        if mode == "semantic":
            ranked = sem
        elif mode == "lexical":
            ranked = lex
        else:
            weights = [1.0, 1.0]
            fused = rrf([[u for u, _ in sem], [u for u, _ in lex]], weights)
            best_possible = sum(weights) / (RRF_K + 1)  # first in every list
            ranked = sorted(((u, s / best_possible) for u, s in fused.items()), key=lambda x: -x[1])
        sem_scores = dict(sem)
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
