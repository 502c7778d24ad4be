"""The retrieval index of an RVC voice: faiss ``IVF...,Flat`` over the voice's training content features.

At conversion time each content frame is replaced, in part (``index_rate``), by an inverse-square-distance
weighted mean of its 8 nearest training frames, which pulls the timbre toward the voice. ``blend`` reproduces
RVC's float arithmetic; ``build_index`` its training recipe; ``merge_indexes`` serves voice merging.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import ModelError, UsageError

ADD_BATCH = 8192  # RVC adds vectors in batches of this size
MAX_TRAIN = 200_000  # above this many vectors the IVF quantizer trains on a fixed-seed sample
SEED = 0


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - faiss-cpu is a dependency of the RVC engine
        raise ModelError("The RVC engine needs faiss for voice indexes.", hint="pip install faiss-cpu") from e
    return faiss


class RetrievalIndex:
    """A faiss index and its vectors (``reconstruct_n(0, ntotal)``, as RVC keeps them)."""

    def __init__(self, index: Any, name: str = "index"):
        self.index, self.name = index, name
        self.dim: int = int(index.d)
        self.ntotal: int = int(index.ntotal)
        self.vectors: np.ndarray = np.ascontiguousarray(index.reconstruct_n(0, self.ntotal), dtype=np.float32)

    @classmethod
    def load(cls, path: Path) -> RetrievalIndex:
        """Read a ``.index`` file (IVF or flat); any failure is a ModelError naming the file."""
        faiss, path = _faiss(), Path(path)
        try:
            data = np.fromfile(path, dtype=np.uint8)
            index = faiss.deserialize_index(data)
            if index.ntotal == 0:
                raise ValueError("it holds no vectors")
            return cls(index, path.name)
        except (OSError, RuntimeError, ValueError) as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ModelError(
                f"Cannot read the voice index {path.name}: {why}",
                hint="Re-download the voice's .index file, or convert without an index (index rate 0).",
            ) from e

    def search(self, feats: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss search (distances, ids) after checking the feature size."""
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise ModelError(
                f"The voice index {self.name} holds {self.dim}-dim features but the content features "
                f"are {feats.shape[-1]}-dim.",
                hint="A v1 voice needs a 256-dim index, a v2 voice a 768-dim one.",
            )
        return self.index.search(feats, k)

    def blend(self, feats: np.ndarray, index_rate: float, k: int = 8) -> np.ndarray:
        """RVC's retrieval: ``index_rate * weighted_neighbours + (1 - index_rate) * feats``, float32 (T, dim)."""
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if index_rate == 0:
            return feats.copy()
        score, ix = self.search(feats, k)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.square(1 / score)
            weight /= weight.sum(axis=1, keepdims=True)
        bad = ~np.isfinite(weight).all(axis=1)
        if bad.any():  # where RVC gets NaN: a frame equal to stored vector(s) (use them), or no neighbour (keep it)
            hit = (score[bad] == 0) & (ix[bad] >= 0)
            weight[bad] = hit / np.maximum(hit.sum(axis=1, keepdims=True), 1)
        retrieved = np.sum(self.vectors[ix] * np.expand_dims(weight, axis=2), axis=1)
        lost = bad & (weight.sum(axis=1) == 0)
        retrieved[lost] = feats[lost]
        # as RVC does it in torch: each Python-float factor rounded to float32
        return retrieved * np.float32(index_rate) + np.float32(1 - index_rate) * feats

    def save(self, path: Path) -> None:
        """Write atomically: a temporary file in the same folder, then rename."""
        path = Path(path)
        data = _faiss().serialize_index(self.index)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                data.tofile(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# Run in a child held to a memory budget: faiss allocates (and zeroes) every size a file declares before reading it,
# so a 200-byte index declaring a terabyte of vectors would take the whole machine down with the process.
_PROBE = """
import os, resource, sys
import numpy as np, faiss
path, budget = sys.argv[1], int(sys.argv[2])
with open("/proc/self/status") as f:
    vm = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + budget, resource.getrlimit(resource.RLIMIT_AS)[1]))
try:
    index = faiss.deserialize_index(np.fromfile(path, dtype=np.uint8))
    index.reconstruct_n(0, index.ntotal)
except MemoryError:
    sys.exit("it declares more data than the file holds")
except Exception as e:
    sys.exit((str(e).strip().splitlines() or [type(e).__name__])[-1][:300])
"""
PROBE_SLACK = 512 * 1024**2  # bytes beyond 3x the file: numpy, faiss's own tables


def probe_file(path: Path) -> None:
    """Read an untrusted ``.index`` in a child process held to memory of about three times its size (the bytes,
    the index, its vectors); a ModelError naming the file when it cannot be read within that. Linux only (it needs
    /proc and RLIMIT_AS); elsewhere :meth:`RetrievalIndex.load` alone judges it."""
    import subprocess
    import sys

    path = Path(path)
    if not Path("/proc/self/status").exists():
        return
    budget = 3 * path.stat().st_size + PROBE_SLACK
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "1"}
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), str(budget)], capture_output=True, text=True, env=env, timeout=600
    )
    if run.returncode != 0:
        lines = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
        why = lines[-1].split(": ", 1)[-1] if "Error" in (lines or [""])[-1] else (lines or ["unreadable"])[-1]
        if "bad_alloc" in why or "MemoryError" in why or run.returncode < 0:
            why = "it declares more data than the file holds"
        raise ModelError(
            f"Cannot read the voice index {path.name}: {why[:300]}",
            hint="Re-download the voice's .index file, or add the voice without it.",
        )


def build_index(vectors: np.ndarray) -> RetrievalIndex:
    """RVC's recipe: ``IVF{n},Flat`` with n = min(16*sqrt(N), N//39) (at least 1), nprobe 1, added in batches."""
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise UsageError("An index needs a non-empty (N, dim) array of features.")
    train = vectors
    if len(vectors) > MAX_TRAIN:
        pick = np.sort(np.random.default_rng(SEED).choice(len(vectors), MAX_TRAIN, replace=False))
        train = vectors[pick]
    n_ivf = max(1, min(int(16 * np.sqrt(len(vectors))), len(train) // 39))
    index = faiss.index_factory(vectors.shape[1], f"IVF{n_ivf},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(train)
    for i in range(0, len(vectors), ADD_BATCH):
        index.add(vectors[i : i + ADD_BATCH])
    return RetrievalIndex(index, f"IVF{n_ivf},Flat")


def merge_indexes(indexes: Sequence[RetrievalIndex], weights: Sequence[float]) -> RetrievalIndex:
    """One index over the vectors of every voice with a non-zero weight, rebuilt with RVC's recipe."""
    if len(indexes) != len(weights):
        raise UsageError(f"{len(indexes)} indexes but {len(weights)} weights.")
    if any(w < 0 for w in weights):
        raise UsageError("Merge weights cannot be negative.")
    kept = [ix for ix, w in zip(indexes, weights) if w > 0]
    if not kept:
        raise UsageError("Nothing to merge: every index has weight 0.")
    dims = sorted({ix.dim for ix in kept})
    if len(dims) > 1:
        raise ModelError(
            f"Cannot merge voice indexes of different sizes: {dims[0]}-dim and {dims[1]}-dim "
            "(a v1 voice with a v2 voice).",
            hint="Merge voices of the same RVC version.",
        )
    return build_index(np.concatenate([ix.vectors for ix in kept], axis=0))
