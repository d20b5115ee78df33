"""Qwen3-family embedding models straight from their checkpoint, without transformers.

The packed forward (gpu_packed.py) needs only the weights, and a tokenizer needs only
tokenizer.json. Loading through transformers costs far more than the work of a question: on
this project's 2-core machine `import transformers` took 1.3-3.5 s, `AutoTokenizer` 1.5-5 s and
`AutoModel.from_pretrained` of the 0.6B checkpoint 7 s, against 0.02 s to open the same
weights memory-mapped with safetensors and 0.3-1.5 s for `tokenizers.Tokenizer.from_file`
(bench/cold_start.py has the phase-by-phase figures). So for Qwen3/Qwen2 checkpoints this
module reads config.json, opens model.safetensors (or the shards an index names) directly onto
the device, merges the projections into the packed layout and tokenizes with the `tokenizers`
library, exactly as transformers' fast tokenizer does (same tokenizer.json, same truncation,
same post-processor); tests/test_qwen3_native.py checks ids and vectors against transformers.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..phases import phase
from .device import native_bf16, pick_device
from .gpu_packed import DECODER_TYPES, DecoderWeights, merge_layer, rope_frequencies
from .hf_model import torch_unit_rows
from .spec import ModelSpec


def native_config(spec: ModelSpec) -> dict | None:
    """The checkpoint's config when this module can load it (a local Qwen3/Qwen2 folder with
    safetensors weights and a tokenizer.json, default RoPE), else None."""
    folder = Path(spec.source)
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if config.get("model_type") not in DECODER_TYPES or not (folder / "tokenizer.json").is_file():
        return None
    if rope_settings(config)[1] not in ("default", None):
        return None
    if not ((folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file()):
        return None
    return config


def rope_settings(config: dict) -> tuple[float, str | None]:
    """(theta, rope type) from either spelling of the config: transformers 5 writes
    `rope_parameters: {rope_theta, rope_type}`, checkpoints of the transformers 4 era (the
    published Qwen3-Embedding ones) `rope_theta` and `rope_scaling` at the top."""
    params = config.get("rope_parameters") or {}
    scaling = config.get("rope_scaling") or {}
    theta = params.get("rope_theta", config.get("rope_theta", 10000.0))
    kind = params.get("rope_type") or scaling.get("rope_type") or scaling.get("type") or "default"
    return float(theta), kind


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        return [folder / n for n in names]
    return [folder / "model.safetensors"]


def _choose_dtype(device: str, stored, requested: str | None):
    import torch

    if requested:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[requested]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu":
        return torch.bfloat16 if native_bf16() else torch.float32
    return stored


class NativeDecoderModel:
    """Tokenizer + packed-layout weights of a Qwen3-family checkpoint on one device."""

    def __init__(self, spec: ModelSpec, device: str = "auto", dtype: str | None = None, threads: int | None = None):
        config = native_config(spec)
        if config is None:
            raise ValueError(f"{spec.source} is not a Qwen3/Qwen2 checkpoint this loader reads")
        with phase("import torch"):
            import torch
        from .device import usable_cpus

        self.spec = spec
        with phase("device"):
            self.device = pick_device(device)
        if self.device == "cpu":
            torch.set_num_threads(usable_cpus(threads))
        folder = Path(spec.source)
        with phase("tokenizer load"):
            self.tokenizer = self._tokenizer(folder)
        with phase("weights load"):
            self.weights = self._weights(folder, config, dtype)
        self.dtype = self.weights.dtype
        self.dim = spec.dims or int(config["hidden_size"])
        eos = self.tokenizer.token_to_id("<|endoftext|>")
        self.eos_id = eos if eos is not None else config.get("eos_token_id")
        self.pad_id = self.eos_id if self.eos_id is not None else 0

    def _tokenizer(self, folder: Path):
        import tokenizers

        tk = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        tk.no_padding()
        limit = self.spec.max_tokens - (1 if self.spec.append_eos else 0)
        tk.enable_truncation(max_length=limit)  # what transformers' fast tokenizer does with max_length
        return tk

    def _weights(self, folder: Path, config: dict, requested_dtype: str | None) -> DecoderWeights:
        import torch
        from safetensors import safe_open

        tensors = {}
        # straight onto the GPU; on the CPU the tensors stay memory-mapped until converted
        target = self.device if self.device.startswith("cuda") else "cpu"
        for path in _weight_files(folder):
            with safe_open(str(path), framework="pt", device=target) as f:
                for key in f.keys():
                    tensors[key.removeprefix("model.")] = f.get_tensor(key)
        stored = tensors["embed_tokens.weight"].dtype
        dtype = _choose_dtype(self.device, stored, requested_dtype)
        dev = torch.device(self.device)

        def t(name: str, optional: bool = False):
            x = tensors.pop(name, None)
            if x is None:
                if optional:
                    return None
                raise ValueError(f"{folder}: the checkpoint has no tensor {name}")
            return x.to(device=dev, dtype=dtype)

        hq = int(config["num_attention_heads"])
        hk = int(config.get("num_key_value_heads") or hq)
        d = int(config.get("head_dim") or int(config["hidden_size"]) // hq)
        qk_norm = "layers.0.self_attn.q_norm.weight" in tensors
        layers = []
        with torch.no_grad():
            for i in range(int(config["num_hidden_layers"])):
                p = f"layers.{i}."
                a = p + "self_attn."
                layers.append(merge_layer(
                    t(p + "input_layernorm.weight"), t(a + "q_proj.weight"), t(a + "k_proj.weight"),
                    t(a + "v_proj.weight"), t(a + "q_proj.bias", True), t(a + "k_proj.bias", True),
                    t(a + "v_proj.bias", True), t(a + "q_norm.weight", not qk_norm), t(a + "k_norm.weight", not qk_norm),
                    t(a + "o_proj.weight"), t(p + "post_attention_layernorm.weight"), t(p + "mlp.gate_proj.weight"),
                    t(p + "mlp.up_proj.weight"), t(p + "mlp.down_proj.weight")))
            embed = t("embed_tokens.weight")
            norm_w = t("norm.weight")
        return DecoderWeights(hq=hq, hk=hk, d=d, inter=int(config["intermediate_size"]),
                              eps=float(config.get("rms_norm_eps", 1e-6)), qk_norm=qk_norm, layers=layers,
                              norm_w=norm_w, embed=embed,
                              inv_freq=rope_frequencies(d, rope_settings(config)[0], dev),
                              max_pos=int(config.get("max_position_embeddings", 32768)))

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated to the model's limit, EOS appended where the model needs it."""
        enc = [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]
        if self.spec.append_eos:
            enc = [ids if ids and ids[-1] == self.eos_id else ids + [self.eos_id] for ids in enc]
        return enc

    def pool_vectors(self, vec):
        return torch_unit_rows(vec, self.spec.dims)
