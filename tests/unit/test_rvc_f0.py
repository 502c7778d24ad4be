"""Pitch extraction for RVC (singer.engines.converters.rvc.f0 / singer.engines.converters.rvc.rmvpe): synthetic accuracy, RMVPE checkpoint handling, and
equality with rvc_python's own get_f0 / RMVPE when that package is installed (loaded by file, never imported)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from singer.engines import warm
from singer.engines.converters.rvc import f0 as F
from singer.errors import ModelError, UsageError

SR = 16000
TRUE_F0 = 220.0


@pytest.fixture(scope="module", autouse=True)
def _drop_models():
    """Loaded pitch models (RMVPE is ~360 MB) are not kept for the rest of the test session."""
    yield
    warm.MODELS.forget("pitch")


def _rvc_pad(x: np.ndarray, pad_s: float = 0.25) -> tuple[np.ndarray, int]:
    """Pad as RVC does (t_pad reflect, then half a window each side); p_len = len // 160."""
    xp = np.pad(x, (int(SR * pad_s),) * 2, mode="reflect")
    xp = np.pad(xp, (80, 80), mode="reflect")
    return xp, len(xp) // 160


@pytest.fixture(scope="module")
def song():
    """2.5 s: a 5-harmonic tone at 220 Hz with +-30 cent vibrato, digital silence from 1.0 to 1.5 s."""
    t = np.arange(int(2.5 * SR)) / SR
    f = TRUE_F0 * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t) / 12)
    phase = 2 * np.pi * np.cumsum(f) / SR
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
    x = x + 1e-4 * np.random.default_rng(0).standard_normal(x.size)  # a little noise under the tone
    x[SR : int(1.5 * SR)] = 0
    xp, p_len = _rvc_pad(x)
    offset = int(0.25 * SR + 80) // 160  # frames before the original start
    return SimpleNamespace(
        x=xp,
        p_len=p_len,
        gap=slice(offset + 105, offset + 145),
        tone=np.r_[offset + 5 : offset + 95, offset + 155 : offset + 245],
    )


@pytest.mark.parametrize("method", ["fcpe", "harvest", "pm", "crepe-tiny"])
def test_methods_track_a_sung_tone(song, method):
    f0 = F.extract_f0(song.x, song.p_len, method)
    assert f0.shape == (song.p_len,) and f0.dtype == np.float32
    voiced = f0[song.tone]
    assert (voiced > 0).mean() > 0.95, method
    assert abs(np.median(voiced[voiced > 0]) / TRUE_F0 - 1) < 0.025, method
    assert (f0[song.gap] == 0).all(), method


def test_unknown_method_and_bad_range():
    with pytest.raises(UsageError) as e:
        F.extract_f0(np.zeros(1600), 10, "yin")
    assert "rmvpe" in e.value.hint and "fcpe" in e.value.hint
    with pytest.raises(UsageError):
        F.extract_f0(np.zeros(1600), 10, "pm", f0_min=500, f0_max=100)


def test_import_is_light():
    code = (
        "import sys, singer.engines.converters.rvc.f0; "
        "print([m for m in ('torch', 'torchcrepe', 'torchfcpe', 'parselmouth', 'librosa') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_coarse_f0_range():
    c = F.coarse_f0(np.array([0.0, 10.0, 50.0, 220.0, 1100.0, 3000.0]))
    assert c.dtype == np.int32 and c[0] == 1 and c[1] == 1 and c[2] == 1 and c[4] == 255 and c[5] == 255
    assert 1 < c[3] < 255


# --- RMVPE ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rmvpe_dir(tmp_path_factory):
    """A random RMVPE checkpoint in the real format (full architecture, fp16 tensors like the published rmvpe.pt)."""
    import torch

    from singer.engines.converters.rvc.rmvpe import E2E

    torch.manual_seed(0)
    state = {k: v.half() if v.is_floating_point() else v for k, v in E2E().state_dict().items()}
    folder = tmp_path_factory.mktemp("models")
    torch.save(state, folder / "rmvpe.pt")
    return folder


def test_rmvpe_loads_through_public_path_and_stays_warm(rmvpe_dir, song):
    f0 = F.extract_f0(song.x, song.p_len, "rmvpe", models_path=rmvpe_dir)
    assert f0.shape == (song.p_len,) and f0.dtype == np.float32 and np.isfinite(f0).all()
    model = F._rmvpe(rmvpe_dir)
    assert F._rmvpe(rmvpe_dir) is model  # cached, not reloaded


def test_rmvpe_chunks_stitch_exactly(rmvpe_dir):
    """Chunk cores land where they belong: with context covering the whole input every chunk equals one pass."""
    model = F._rmvpe(rmvpe_dir)
    x = np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1
    whole = model.salience(x)
    chunked = model.salience(x, max_frames=40, context=100)  # 51 frames -> cores of 32
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-5)


