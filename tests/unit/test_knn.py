"""The ``knn`` converter on synthetic vocals and tiny real-format frame pools: the voice's own envelope comes out,
pitch shifts exactly, pools store reproducibly and merge by weight, voices without a pool still sing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from singer.config import Settings
from singer.engines import registry
from singer.engines.converters.knn import match
from singer.engines.converters.knn.engine import KnnConverter
from singer.engines.converters.knn.pool import (
    FramePool,
    analyse_frames,
    load_pool,
    merge_pools,
    pool_from_frames,
    save_pool,
)
from singer.engines.converters.world import vocoder
from singer.errors import InputError
from singer.voices import VoiceStore
from tests.unit.test_world import cents, median_f0, sung

SR = 44100


def _pool(f0: float, formant_scale: float, name: str) -> FramePool:
    x = sung(3.0, 16000, f0, formant_scale, seed=1).astype(np.float64)
    env, ap, voiced = analyse_frames(x, 16000)
    return pool_from_frames(env, ap, voiced, name=name, band_hz=7200.0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A user store with one voice made from recordings (profile + pool), via the real create path."""
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home)
    s = VoiceStore(settings)
    wav = home / "bright.wav"
    sf.write(wav, sung(4.0, SR, 260.0, 1.25), SR)
    s.create("bright", [wav], gender="female")
    return s


@pytest.fixture()
def conv(tmp_path):
    return KnnConverter(Settings(home=tmp_path / "home"))


def _convert(conv, tmp_path, x, voice, **params):
    src, dst = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, np.atleast_2d(x).T, SR, subtype="FLOAT")
    meta = conv.convert(src, dst, voice, params)
    return sf.read(dst, dtype="float32", always_2d=True)[0].T, meta


def test_registered_with_profile_voices():
    cls = registry.get_class("converter", "knn")
    assert cls is KnnConverter and "profile" in cls.voice_kinds
    assert registry.converter_for("profile") == "world"  # world stays the default: knn missed its identity goal


def test_pool_file_is_reproducible_and_round_trips(tmp_path):
    pool = _pool(220.0, 1.0, "a")
    m1 = save_pool(tmp_path / "a.pool.npy.gz", pool)
    m2 = save_pool(tmp_path / "b.pool.npy.gz", pool)
    assert m1["sha256"] == m2["sha256"] and m1["frames"] == len(pool.env) > 100
    back = load_pool(tmp_path / "a.pool.npy.gz", m1)
    assert np.abs(back.env - pool.env).max() < 0.1 and (back.voiced == pool.voiced).all()
    with pytest.raises(ValueError, match="format"):
        load_pool(tmp_path / "a.pool.npy.gz", {**m1, "format": 99})


def test_merge_keeps_groups_with_weights():
    a, b = _pool(220.0, 1.0, "a"), _pool(300.0, 1.2, "b")
    m = merge_pools([(a, 3.0), (b, 1.0)], names=["a", "b"])
    assert [(g["name"], g["weight"]) for g in m.groups] == [("a", 0.75), ("b", 0.25)]
    assert len(m.env) == len(a.env) + len(b.env) and set(m.group.tolist()) == {0, 1}
    again = merge_pools([(m, 1.0), (a, 1.0)], names=["m", "a"])
    assert sum(g["weight"] for g in again.groups) == pytest.approx(1.0)
    with pytest.raises(InputError):
        merge_pools([(a, -1.0)])


def test_matcher_returns_the_voices_own_envelope():
    """A singer's frames matched into a pool of another voice come out with that voice's formants."""
    voice = _pool(300.0, 1.25, "voice")
    singer = _pool(150.0, 1.0, "singer")
    matcher = match.Matcher(voice, 7200.0, k=4)
    f = match.features(singer.env, 7200.0)
    env, _ = matcher.blend(match.Norm.of(f)(f), singer.voiced)
    v = singer.voiced
    to_voice = np.abs(env[v] - voice.env[voice.voiced].mean(axis=0)).mean()
    to_singer = np.abs(env[v] - singer.env[v].mean(axis=0)).mean()
    assert to_voice < to_singer


def test_converts_with_exact_key_and_length(conv, tmp_path, store):
    x = sung(3.0, SR, 220.0, gaps=True)
    y, meta = _convert(conv, tmp_path, np.stack([x, 0.5 * x]), store.get("bright"), key=3)
    assert y.shape == (2, len(x)) and np.isfinite(y).all()
    assert meta["method"] == "knn" and meta["pool"]["frames"] > 100
    assert abs(cents(median_f0(y[0]), 220.0 * 2 ** (3 / 12))) < 15
    assert np.abs(y[1]).max() == pytest.approx(0.5 * np.abs(y[0]).max(), rel=0.05)  # channel balance kept
    gap = y[0, int(1.2 * SR) : int(1.5 * SR)]
    assert np.abs(gap).max() == 0.0  # silence stays digital silence


def test_auto_octave_and_formant_params(conv, tmp_path, store):
    x = sung(2.5, SR, 110.0)
    _, meta = _convert(conv, tmp_path, x, store.get("bright"), key="auto")
    assert meta["octave"] and meta["key"] in (0.0, 12.0)
    _, meta2 = _convert(conv, tmp_path, x, store.get("bright"), formant=0.0, formant_shift=2.0)
    assert meta2["formant_ratio"] == pytest.approx(2 ** (2 / 12), rel=1e-3)  # back to the singer's, then +2 st
    with pytest.raises(InputError, match="knn converter parameters"):
        _convert(conv, tmp_path, x, store.get("bright"), k=0)


def test_voice_without_pool_sings_the_world_way(conv, tmp_path, store):
    """Profile voices made before frame pools load and convert; the metadata says how."""
    v = store.get("bright")
    manifest = dict(v.manifest)
    manifest.pop("pool"), manifest.pop("files")
    old = store.user_dir / "old.json"
    old.write_text(json.dumps({**manifest, "name": "old"}))
    y, meta = _convert(conv, tmp_path, sung(2.0, SR, 220.0), store.get("old"))
    assert meta["method"] == "world" and "re-create" in meta["note"] and y.shape[1] == int(2.0 * SR)


def test_missing_pool_file_is_a_clear_error(conv, tmp_path, store):
    from singer.errors import ModelError

    v = store.get("bright")
    broken = store.user_dir / "broken.json"
    broken.write_text(json.dumps({**v.manifest, "name": "broken", "files": ["gone.pool.npy.gz"]}))
    with pytest.raises(ModelError, match="damaged"):
        _convert(conv, tmp_path, sung(1.0, SR, 220.0), store.get("broken"))


def test_shift_grid_is_a_translation():
    env = np.tile(np.arange(vocoder.GRID_N, dtype=np.float32), (2, 1))
    up = match.shift_grid(env, 2**vocoder.GRID_STEP_OCT)  # one grid step up
    assert np.allclose(up[:, 1:], env[:, :-1])
