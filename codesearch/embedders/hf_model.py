"""A transformers model loaded the way its spec says, and the base of the backends that run it.

`HFModel` holds the tokenizer and the model on one device and knows the model's recipe:
pooling (`last` token for Qwen3-Embedding, `mean` for e5, `cls`), the padding side, whether
an end-of-text token must close every input, Matryoshka truncation and L2 normalisation.
Qwen3-Embedding is used as its model card says: left padding, `<|endoftext|>` at the end,
last-token pooling, `Instruct: ...\\nQuery:` on queries only.

`TokenEmbedder` is what the plain, CPU and GPU backends share: they tokenize the same way and
differ only in how they turn token ids into vectors (`stream_token_ids`).

torch and transformers are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from .base import Batches, DocumentJob, Embedder, Progress
from .device import pick_device, usable_cpus
from .spec import ModelSpec


def torch_unit_rows(vec, dims: int | None):
    """One pooled row per input -> float32, Matryoshka-truncated (first `dims`), unit length."""
    import torch

    vec = vec.float()
    if dims:
        vec = vec[:, :dims]
    return torch.nn.functional.normalize(vec, p=2, dim=1)


class HFModel:
    """Tokenizer + model on one device, with the spec's recipe for inputs and pooling."""

    def __init__(self, spec: ModelSpec, device: str = "auto", dtype: str | None = None,
                 threads: int | None = None):
        from ..phases import phase

        with phase("import torch"):
            import torch
        with phase("import transformers"):
            import transformers
            from transformers import AutoModel, AutoTokenizer

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self.spec = spec
        with phase("device"):
            self.device = pick_device(device)
        if self.device == "cpu":
            torch.set_num_threads(usable_cpus(threads))
        with phase("tokenizer load"):
            self.tokenizer = AutoTokenizer.from_pretrained(spec.source)
        self.dtype = self._dtype(dtype)
        with phase("weights load"):
            model = AutoModel.from_pretrained(spec.source, dtype=self.dtype)
            self.model = model.to(self.device).eval()
        self.eos_id = self.tokenizer.convert_tokens_to_ids("<|endoftext|>") if spec.append_eos else None
        if spec.append_eos and (self.eos_id is None or self.eos_id == self.tokenizer.unk_token_id):
            self.eos_id = self.tokenizer.eos_token_id
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.eos_id if self.eos_id is not None else 0
        self.dim = spec.dims or int(getattr(model.config, "hidden_size"))

    def _dtype(self, dtype: str | None):
        import torch

        if dtype:
            return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
        if self.device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.device == "mps":
            return torch.float16
        return torch.float32  # bf16 on CPUs without native support is several times slower

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text, truncated to the model's limit, EOS appended where the model needs it."""
        limit = self.spec.max_tokens - (1 if self.spec.append_eos else 0)
        enc = self.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=limit,
                             padding=False)["input_ids"]
        if self.spec.append_eos:
            enc = [ids if ids and ids[-1] == self.eos_id else ids + [self.eos_id] for ids in enc]
        return enc

    def pad(self, batch: list[list[int]]):
        """Pad one batch on the model's padding side; returns (input_ids, attention_mask) tensors."""
        import torch

        width = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, seq in enumerate(batch):
            if self.spec.padding_side == "left":
                ids[row, width - len(seq):] = torch.tensor(seq)
                mask[row, width - len(seq):] = 1
            else:
                ids[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
        return ids, mask

    def pool(self, hidden, mask):
        """Pool token states into one vector per row, truncate (Matryoshka) and normalise."""
        import torch

        if self.spec.pooling == "last":
            if self.spec.padding_side == "left":
                vec = hidden[:, -1]
            else:
                last = mask.sum(dim=1) - 1
                vec = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        elif self.spec.pooling == "cls":
            vec = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            vec = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
        return self.pool_vectors(vec)

    def pool_vectors(self, vec):
        return torch_unit_rows(vec, self.spec.dims)

    def forward_ids(self, batch: list[list[int]], model=None) -> np.ndarray:
        """The reference arithmetic: pad, run the stock transformers model (or `model`), pool."""
        import torch

        ids, mask = self.pad(batch)
        if self.device.startswith("cuda"):
            ids, mask = ids.pin_memory(), mask.pin_memory()
        with torch.inference_mode():
            ids = ids.to(self.device, non_blocking=True)
            mask = mask.to(self.device, non_blocking=True)
            out = (model or self.model)(input_ids=ids, attention_mask=mask)
            return self.pool(out.last_hidden_state, mask).cpu().numpy()


class TokenEmbedder(Embedder):
    """A backend over an HFModel: tokenize, then `stream_token_ids` (the backend's own loop)."""

    path = "plain"

    def __init__(self, model: HFModel):
        self.model = model
        self.spec = model.spec
        self.dim = model.dim
        self.device = model.device

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.model.tokenize(texts)

    @abstractmethod
    def stream_token_ids(self, token_ids: list[list[int]], progress: Progress | None = None) -> Batches:
        """Yield (indices, vectors) as they are computed; every index exactly once."""

    def embed_token_ids(self, token_ids: list[list[int]], progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(token_ids), self.dim), dtype=np.float32)
        for indices, vectors in self.stream_token_ids(token_ids, progress):
            out[indices] = vectors
        return out

    def plan(self, total_tokens: int) -> str:
        """Get ready for a job of about `total_tokens` (e.g. compile when that pays) and say how."""
        return f"{self.path} loop"

    def query_tokens(self, text: str) -> int | None:
        """Tokens the question takes with its prompt, EOS included, counted up to the model's
        limit (through the model's own tokenize: a transformers tokenizer or, for checkpoints
        loaded by qwen3_native, a `tokenizers.Tokenizer`, which is not callable)."""
        return len(self.tokenize([self.spec.query_prompt + text])[0])

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_token_ids(self.tokenize([self.spec.query_prompt + t for t in texts]))

    def document_job(self, texts: list[str]) -> DocumentJob:
        token_ids = self.tokenize([self.spec.document_prompt + t for t in texts])
        tokens = sum(len(t) for t in token_ids)
        try:
            estimate = self.estimate_seconds(tokens)
        except Exception:  # noqa: BLE001 - an estimate is never worth failing for
            estimate = None
        return DocumentJob(count=len(texts), tokens=tokens, estimate_s=estimate,
                           run=lambda progress: self.stream_token_ids(token_ids, progress),
                           decide=lambda: self.plan(tokens))