def test_rmvpe_missing_and_wrong_checkpoints(tmp_path, rmvpe_dir):
    import torch

    with pytest.raises(ModelError) as e:
        F.extract_f0(np.zeros(3200), 20, "rmvpe", models_path=tmp_path)
    assert "singer models pull rmvpe" in e.value.hint and str(tmp_path) in e.value.hint
    with pytest.raises(ModelError):
        F.extract_f0(np.zeros(3200), 20, "rmvpe", models_path=None)
    state = torch.load(rmvpe_dir / "rmvpe.pt", weights_only=True)
    state["cnn.weight_renamed"] = state.pop("cnn.weight")
    torch.save(state, tmp_path / "rmvpe.pt")
    with pytest.raises(ModelError, match="does not match"):
        F.extract_f0(np.zeros(3200), 20, "rmvpe", models_path=tmp_path)
    torch.save([1, 2, 3], tmp_path / "rmvpe.pt")
    with pytest.raises(ModelError):
        F.extract_f0(np.zeros(3200), 20, "rmvpe", models_path=tmp_path)


def test_mel_filterbank_equals_librosa():
    librosa = pytest.importorskip("librosa")
    from singer.engines.converters.rvc.rmvpe import mel_filterbank

    ref = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=30, fmax=8000, htk=True)
    ours = mel_filterbank()
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


# --- equality with rvc_python ------------------------------------------------------------------------------------


