"""Answer a question with the best units of an index.

Three modes: `semantic` (cosine over unit embeddings through hnswlib), `lexical`
(SQLite FTS5/BM25 over names, split identifiers, path, doc comment and code) and
`hybrid` (both, every candidate scored on both signals, then fused; codesearch/ranking.py).
Filters (`--lang`, `--path`: gitignore patterns, pathmatch.PathFilter) restrict the candidates
before top-k is taken, never after.
Each unit appears once, whichever of its pieces matched.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from .ann import AnnIndex
from .errors import CorruptIndexError
from .pathmatch import PathFilter
from .phases import phase
from .question import QueryPlan, plan_question
from .ranking import (Calibration, RankWeights, calibrate, candidate_pool, credit_calls, demote, fuse,
                      is_constructor, reweigh, size_factor)
from .relations import Candidate, calls_among, named_after
from .store import Store

SNIPPET_LINES = 12
# questions no code answers, asked of each index once to find the cosine that means "nothing"
# (ranking.Calibration.floor); kept apart from the nonsense that bench/threshold_data.py evaluates
NULL_QUESTIONS = ("zorbly quaffen trinde", "a sunny afternoon at the beach", "my grandmother's apple pie",
                  "the orchestra played a symphony", "周末一起去看电影吧", "窗外的小鸟在唱歌")


def measure_noise_floor(embedder, ann, facet_chunks: dict[int, str] | None = None) -> float:
    """The median best cosine of NULL_QUESTIONS among an index's code pieces (ranking.Calibration;
    facet vectors, `facet_chunks`, are skipped: scores are calibrated on code cosines)."""
    tops = []
    facet_chunks = facet_chunks or {}
    for vec in embedder.embed_queries(list(NULL_QUESTIONS)):
        labels, scores = ann.search(vec, 32 if facet_chunks else 1, None)
        code = [float(s) for label, s in zip(labels.tolist(), scores.tolist()) if label not in facet_chunks]
        if code or len(scores):
            tops.append(code[0] if code else float(scores[0]))
    return float(np.median(tops)) if tops else Calibration().floor


@dataclass
class Candidates:
    """A question's candidate units on every signal (Searcher.candidates), before fusion."""

    semantic: list[list[tuple[int, float]]]  # per query text: units by their best code piece
    lexical: list[tuple[int, float]]  # BM25
    # per query text: facet kind (chunking.unit_facets) -> units by that facet's cosine
    facets: list[dict[str, list[tuple[int, float]]]] = field(default_factory=list)


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


