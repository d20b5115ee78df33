"""A linear query adapter for the offline model, learnt from the repositories' own doc comments.

The English misses on the devset are mostly the right file's neighbouring function: e5-small
puts a question near every function that shares its words. A question-side linear map
q' = normalise(W q), W = I + A, trained so that a doc comment's first sentence (as a question)
lands nearer its own function's code (embedded without the doc) than the other functions of
the same repository, is the cheapest second stage there is: one 384 x 384 product per
question, the index and its vectors unchanged (the idea of Chroma's "embedding adapters"
report, 2024; the code is ours). It needs no labels anyone wrote: every documented function is
a pair.

    # 1. pairs: every documented function or method of the indexed repositories (the
    #    devset's 120 answers left out), its first doc sentence and its code without the doc
    python bench/query_adapter.py pairs --devset ../shared/devset --repos DEV_REPOS --index-root IDX --out /tmp/pairs.npz
    # 2. leave one repository out: eight adapters, each trained on the other seven, each
    #    repository's questions asked with the adapter that never saw it
    python bench/query_adapter.py evaluate --pairs /tmp/pairs.npz --rank 32 --decay 1.0 -- \\
        --devset ../shared/devset --repos DEV_REPOS --index-root IDX --per-language --vector-cache /tmp/qvec.pkl --out r.json

Results: docs/quality.md ("The second step, fifth session").
"""

from __future__ import annotations

import argparse
import json
import re
import runpy
import sqlite3
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_PY_DOCSTRING = re.compile(r'^(\s*)[rRbBuU]{0,2}("""|\'\'\')(.*?)\2[ \t]*\n?', re.S | re.M)
_NOT_PROSE = re.compile(r"^\s*[@{<]|inheritdoc|^todo|copyright|license|deprecated", re.I)


def first_sentence(doc: str, name: str = "") -> str:
    """The doc's first sentence, one line, or '' when it is not prose worth asking. A
    leading name ("Chain returns ...", Go's convention) goes: questions do not start with
    the answer's name."""
    text = _SENTENCE.split(doc.strip(), maxsplit=1)[0]
    text = " ".join(text.split())
    if name and text.split(" ", 1)[0].strip("`'\"") == name:
        text = text.split(" ", 1)[1] if " " in text else ""
    words = text.split()
    if words and words[0][1:].islower() and words[0][:1].isalpha():
        # "Returns the ..." -> "return the ...": the imperative, lower-case style of a question
        first = words[0].lower()
        if re.fullmatch(r"[a-z]{3,}(?<![sui])s", first):
            first = first[:-2] if re.search(r"(sh|ch|x|ss)es$", first) else first[:-1]
        words[0] = first
        text = " ".join(words)
    if len(words) < 4 or len(words) > 40 or _NOT_PROSE.search(text):
        return ""
    return text


def passage_without_doc(row) -> str:
    """What the index embeds for the unit (chunking.header + code, first piece), without
    its doc: a Python docstring is cut from the code as well."""
    _, path, _, _, _, qualname, language, _, _, _, code = row
    if language == "python":
        code = _PY_DOCSTRING.sub("", code, count=1)
    return f"{path} {qualname}\n{code}"[:1500]


def devset_repos(devset: Path, repos: Path):
    for r in json.loads((devset / "repos.json").read_text()):
        root = repos / r["repo"].replace("/", "+")
        yield r, (root / r["subdir"] if r.get("subdir") else root)


