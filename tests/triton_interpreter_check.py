"""Run by test_embed_fast.py in a fresh process with TRITON_INTERPRET=1: the varlen causal
attention Triton kernel on the CPU, alone against the per-sequence reference and inside the
packed forward against the plain transformers forward. Exits non-zero on a mismatch."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codesearch.embedders.gpu import PackedGpuEmbedder  # noqa: E402
from codesearch.embedders.gpu_attention import reference_varlen  # noqa: E402
from codesearch.embedders.gpu_kernels import varlen_causal_attention  # noqa: E402
from codesearch.embedders.hf_model import HFModel  # noqa: E402
from codesearch.embedders.models import spec_from_folder  # noqa: E402
from codesearch.embedders.transformers_loop import TransformersEmbedder  # noqa: E402


def main(folder: str) -> None:
    # fp16 and fp32: the interpreter works through numpy, which has no bfloat16
    for dtype in (torch.float16, torch.float32):
        for lengths, hq, hk, d in [([5, 1, 40, 17], 4, 2, 16), ([33], 2, 2, 32), ([16, 16, 3], 8, 2, 16)]:
            torch.manual_seed(len(lengths) + d)
            t = sum(lengths)
            qkv = torch.randn(t, (hq + 2 * hk) * d).to(dtype)  # strided views, as in the model
            q = qkv[:, :hq * d].view(t, hq, d)
            k = qkv[:, hq * d:(hq + hk) * d].view(t, hk, d)
            v = qkv[:, (hq + hk) * d:].view(t, hk, d)
            cu = torch.tensor([0] + lengths, dtype=torch.int32).cumsum(0).to(torch.int32)
            out = varlen_causal_attention(q, k, v, cu, max(lengths), d ** -0.5)
            ref = reference_varlen(q.float(), k.float(), v.float(), cu, cu, max(lengths), max(lengths), True,
                                   d ** -0.5)
            assert out.shape == (t, hq, d) and out.dtype == dtype
            err = (out.float() - ref).abs().max().item()
            assert err < 5e-3, f"{dtype} {lengths} {hq}/{hk}x{d}: max error {err}"
    print("kernel ok")

    def attention(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale):  # the packed path's routing
        if causal and cu_q is cu_k:
            return varlen_causal_attention(q, k, v, cu_q, max_q, scale)
        return reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale)

    spec = spec_from_folder(Path(folder), "tiny-qwen3")
    plain = TransformersEmbedder(HFModel(spec, "cpu"))
    ids = plain.tokenize(["def read_csv(path):\n    return list(csv.reader(open(path)))", "读取CSV并排序",
                          "x", "SELECT name FROM users ORDER BY 1;" * 4])
    ref = plain.embed_token_ids(ids)
    ours = PackedGpuEmbedder(HFModel(spec, "cpu"), attention=attention).embed_token_ids(ids)
    low = float((ours * ref).sum(axis=1).min())
    assert low > 0.9999, f"min cosine {low}"
    print(f"forward ok (min cosine {low:.6f})")


if __name__ == "__main__":
    main(sys.argv[1])
