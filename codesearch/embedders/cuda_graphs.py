"""CUDA graphs for short single inputs (questions) through the packed forward.

Launching ~600 small kernels one by one from Python costs far more than running them; a
graph replays them all at once (batch-1 query 1.45 ms on an H100, docs/embedding.md).
"""

from __future__ import annotations

from .gpu_packed import PackedDecoder

GRAPH_BUCKETS = (32, 64, 128, 256, 512)


class GraphedShort:
    """One short input (a query) through a CUDA graph of the packed forward.

    Launching ~600 small kernels one by one from Python costs far more than running them;
    a graph replays them all at once. The input is padded to a bucket size by a second,
    separate sequence of pad tokens (causal varlen attention keeps the two apart), so one
    graph per bucket serves every length up to it."""

    def __init__(self, packed: PackedDecoder, bucket: int, pad_id: int):
        import torch

        dev = packed.device
        b = self.bucket = bucket
        # one static int64 buffer: ids[b], positions[b], cu_seqlens[3], end rows[2]
        init = [pad_id] * b + list(range(b)) + [0, b - 1, b] + [b - 2, b - 1]
        self.buf = torch.tensor(init, dtype=torch.long, device=dev)
        self.host = torch.empty(2 * b + 5, dtype=torch.long, pin_memory=True)
        self.pad_id = pad_id
        packed.tables(b)

        def run():
            buf = self.buf
            return packed.forward(buf[:b], buf[b:2 * b], buf[2 * b:2 * b + 3].to(torch.int32), b,
                                  buf[2 * b + 3:])

        stream = torch.cuda.Stream(dev)
        stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(2):  # warm the kernels (and any compilation) outside the capture
                run()
        torch.cuda.current_stream(dev).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(self.graph):
            self.out = run()

    def __call__(self, seq: list[int]):
        n, b = len(seq), self.bucket
        row = list(seq) + [self.pad_id] * (b - n) + list(range(n)) + list(range(b - n)) + [0, n, b, n - 1, b - 1]
        self.host.copy_(torch_tensor(row))
        self.buf.copy_(self.host, non_blocking=True)
        self.graph.replay()
        return self.out[0:1]


def torch_tensor(values):
    import torch

    return torch.tensor(values, dtype=torch.long)