def cmd_pairs(args) -> int:
    from codesearch.app import Embedders, resolve_spec
    from codesearch.paths import index_dir_for
    from codesearch.ranking import is_secondary_path
    from codesearch.settings import load_settings

    queries = [json.loads(l) for l in (args.devset / "queries.jsonl").read_text().splitlines() if l.strip()]
    answers = {(q["repo"], q["target"]["path"], q["target"]["qualname"]) for q in queries}
    embedders = Embedders(load_settings().with_flags(device="cpu"))
    qs, ps, repo_of = [], [], []
    for r, repo_dir in devset_repos(args.devset, args.repos):
        prefix = (r["subdir"].strip("/") + "/") if r.get("subdir") else ""
        db = sqlite3.connect(f"file:{index_dir_for(repo_dir, args.index_root) / 'index.db'}?mode=ro", uri=True)
        rows = db.execute("SELECT id, path, start_line, end_line, name, qualname, language, kind, signature, doc, code "
                          "FROM units WHERE kind IN ('function', 'method') AND doc != ''").fetchall()
        model = json.loads(db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()[0])["id"]
        db.close()
        n = 0
        for row in rows:
            path, qualname = row[1], row[5]
            if is_secondary_path(path) or (r["repo"], prefix + path, qualname) in answers:
                continue
            s = first_sentence(row[9], row[4])
            if not s:
                continue
            qs.append(s)
            ps.append(passage_without_doc(row))
            repo_of.append(r["repo"])
            n += 1
        print(f"{r['repo']}: {n} pairs", flush=True)
    spec = resolve_spec(None, model)
    t = time.perf_counter()
    qv = embedders.for_queries(spec).embed_queries(qs)
    print(f"questions embedded, {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    pv = embedders.for_documents(spec, ps).embed_documents(ps)
    print(f"passages embedded, {time.perf_counter() - t:.0f} s", flush=True)
    embedders.close()
    np.savez(args.out, q=qv, p=pv, repo=np.array(repo_of), text=np.array(qs))
    return 0


def train(q: np.ndarray, p: np.ndarray, repos: np.ndarray, rank: int, decay: float, epochs: int,
          temperature: float = 0.05, seed: int = 0, same_repo: bool = False) -> np.ndarray:
    """W = I + U V^T, trained with InfoNCE: each question against every passage of the
    training set (its own is the positive), plus `decay` x ||U V^T||^2 toward the identity.
    `same_repo`: against its own repository's passages only (the neighbours a search must
    tell apart, not another language's code)."""
    import torch

    torch.manual_seed(seed)
    Q = torch.from_numpy(q).float()
    P = torch.from_numpy(p).float()
    d = Q.shape[1]
    U = torch.nn.Parameter(torch.zeros(d, rank))
    V = torch.nn.Parameter(torch.randn(d, rank) * 0.01)
    opt = torch.optim.Adam([U, V], lr=1e-3)
    target = torch.arange(len(Q))
    _, repo_ids = np.unique(repos, return_inverse=True)
    R = torch.from_numpy(repo_ids)
    for _ in range(epochs):
        for idx in torch.randperm(len(Q)).split(256):
            qa = Q[idx] + (Q[idx] @ V) @ U.T
            qa = qa / qa.norm(dim=1, keepdim=True)
            logits = qa @ P.T / temperature
            if same_repo:
                logits = logits.masked_fill(R[idx][:, None] != R[None, :], float("-inf"))
            loss = torch.nn.functional.cross_entropy(logits, target[idx]) + decay * ((U @ V.T) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return (torch.eye(d) + V @ U.T).detach().numpy()  # q' = q W (row vectors)


def patch_adapters(adapters: dict[str, np.ndarray], only_english: bool) -> None:
    """Searcher.candidates with the question vectors mapped by the adapter of the repository
    whose index is open (its key: the repository's name as the index folder starts)."""
    from codesearch import search as search_module

    first_stage = search_module.Searcher.candidates

    def candidates(self, plan, pool, mode, allowed):
        folder = Path(self.store.dir).name
        w = next((m for name, m in adapters.items() if folder.startswith(name)), None)
        if w is None or (only_english and plan.is_chinese):
            return first_stage(self, plan, pool, mode, allowed)
        inner = self.embedder
        original = inner.embed_queries

        def mapped(texts):
            v = original(texts) @ w
            return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

        inner.embed_queries = mapped
        try:
            return first_stage(self, plan, pool, mode, allowed)
        finally:
            inner.embed_queries = original

    search_module.Searcher.candidates = candidates


def folder_key(repo: str, devset: Path) -> str:
    r = next(x for x in json.loads((devset / "repos.json").read_text()) if x["repo"] == repo)
    return r["subdir"].strip("/").split("/")[-1] + "-" if r.get("subdir") else repo.replace("/", "+") + "-"


def cmd_evaluate(args, rest: list[str]) -> int:
    data = np.load(args.pairs)
    repos = sorted(set(data["repo"]))
    devset = Path(rest[rest.index("--devset") + 1])
    adapters = {}
    for held in repos:
        keep = data["repo"] != held if not args.all else np.ones(len(data["repo"]), bool)
        if args.subsample < 1:  # a learning curve: would more pairs help?
            keep &= np.random.default_rng(0).random(len(keep)) < args.subsample
        t = time.perf_counter()
        w = train(data["q"][keep], data["p"][keep], data["repo"][keep], args.rank, args.decay, args.epochs,
                  args.temperature, same_repo=args.same_repo)
        moved = np.linalg.norm(w - np.eye(len(w)))
        print(f"# adapter without {held}: {int(keep.sum())} pairs, ||W - I|| {moved:.3f}, "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        adapters[folder_key(held, devset)] = w
    patch_adapters(adapters, args.only_english)
    return run_devset_eval(rest)


def run_devset_eval(rest: list[str]) -> int:
    """devset_eval.py in this process (whose Searcher a probe has patched), with `rest`."""
    sys.argv = ["devset_eval.py", *rest]
    runpy.run_path(str(ROOT / "bench" / "devset_eval.py"), run_name="__main__")
    return 0


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(this script's arguments, devset_eval.py's: those after `--`)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def add_index_args(p: argparse.ArgumentParser) -> None:
    """The devset, its work trees, their indexes, and where the result goes."""
    p.add_argument("--devset", type=Path, required=True)
    p.add_argument("--repos", type=Path, required=True)
    p.add_argument("--index-root", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)


def main() -> int:
    argv, rest = split_argv(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    add_index_args(sub.add_parser("pairs"))
    e = sub.add_parser("evaluate")
    e.add_argument("--pairs", type=Path, required=True)
    e.add_argument("--rank", type=int, default=32)
    e.add_argument("--decay", type=float, default=1.0)
    e.add_argument("--epochs", type=int, default=20)
    e.add_argument("--temperature", type=float, default=0.05)
    e.add_argument("--only-english", action="store_true")
    e.add_argument("--subsample", type=float, default=1.0, help="train on this share of the pairs")
    e.add_argument("--same-repo", action="store_true", help="negatives from the question's own repository only")
    e.add_argument("--all", action="store_true", help="train on every repository (not held out: optimistic)")
    args = ap.parse_args(argv)
    return cmd_pairs(args) if args.cmd == "pairs" else cmd_evaluate(args, rest)


if __name__ == "__main__":
    sys.exit(main())