def _load_by_path(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rvc_ref():
    """rvc_python's pipeline.py and lib/rmvpe.py, loaded by file with stub parent packages (its __init__ needs
    fairseq). Restores sys.modules afterwards."""
    spec = importlib.util.find_spec("rvc_python")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("rvc_python is not installed")
    root = Path(list(spec.submodule_search_locations)[0])
    for dep in ("faiss", "librosa", "parselmouth", "pyworld"):
        if importlib.util.find_spec(dep) is None:
            pytest.skip(f"rvc_python's pipeline needs {dep}")
    names = [
        "rvc_python",
        "rvc_python.lib",
        "rvc_python.lib.jit",
        "rvc_python.modules",
        "rvc_python.modules.vc",
        "rvc_python.lib.rmvpe",
        "rvc_python.modules.vc.pipeline",
    ]
    saved = {n: sys.modules.get(n) for n in names}
    for n in names[:5]:
        stub = types.ModuleType(n)
        stub.__path__ = []
        sys.modules[n] = stub
    try:
        F._need("torchcrepe", "torchcrepe", "crepe")  # pipeline.py imports torchcrepe (torchaudio may be broken)
        rmvpe = _load_by_path("rvc_python.lib.rmvpe", root / "lib" / "rmvpe.py")
        pipeline = _load_by_path("rvc_python.modules.vc.pipeline", root / "modules" / "vc" / "pipeline.py")
        yield SimpleNamespace(rmvpe=rmvpe, pipeline=pipeline)
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _ref_pipeline(ref, lib_dir: Path):
    config = SimpleNamespace(x_pad=1, x_query=6, x_center=38, x_max=41, is_half=False, device="cpu")
    return ref.pipeline.Pipeline(40000, config, str(lib_dir))


@pytest.mark.parametrize("method", ["pm", "harvest"])
def test_pm_and_harvest_equal_rvc_get_f0(rvc_ref, song, method, tmp_path):
    pipe = _ref_pipeline(rvc_ref, tmp_path)
    coarse, f0bak = pipe.get_f0(str(tmp_path / "in.wav"), song.x, song.p_len, 0, method, 3)
    ours = F.extract_f0(song.x, song.p_len, method, filter_radius=3)
    np.testing.assert_allclose(ours, f0bak[: song.p_len], rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(F.coarse_f0(f0bak), coarse)
    assert (F.coarse_f0(ours) == coarse[: song.p_len]).mean() > 0.99


def test_crepe_post_processing_equals_rvc(rvc_ref, song, tmp_path, monkeypatch):
    """RVC's crepe branch with the tiny model swapped in (the full one is too slow for a unit test)."""
    torchcrepe = rvc_ref.pipeline.torchcrepe
    predict = torchcrepe.predict
    monkeypatch.setattr(
        torchcrepe, "predict", lambda audio, sr, hop, lo, hi, model, **kw: predict(audio, sr, hop, lo, hi, "tiny", **kw)
    )
    np.random.seed(0)  # torchcrepe dithers with numpy's global RNG; singer seeds it with 0 for each call
    coarse, f0bak = _ref_pipeline(rvc_ref, tmp_path).get_f0("x", song.x, song.p_len, 0, "crepe", 3)
    monkeypatch.undo()
    ours = F.extract_f0(song.x, song.p_len, "crepe-tiny")
    np.testing.assert_array_equal(F.extract_f0(song.x, song.p_len, "crepe-tiny"), ours)  # repeatable
    np.testing.assert_allclose(ours, f0bak[: song.p_len], rtol=1e-6, atol=1e-4)
    np.testing.assert_array_equal(F.coarse_f0(f0bak), coarse)


def test_rmvpe_equals_rvc(rvc_ref, rmvpe_dir, song, tmp_path):
    (tmp_path / "base_model").mkdir()
    (tmp_path / "base_model" / "rmvpe.pt").symlink_to(rmvpe_dir / "rmvpe.pt")  # where get_f0 looks for it
    coarse, f0bak = _ref_pipeline(rvc_ref, tmp_path).get_f0("x", song.x, song.p_len, 0, "rmvpe", 3)
    ours = F.extract_f0(song.x, song.p_len, "rmvpe", models_path=rmvpe_dir)
    assert f0bak.size == song.p_len + 1
    np.testing.assert_allclose(ours, f0bak[: song.p_len], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(F.coarse_f0(f0bak), coarse)


# --- statistics and key ------------------------------------------------------------------------------------------


def _stats_of(midi_center: float, spread: float = 3.0, seconds: float = 3.0) -> dict:
    n = int(seconds * 100)
    midi = midi_center + spread * np.sin(np.linspace(0, 20, n))
    f0 = 440 * 2 ** ((midi - 69) / 12)
    return F.pitch_stats(np.r_[f0, np.zeros(50)])


def test_pitch_stats():
    s = F.pitch_stats(np.r_[np.full(100, 440.0), np.zeros(30)])
    assert s == {"p10": 69.0, "median": 69.0, "p90": 69.0, "voiced_seconds": 1.0}
    assert F.pitch_stats(np.r_[np.full(40, 440.0), np.zeros(500)]) is None
    assert F.pitch_stats(np.zeros(1000)) is None


def test_auto_key():
    voice = _stats_of(57)
    assert F.auto_key(_stats_of(69), voice) == -12  # an octave above
    assert F.auto_key(_stats_of(45), voice) == 12  # an octave below
    assert F.auto_key(_stats_of(57), voice) == 0  # same range
    assert F.auto_key(_stats_of(61.4), voice) == -4  # median to median, rounded
    assert F.auto_key(_stats_of(81), voice) == -12  # 24 above: clamped
    assert F.auto_key(_stats_of(81), voice, max_shift=5) == -5
    # the median rule gives way to keeping the source's p10..p90 inside the voice's
    voice = {"p10": 50.0, "median": 60.0, "p90": 62.0}
    assert F.auto_key({"p10": 60.0, "median": 62.0, "p90": 68.0}, voice) == -6  # median rule alone: -2
    # a source wider than the voice is centred on it
    narrow = {"p10": 55.0, "median": 57.0, "p90": 59.0}
    assert F.auto_key({"p10": 50.0, "median": 52.0, "p90": 70.0}, narrow) == -3  # median rule alone: +5
