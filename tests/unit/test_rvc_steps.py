"""RVC as two workflow steps (features, then convert), the precision setting, and CPU-seconds per step.

Tiny random models in the real formats (tests.rvcvoice); the real loading and inference code runs on them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from singer.api import CoverRequest, Singer
from singer.audio import read_wav, write_wav
from singer.engines.converters.rvc import precision
from tests.rvcvoice import install_content_model, install_voice


@pytest.fixture
def voices(settings):
    install_content_model(settings)
    a = install_voice(settings, "rvc_a", seed=1)
    install_voice(settings, "rvc_b", seed=2)
    return settings, a


@pytest.fixture
def note(tmp_path):
    from tests.synth import make_synthetic_song

    _, vocals, _ = make_synthetic_song(3.0, sr=44100, seed=4)
    path = tmp_path / "note.wav"
    write_wav(path, vocals.mean(axis=0, keepdims=True), 44100)
    return path


def _convert(s: Singer, note, voice: str, out, **kw):
    req = CoverRequest(input=str(note), voice=voice, format="wav", out=str(out), trim=False, **kw)
    return s.convert(req)


def test_second_voice_reuses_the_features_step(voices, note, tmp_path):
    settings, _ = voices
    s = Singer(settings)
    r1 = _convert(s, note, "rvc_a", tmp_path / "a.wav")
    f1, c1 = r1.run.step("features"), r1.run.step("convert")
    assert not f1.cached and not f1.skipped and f1.meta["version"] == "v2" and f1.meta["pitch"]
    assert c1.meta["features"] == "from the features step" and c1.meta["path"]["content"] in ("fp32", "bf16")

    r2 = _convert(s, note, "rvc_b", tmp_path / "b.wav")
    assert r2.run.step("features").cached and r2.run.step("features").key == f1.key  # no voice in its key
    assert not r2.run.step("convert").cached and r2.run.step("convert").meta["features"] == "from the features step"

    s.merge_voices(["rvc_a", "rvc_b"], [0.5, 0.5], "rvc_ab")
    r3 = _convert(s, note, "rvc_ab", tmp_path / "ab.wav")
    assert r3.run.step("features").cached  # a merged voice of the same version too

    r4 = _convert(s, note, "rvc_b", tmp_path / "b2.wav", step_params={"convert": {"f0_method": "pm"}})
    assert not r4.run.step("features").cached  # the features step follows the convert step's pitch method
    assert r4.run.step("features").meta["f0_method"] == "pm"
    assert r4.run.step("convert").meta["features"] == "from the features step"


def test_split_steps_give_the_one_call_output(voices, note, tmp_path):
    settings, voice = voices
    from singer.engines.converters.rvc.engine import RVCConverter

    s = Singer(settings)
    r = _convert(s, note, "rvc_a", tmp_path / "a.wav", step_params={"mix": {"target_lufs": -16.0}})
    conv = RVCConverter(settings)
    whole = tmp_path / "whole.wav"
    meta = conv.convert(note, whole, voice, {"auto_octave": True})  # no features file: both halves in one call
    assert meta["features"].startswith("computed in this step")
    split, _ = read_wav(r.run.step("convert").outputs["audio"])
    one, _ = read_wav(whole)
    assert split.shape == one.shape and np.array_equal(split, one)


def test_world_voice_keeps_its_one_convert_step(settings, note, tmp_path):
    r = _convert(Singer(settings), note, "ayana", tmp_path / "w.wav")
    assert r.run.step("features").skipped and not r.run.step("convert").skipped
    assert r.run.step("convert").meta.get("engine", "world") != "rvc"


def test_cpu_seconds_per_step_in_run_json(voices, note, tmp_path):
    settings, _ = voices
    r = _convert(Singer(settings), note, "rvc_a", tmp_path / "a.wav")
    record = json.loads((r.run.run_dir / "run.json").read_text())
    steps = {s["id"]: s for s in record["steps"]}
    assert steps["features"]["cpu_seconds"] > 0 and steps["convert"]["cpu_seconds"] > 0
    assert record["cpu_seconds"] == pytest.approx(sum(s["cpu_seconds"] for s in record["steps"]), abs=0.01)
    assert r.run.to_dict()["steps"][0]["cpu_seconds"] >= 0


@pytest.mark.parametrize(
    ("flags", "asked", "content", "decoder"),
    [
        ({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}, "auto", "bf16", "bf16"),
        ({"avx2", "avx512f", "avx512_bf16"}, "auto", "bf16", "bf16"),
        ({"avx2", "avx512f"}, "auto", "fp32", "fp32"),  # no native bf16: never emulated
        ({"avx2"}, "bf16", "fp32", "fp32"),  # asked, but emulated would be slower: fp32, and it says why
        ({"avx2"}, "int8", "int8", "fp32"),
        ({"avx512_bf16"}, "fp32", "fp32", "fp32"),
    ],
)
def test_precision_follows_the_cpu_flags(monkeypatch, flags, asked, content, decoder):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    path = precision.resolve(asked, "cpu", 2)
    assert (path.content, path.decoder, path.threads) == (content, decoder, 2)
    if asked == "bf16" and content == "fp32":
        assert "no native bf16" in path.reason
    assert precision.resolve(asked, "cuda:0").decoder == "fp32"


def test_bf16_close_to_fp32_on_a_tiny_model():
    import torch

    from singer.engines.converters.rvc import checkpoint as ck
    from singer.engines.converters.rvc.quality import compare
    from singer.engines.converters.rvc.testing import random_checkpoint

    net = ck.from_dict(random_checkpoint("v2", 40000, size="tiny", seed=3)).build()
    torch.manual_seed(0)
    x, f0 = torch.randn(1, 8, 120), torch.full((1, 120), 220.0)
    g = net.emb_g(torch.tensor([0])).unsqueeze(-1)
    out = {}
    for dt in (torch.float32, torch.bfloat16):
        net.dec.compute_dtype = dt
        with torch.inference_mode():
            out[dt] = net.dec(x, f0, g, torch.Generator().manual_seed(0))[0, 0].numpy()
    ref, low = out[torch.float32], out[torch.bfloat16]
    assert low.dtype == np.float32 and low.shape == ref.shape and not np.array_equal(low, ref)
    q = compare(ref, low, 40000)
    assert q["mrstft"] < 0.25 and q["logmel_db"] < 2.0 and q["loudness_lu"] < 0.5, q
