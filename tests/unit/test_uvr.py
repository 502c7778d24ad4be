"""The uvr separator: model resolution, offline guarantees, audio-separator's real code on tiny real-format models."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from singer.audio import resample, write_wav
from singer.engines.separators.uvr import catalog
from singer.errors import EngineUnavailable, ModelError, UsageError
from tests.synth import make_synthetic_song
from tests.uvrkit import install_uvr_kit

pytest.importorskip("audio_separator")


@pytest.fixture
def kit(settings):
    names = install_uvr_kit(catalog.uvr_dir(settings))
    settings.uvr_model = names["vocals"]
    return names


@pytest.fixture(scope="module")
def song_wav(tmp_path_factory):
    mix, vocals, _ = make_synthetic_song(6.0, sr=44100, seed=1)
    path = tmp_path_factory.mktemp("uvr") / "mix.wav"
    write_wav(path, mix, 44100)
    return path, vocals


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    import socket

    import requests

    def refuse(*args, **kwargs):
        raise AssertionError(f"network call attempted: {args[:1]}")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ---- model resolution ----------------------------------------------------------------------------------------------
def test_presets_resolve_to_manifest_models(settings):
    m = catalog.resolve(settings, "best-vocals", "vocals")
    assert m.name == "vocals-roformer" and m.arch == "MDXC" and m.sdr["musdb"]["vocals"] == pytest.approx(12.6)
    assert "download_checks.json" in m.files and m.file in m.files
    assert catalog.resolve(settings, "", "karaoke").stage == "karaoke"
    assert catalog.resolve(settings, "", "dereverb").name == "dereverb-roformer"
    assert catalog.resolve(settings, "fast-cpu", "vocals").file == "Kim_Vocal_2.onnx"
    by_sdr = sorted(
        (m for m in catalog.catalog(settings) if m.stage == "vocals" and m.sdr), key=lambda m: -m.sdr["musdb"]["vocals"]
    )
    assert "best-vocals" in by_sdr[0].presets  # the preset really is the best published figure
    fast = [m for m in catalog.catalog(settings) if m.stage == "vocals" and m.arch == "MDX"]
    assert "fast-cpu" in max(fast, key=lambda m: m.sdr["musdb"]["vocals"]).presets


def test_unknown_model_lists_the_presets(settings):
    with pytest.raises(UsageError) as e:
        catalog.resolve(settings, "nope", "vocals")
    assert "best-vocals" in e.value.hint and "fast-cpu" in e.value.hint


def test_missing_model_names_the_pull_command(settings):
    m = catalog.resolve(settings, "fast-cpu", "vocals")
    with pytest.raises(ModelError) as e:
        catalog.require(settings, m)
    assert e.value.exit_code == 4
    assert "singer models pull vocals-mdx" in e.value.hint and "Kim_Vocal_2.onnx" in e.value.user_message


@pytest.mark.parametrize(
    "stage,primary,secondary,expect",
    [
        ("vocals", "Vocals", "Instrumental", {"vocals": "Vocals", "instrumental": "Instrumental"}),
        ("vocals", "Instrumental", "Vocals", {"vocals": "Vocals", "instrumental": "Instrumental"}),
        ("karaoke", "Instrumental", "Vocals", {"lead": "Vocals", "backing": "Instrumental"}),
        ("dereverb", "Reverb", "No Reverb", {"dry": "No Reverb", "reverb": "Reverb"}),
        ("dereverb", "noreverb", "reverb", {"dry": "noreverb", "reverb": "reverb"}),
    ],
)
def test_model_stems_map_to_stage_outputs(stage, primary, secondary, expect):
    assert catalog.assign(stage, primary, secondary) == expect


def test_stems_that_do_not_fit_the_stage_are_refused():
    with pytest.raises(ModelError, match="do not fit the dereverb stage"):
        catalog.assign("dereverb", "Vocals", "Instrumental")


# ---- the compatibility layer ---------------------------------------------------------------------------------------
def test_onnx2torch_standin_explains_itself():
    from singer.engines.separators.uvr import compat as uvr_compat

    uvr_compat.prepare()
    import onnx2torch

    if not getattr(onnx2torch, "SINGER_STANDIN", False):
        pytest.skip("a working onnx2torch is installed here")
    with pytest.raises(EngineUnavailable, match="onnx2torch") as e:
        onnx2torch.convert("model.onnx")
    assert "segment size" in e.value.hint


def test_offline_separator_never_downloads(tmp_path, no_network):
    from singer.engines.separators.uvr import compat as uvr_compat

    uvr_compat.prepare()
    sep = uvr_compat.offline_separator_class()(
        model_file_dir=str(tmp_path), output_dir=str(tmp_path), log_level=logging.WARNING
    )
    with pytest.raises(ModelError, match="download_checks.json") as e:
        sep.load_model("Kim_Vocal_2.onnx")
    assert "singer models pull" in e.value.hint


# ---- the engine on tiny real-format models -------------------------------------------------------------------------
def test_engine_output_equals_audio_separator_direct(settings, kit, song_wav, tmp_path, no_network):
    """singer adds nothing to the audio: its stems are audio-separator's own, bit for bit."""
    from singer.engines import registry
    from singer.engines.separators.uvr import compat as uvr_compat

    src, vocals = song_wav
    eng = registry.create("separator", "uvr", settings)
    log: list[float] = []
    out = eng.separate(src, tmp_path / "singer", lambda f, m=None: log.append(f))
    assert set(out) == {"vocals", "instrumental"} and log == sorted(log) and log[-1] == 1.0
    uvr_compat.prepare()
    direct = uvr_compat.offline_separator_class()(
        model_file_dir=str(catalog.uvr_dir(settings)),
        output_dir=str(tmp_path / "direct"),
        output_format="WAV",
        use_soundfile=True,
        log_level=logging.WARNING,
        mdx_params={"hop_length": 1024, "segment_size": 64, "overlap": 0.25, "batch_size": 1, "enable_denoise": False},
    )
    direct.load_model(kit["vocals"])
    files = direct.separate(str(src))
    ref = next(f for f in files if "(Vocals)" in f)
    a = sf.read(str(out["vocals"]), dtype="float32")[0]
    b = sf.read(str(tmp_path / "direct" / ref), dtype="float32")[0]
    assert a.shape == b.shape and np.array_equal(a, b)
    est = a.mean(axis=1)  # the mix itself correlates 0.66-0.69 with the vocals: the tiny model must do better
    assert np.corrcoef(est, vocals.mean(0))[0, 1] > 0.8


