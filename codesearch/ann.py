"""Approximate nearest-neighbour search with hnswlib, kept in step with SQLite.

hnswlib facts this module is built around:
- `ef` (the query-time beam width) is not saved with the index and defaults to 10, which
  loses recall badly at 1024 dimensions: it is set on every load, to max(EF_SEARCH, 2k).
  bench/ann_recall.py checks top-10 recall against exact search.
- Deleting only hides a label; the graph keeps the node. Updates mark old labels deleted
  and add new ones; once hidden nodes exceed a third of the live ones the graph is rebuilt.
- `k` may not exceed what the graph can return, so it is clamped to the live count.

The file is written to a temporary name and renamed, and a small stamp file records which
chunk ids it holds, the file's size and its CRC-32; a stamp that disagrees with SQLite (a crash
between the two writes) or with the file (a damaged or short file: hnswlib reads a graph with
a few random bytes in it and then crashes the process on the first query) makes the next load
rebuild the graph from the stored vectors. The CRC costs about 0.05 s per 100 MB of graph.
"""

from __future__ import annotations

import errno
import json
import os
import zlib
from pathlib import Path

import numpy as np

from .fsutil import atomic_write

ANN_FILE = "vectors.hnsw"
STAMP_FILE = "vectors.json"
EF_SEARCH = 200
EF_CONSTRUCTION = 200
M = 16


class AnnIndex:
    def __init__(self, index_dir: Path, dim: int):
        self.dir = Path(index_dir)
        self.dim = dim
        self.index = None
        self.deleted = 0
        self.live = 0

    @property
    def path(self) -> Path:
        return self.dir / ANN_FILE

    def _new(self, capacity: int):
        import hnswlib

        index = hnswlib.Index(space="ip", dim=self.dim)  # vectors are unit length: ip == cosine
        index.init_index(max_elements=max(capacity, 16), ef_construction=EF_CONSTRUCTION, M=M,
                         random_seed=42, allow_replace_deleted=False)
        index.set_ef(EF_SEARCH)
        return index

    def build(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.index = self._new(len(ids) + len(ids) // 4)
        if len(ids):
            self.index.add_items(vectors, ids)
        self.deleted = 0
        self.live = len(ids)

    def load(self, stamp: tuple[int, int]) -> bool:
        """Load the saved graph if its stamp matches SQLite's (count, sum) of chunk ids."""
        import hnswlib

        try:
            saved = json.loads((self.dir / STAMP_FILE).read_text())
        except (OSError, ValueError):
            return False
        if tuple(saved.get("stamp", ())) != tuple(stamp) or saved.get("dim") != self.dim \
                or not self.path.exists():
            return False
        if "crc32" in saved and file_crc(self.path) != (saved.get("bytes"), saved["crc32"]):
            return False  # damaged or cut short (stamps before the CRC was recorded are trusted)
        index = hnswlib.Index(space="ip", dim=self.dim)
        try:
            index.load_index(str(self.path), max_elements=saved.get("capacity", 0))
        except (RuntimeError, OSError):
            return False
        index.set_ef(EF_SEARCH)
        self.index = index
        self.deleted = int(saved.get("deleted", 0))
        self.live = int(stamp[0])
        return True

    def update(self, removed: list[int], added_ids: np.ndarray, added_vectors: np.ndarray) -> bool:
        """Apply a change in place; returns False when a full rebuild is the better choice."""
        if self.index is None:
            return False
        if self.deleted + len(removed) > max(1000, (self.live - len(removed) + len(added_ids)) // 3):
            return False
        for label in removed:
            try:
                self.index.mark_deleted(int(label))
            except RuntimeError:
                pass  # already gone
        need = self.index.get_current_count() + len(added_ids)
        if need > self.index.get_max_elements():
            self.index.resize_index(need + need // 4)
        if len(added_ids):
            self.index.add_items(added_vectors, added_ids)
        self.deleted += len(removed)
        self.live += len(added_ids) - len(removed)
        return True

    def save(self, stamp: tuple[int, int]) -> None:
        tmp = self.path.with_suffix(".tmp")
        try:
            self.index.save_index(str(tmp))
            size, crc = file_crc(tmp)
            if size != self.index.index_file_size():  # hnswlib does not report a short write
                raise OSError(errno.ENOSPC, "the ANN graph could not be written whole", str(tmp))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, self.path)
        atomic_write(self.dir / STAMP_FILE, json.dumps({
            "stamp": list(stamp), "dim": self.dim, "deleted": self.deleted,
            "capacity": self.index.get_max_elements(), "bytes": size, "crc32": crc}))

    def search(self, vector: np.ndarray, k: int, allowed: set[int] | None = None):
        """Labels and cosine similarities of the k nearest live chunks (optionally only `allowed`)."""
        if self.index is None or self.live == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        limit = self.live if allowed is None else min(self.live, len(allowed))
        k = min(k, limit)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        self.index.set_ef(max(EF_SEARCH, 2 * k))
        filt = (lambda label: label in allowed) if allowed is not None else None
        try:
            labels, dists = self.index.knn_query(vector.reshape(1, -1), k=k, filter=filt)
        except RuntimeError:
            # hnswlib could not find k results (tiny or heavily filtered graph): ask for fewer
            labels, dists = self.index.knn_query(vector.reshape(1, -1), k=max(1, k // 2), filter=filt)
        return labels[0].astype(np.int64), (1.0 - dists[0]).astype(np.float32)


def file_crc(path: Path) -> tuple[int | None, int | None]:
    """(size, CRC-32) of a file, read in 4 MB blocks; (None, None) when it cannot be read."""
    crc, size = 0, 0
    try:
        with open(path, "rb") as f:
            while block := f.read(1 << 22):
                crc = zlib.crc32(block, crc)
                size += len(block)
    except OSError:
        return None, None
    return size, crc


def exact_search(matrix: np.ndarray, ids: np.ndarray, vector: np.ndarray, k: int):
    """Brute-force cosine top-k: the reference for recall checks and the path for small indexes."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    scores = matrix @ vector.astype(np.float32)
    k = min(k, len(ids))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top])]
    return ids[top], scores[top]