class Searcher:
    """Search over one open index. `embedder_loader` is called the first time a question
    must be embedded (lexical-only searches never load a model)."""

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
        self._chunk_kinds: dict[int, str] | None = None
        self._secondary: set[int] | None = None
        self._roles: tuple[set[int], set[int]] | None = None
        self._lines: dict[int, int] = {}
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
                    self._floor = measure_noise_floor(self.embedder, self.ann, self.chunk_kinds())
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
    def chunk_kinds(self) -> dict[int, str]:
        """chunk id -> kind for the chunks that are not code pieces (chunking.unit_facets)."""
        if self._chunk_kinds is None:
            self._chunk_kinds = self.store.chunk_kinds()
        return self._chunk_kinds

    def semantic_by_kind(self, vector: np.ndarray, n: int,
                         allowed_units: set[int] | None) -> dict[str, list[tuple[int, float]]]:
        """kind -> best units by cosine of their best vector of that kind, best first (the
        `code` list holds each unit's best piece; facet kinds have one vector a unit)."""
        chunk_units = self.chunk_units()
        kinds = self.chunk_kinds()
        allowed_chunks = None
        if allowed_units is not None:
            allowed_chunks = {c for c, u in chunk_units.items() if u in allowed_units}
        # facets share the graph with code pieces: look deeper so each kind still gets n units
        k = n * (6 if kinds else 3) + 10
        best: dict[str, dict[int, float]] = {"code": {}}
        labels, scores = self.ann.search(vector.reshape(-1), k, allowed_chunks)
        for label, score in zip(labels.tolist(), scores.tolist()):
            uid = chunk_units.get(label)
            if uid is None:
                continue
            of_kind = best.setdefault(kinds.get(label, "code"), {})
            if score > of_kind.get(uid, -2.0):
                of_kind[uid] = score
        return {kind: sorted(b.items(), key=lambda x: -x[1])[:n] for kind, b in best.items()}

    def semantic(self, query_vectors: np.ndarray, n: int, allowed_units: set[int] | None) -> list[tuple[int, float]]:
        """Best units by cosine of their best code piece, one entry per unit, best first."""
        best: dict[int, float] = {}
        for vec in query_vectors:
            for uid, score in self.semantic_by_kind(vec, n, allowed_units)["code"]:
                if score > best.get(uid, -2.0):
                    best[uid] = score
        return sorted(best.items(), key=lambda x: -x[1])[:n]

    def lexical(self, terms: list[str], n: int, allowed_units: set[int] | None) -> list[tuple[int, float]]:
        """Best units by BM25 over the full-text index (names weigh most), best first."""
        if not terms:
            return []
        limit = n if allowed_units is None else n * 20 + 200
        rows = self.store.lexical_search(terms, limit)
        return [(uid, s) for uid, s in rows if allowed_units is None or uid in allowed_units][:n]

    def plan(self, query: str) -> QueryPlan:
        return plan_question(query, self.translate)

    @staticmethod
    def candidate_key(weights: RankWeights | None = None) -> tuple:
        """The settings that change the candidate lists (the rest only change their fusion)."""
        return ()

    def candidates(self, plan: QueryPlan, pool: int, mode: str, allowed: set[int] | None,
                   weights: RankWeights | None = None) -> "Candidates":
        """Best-first unit lists: per query text, code and facets; then the lexical list."""
        per_text: list[dict[str, list[tuple[int, float]]]] = []
        vectors = None
        if mode in ("semantic", "hybrid"):
            embedder = self.embedder
            with phase("embed question"):
                vectors = embedder.embed_queries(plan.texts)
            per_text = [self.semantic_by_kind(v, pool, allowed) for v in vectors]
        cands = Candidates(semantic=[d.pop("code") for d in per_text], facets=per_text,
                           lexical=self.lexical(plan.terms, pool, allowed) if mode in ("lexical", "hybrid") else [])
        if mode == "hybrid":
            self.complete(vectors, plan.terms, cands)
        return cands

    def complete(self, vectors: np.ndarray, terms: list[str], cands: "Candidates") -> None:
        """Score every candidate on every signal, so fusion compares real scores, not absences.

        A unit that only BM25 (or one facet) found gets its true cosines (from the stored
        vectors: its best code piece and each facet it has), and one that only the embedding
        found gets its true BM25 (0 when no term matches).
        """
        union = {u for lst in cands.semantic for u, _ in lst} | {u for u, _ in cands.lexical}
        union |= {u for d in cands.facets for lst in d.values() for u, _ in lst}
        if not union:
            return
        units = sorted(union)
        chunk_units = self.chunk_units()
        kinds = self.chunk_kinds()
        chunks = sorted((c for c, u in chunk_units.items() if u in union), key=lambda c: (chunk_units[c], c))
        ids, mat = self.store.vectors_for_chunks(chunks)
        row_unit = [chunk_units[int(c)] for c in ids]
        row_kind = [kinds.get(int(c), "code") for c in ids]
        cands.semantic, cands.facets = [], []
        for vec in vectors:
            sims = mat @ vec.astype(np.float32) if len(ids) else np.zeros(0)
            best: dict[str, dict[int, float]] = {"code": {}}
            for u, kind, v in zip(row_unit, row_kind, sims.tolist()):
                of_kind = best.setdefault(kind, {})
                if v > of_kind.get(u, -2.0):
                    of_kind[u] = v
            ordered = {kind: sorted(b.items(), key=lambda x: -x[1]) for kind, b in best.items()}
            cands.semantic.append(ordered.pop("code"))
            cands.facets.append(ordered)
        lex_scores = dict(cands.lexical)
        missing = [u for u in units if u not in lex_scores]
        if terms and missing:
            lex_scores.update(self.store.lexical_scores(terms, missing))
        cands.lexical = sorted(((u, lex_scores.get(u, 0.0)) for u in units), key=lambda x: -x[1])

    def rank(self, plan: QueryPlan, cands: "Candidates", mode: str, weights: RankWeights | None = None):
        """Fuse the candidate lists into one best-first [(unit id, score)] list."""
        w = weights or RankWeights()
        ranked = fuse(cands.semantic, cands.lexical, mode, plan.is_chinese, w, cands.facets)
        if w.caller > 0 or w.tested > 0:
            ranked = self.credit_calls(ranked, w)
        ranked = demote(ranked, self.secondary_units(), w.secondary)
        if w.constructor < 1.0 or w.file_unit < 1.0:
            ctors, files = self.unit_roles()
            ranked = demote(ranked, ctors, w.constructor)
            ranked = demote(ranked, files, w.file_unit)
        if w.size_prior > 0:
            lines = self.unit_lines()
            ranked = reweigh(ranked, lambda u: size_factor(lines.get(u, 1), w.size_prior, w.size_full))
        return ranked

    def credit_calls(self, ranked: list[tuple[int, float]], w: RankWeights) -> list[tuple[int, float]]:
        """ranking.credit_calls over the calls among the best `w.graph_top` candidates."""
        top = ranked[: w.graph_top]
        rows = self.store.units_by_id([u for u, _ in top])
        tests = self.secondary_units()
        cands = [Candidate(uid=u, name=rows[u][4], kind=rows[u][7], language=rows[u][6], code=rows[u][10],
                           qualname=rows[u][5], test=u in tests) for u, _ in top if u in rows]
        calls = calls_among(cands)
        if w.tested_named:
            calls = {a: bs for a, bs in calls.items() if a not in tests} | named_after(cands, calls)
        return credit_calls(top, calls, self.secondary_units(), w.caller, w.tested) + ranked[w.graph_top:]

    def unit_roles(self) -> tuple[set[int], set[int]]:
        """(constructors, whole-file units), read once per open index."""
        if self._roles is None:
            ctors, files, lines = set(), set(), {}
            for uid, kind, language, name, qualname, n_lines in self.store.unit_roles():
                lines[uid] = n_lines
                if kind == "file":
                    files.add(uid)
                elif is_constructor(language, name, qualname):
                    ctors.add(uid)
            self._roles = (ctors, files)
            self._lines = lines
        return self._roles

    def unit_lines(self) -> dict[int, int]:
        """unit id -> its number of lines, read once per open index (with unit_roles)."""
        self.unit_roles()
        return self._lines

    def search(self, query: str, k: int = 10, mode: str = "hybrid", langs: list[str] | None = None,
               path_globs: list[str] | None = None, weights: RankWeights | None = None) -> list[Hit]:
        allowed = self.allowed_units(langs, path_globs)
        if allowed is not None and not allowed:
            return []
        plan = self.plan(query)
        cands = self.candidates(plan, candidate_pool(k), mode, allowed, weights)
        ranked = self.rank(plan, cands, mode, weights)[:k]
        scored = calibrate(ranked, cands.semantic, cands.lexical, mode, self.calibration(mode))
        sem_scores = dict(cands.semantic[0]) if cands.semantic else {}
        return self.hits([u for u, _ in scored], dict(scored), sem_scores, fused=dict(ranked),
                         lexical=dict(cands.lexical))

    def hits(self, unit_ids: list[int], scores: dict[int, float], sem_scores: dict[int, float],
             fused: dict[int, float] | None = None, lexical: dict[int, float] | None = None) -> list[Hit]:
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
                                "fused": (fused or {}).get(uid)}))
        return out

