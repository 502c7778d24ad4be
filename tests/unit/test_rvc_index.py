"""Retrieval index: RVC's build recipe, its blend arithmetic, file round trips, merging."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")
torch = pytest.importorskip("torch")

from singer.engines.converters.rvc.index import RetrievalIndex, build_index, merge_indexes
from singer.errors import ModelError, UsageError
from tests import rvckit


def _vecs(n: int, dim: int = 16, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, dim)) + shift).astype(np.float32)


def _rvc_blend(path, feats: np.ndarray, index_rate: float) -> np.ndarray:
    """RVC's Pipeline.vc retrieval, verbatim in spirit: faiss file, reconstruct_n, torch blend."""
    index = faiss.read_index(str(path))
    big_npy = index.reconstruct_n(0, index.ntotal)
    feats_t = torch.from_numpy(feats).unsqueeze(0)
    npy = feats_t[0].cpu().numpy()
    score, ix = index.search(npy, k=8)
    weight = np.square(1 / score)
    weight /= weight.sum(axis=1, keepdims=True)
    npy = np.sum(big_npy[ix] * np.expand_dims(weight, axis=2), axis=1)
    out = torch.from_numpy(npy).unsqueeze(0) * index_rate + (1 - index_rate) * feats_t
    return out[0].numpy()


def test_build_follows_rvc_recipe(tmp_path):
    vecs = _vecs(2000)
    built = build_index(vecs)
    ivf = faiss.extract_index_ivf(built.index)
    assert ivf.nlist == min(int(16 * np.sqrt(2000)), 2000 // 39) and ivf.nprobe == 1
    assert (built.dim, built.ntotal) == (16, 2000) and np.array_equal(built.vectors, vecs)
    ref = faiss.read_index(str(rvckit.make_index(tmp_path / "ref.index", vecs)))
    q = _vecs(50, seed=9)
    d1, i1 = built.index.search(q, 8)
    d2, i2 = ref.search(q, 8)
    assert np.array_equal(i1, i2) and np.array_equal(d1, d2)
    assert faiss.extract_index_ivf(build_index(_vecs(20)).index).nlist == 1


def test_save_load_round_trip(tmp_path):
    built = build_index(_vecs(1500))
    path = tmp_path / "voice.index"
    built.save(path)
    built.save(path)  # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voice.index"]
    loaded = RetrievalIndex.load(path)
    assert (loaded.dim, loaded.ntotal) == (16, 1500) and np.array_equal(loaded.vectors, built.vectors)
    q = _vecs(30, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.index.search(q, 8), built.index.search(q, 8)))
    assert faiss.read_index(str(path)).ntotal == 1500  # a plain faiss file RVC can read


@pytest.mark.parametrize("rate", [0.75, 0.3, 1.0, 0.123])
def test_blend_equals_rvc(tmp_path, rate):
    path = rvckit.make_index(tmp_path / "added.index", _vecs(3000, dim=32))
    feats = _vecs(200, dim=32, seed=7)
    got = RetrievalIndex.load(path).blend(feats, rate)
    assert got.dtype == np.float32 and got.shape == (200, 32)
    assert np.array_equal(got, _rvc_blend(path, feats, rate))


def test_blend_rate_zero_and_exact_hits(tmp_path):
    vecs = _vecs(1000)
    index = build_index(vecs)
    feats = _vecs(40, seed=3)
    assert np.array_equal(index.blend(feats, 0.0), feats)
    hit = index.blend(vecs[:5], 1.0)  # distance 0: RVC would divide by zero
    assert np.isfinite(hit).all() and np.allclose(hit, vecs[:5])
    with pytest.raises(ModelError, match="16-dim"):
        index.blend(_vecs(4, dim=8), 0.5)


def test_flat_index_files_are_tolerated(tmp_path):
    vecs = _vecs(300)
    flat = faiss.IndexFlatL2(16)
    flat.add(vecs)
    faiss.write_index(flat, str(tmp_path / "flat.index"))
    loaded = RetrievalIndex.load(tmp_path / "flat.index")
    assert loaded.ntotal == 300 and np.array_equal(loaded.vectors, vecs)
    feats = _vecs(20, seed=2)
    assert np.array_equal(loaded.blend(feats, 0.6), _rvc_blend(tmp_path / "flat.index", feats, 0.6))


def test_bad_files_are_model_errors(tmp_path):
    bad = tmp_path / "broken.index"
    bad.write_bytes(b"garbage" * 20)
    with pytest.raises(ModelError, match="broken.index"):
        RetrievalIndex.load(bad)
    with pytest.raises(ModelError, match="missing.index"):
        RetrievalIndex.load(tmp_path / "missing.index")


def test_merge(tmp_path):
    a, b = build_index(_vecs(800, seed=1)), build_index(_vecs(1200, seed=2, shift=3.0))
    merged = merge_indexes([a, b], [0.5, 0.5])
    assert merged.ntotal == 2000 and merged.dim == 16
    for src in (a, b):
        d, i = merged.index.search(src.vectors[[5, 77]], 1)
        assert np.all(d[:, 0] == 0) and np.array_equal(merged.vectors[i[:, 0]], src.vectors[[5, 77]])
    again = merge_indexes([a, b], [0.5, 0.5])
    q = _vecs(20, seed=8)
    assert np.array_equal(again.vectors, merged.vectors)
    assert all(np.array_equal(x, y) for x, y in zip(again.index.search(q, 8), merged.index.search(q, 8)))
    assert merge_indexes([a, b], [1.0, 0.0]).ntotal == 800


def test_merge_refusals():
    a, c = build_index(_vecs(400)), build_index(_vecs(400, dim=32))
    with pytest.raises(ModelError) as e:
        merge_indexes([a, c], [1, 1])
    assert "16" in e.value.user_message and "32" in e.value.user_message
    with pytest.raises(UsageError):
        merge_indexes([a, c], [1])
    with pytest.raises(UsageError):
        merge_indexes([a], [0])
    with pytest.raises(UsageError):
        merge_indexes([a], [-1])