@pytest.fixture
def cold_cache():
    """The process's warm-model cache without UVR models; its limit restored afterwards."""
    from singer.engines import warm

    before = warm.MODELS.limit
    warm.MODELS.forget("uvr")
    yield warm.MODELS
    warm.MODELS.resize(before)


def test_models_stay_warm_and_the_oldest_is_dropped(settings, kit, song_wav, tmp_path, monkeypatch, cold_cache):
    settings.max_warm_models = 1
    from singer.engines import registry

    eng = registry.create("separator", "uvr", settings)  # sizes the process's model cache from the settings
    loads: list[str] = []
    real = eng._separator

    def counting(m):
        if m.file not in eng.warm():
            loads.append(m.file)
        return real(m)

    monkeypatch.setattr(eng, "_separator", counting)
    src, _ = song_wav
    eng.separate(src, tmp_path / "a")
    eng.separate(src, tmp_path / "b")
    assert loads == [kit["vocals"]] and eng.warm() == [kit["vocals"]]
    eng.separate(src, tmp_path / "c", params={"model": kit["roformer"], "stage": "dereverb"})
    assert eng.warm() == [kit["roformer"]]  # capacity 1: the MDX model was dropped


def test_roformer_dereverb_stage_keeps_rate_length_and_channels(settings, kit, tmp_path, no_network):
    from singer.engines.separators.uvr.engine import UVRSeparator

    mix, _, _ = make_synthetic_song(3.0, sr=44100, seed=2)
    x = resample(mix, 44100, 48000)[:1]
    src = tmp_path / "in.wav"
    write_wav(src, x, 48000)
    out = UVRSeparator(settings).separate(src, tmp_path / "out", params={"model": kit["roformer"], "stage": "dereverb"})
    assert set(out) == {"dry", "reverb"}
    for p in out.values():
        info = sf.info(str(p))
        assert (info.samplerate, info.frames, info.channels) == (48000, x.shape[1], 1)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary files left


def test_separate_step_hashes_the_model_files(settings, kit):
    from singer.workflow import ops
    from singer.workflow.runner import EnginePool, RunContext

    ctx = RunContext(settings, EnginePool(settings), None)
    bound = ops.get("separate").bind(ctx, {"model": kit["vocals"]}, "uvr")
    assert bound.params["model"] == kit["vocals"] and bound.params["stage"] == "vocals"
    assert any(p.name == kit["vocals"] for p in bound.files.values())
    assert any(p.name == "mdx_model_data.json" for p in bound.files.values())
