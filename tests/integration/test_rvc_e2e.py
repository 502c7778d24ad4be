"""RVC voices end to end through the CLI: add, verify, merge (with index), cover with --key auto, voice note.

Tiny random models in the real formats (RVC .pth, faiss .index, transformers HuBERT folder); nothing downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests import media
from tests.clirun import as_json, invoke
from tests.rvcvoice import install_content_model, write_voice_files


@pytest.fixture
def rvc(settings, tmp_path):
    install_content_model(settings)
    a = write_voice_files(tmp_path / "src", "a", seed=1)
    b = write_voice_files(tmp_path / "src", "b", seed=2, speakers=2)
    return settings, a, b


def test_add_verify_merge_and_sing(rvc, tmp_path):
    settings, (a_pth, a_idx), (b_pth, b_idx) = rvc
    res = invoke("voices", "add", "ayana_a", "--pth", a_pth, "--index", a_idx, "--range", "A3-E5", "--json")
    assert res.exit_code == 0, res.stdout
    v = as_json(res)["voice"]
    assert v["kind"] == "rvc" and v["version"] == "v2" and v["sample_rate"] == 40000 and len(v["sha256"]) == 2
    assert invoke("voices", "add", "ayana_b", "--pth", b_pth, "--index", b_idx, "--gender", "female").exit_code == 0
    assert invoke("voices", "verify", "ayana_a").exit_code == 0

    res = invoke(
        "voices", "merge", "ayana_a", "ayana_b", "--weights", "0.6,0.4", "--name", "ayana2", "--preview", "--json"
    )
    assert res.exit_code == 0, res.stdout
    merged = as_json(res)["voice"]
    preview = as_json(res)["preview"]
    assert preview["output"].endswith(".ogg") and 5 < preview["duration"] <= 12.5
    assert merged["kind"] == "rvc" and merged["provenance"]["merged_from"][0]["weight"] == 0.6
    assert any(f.endswith("ayana2.index") for f in merged["files"])
    from singer.engines.converters.rvc.index import RetrievalIndex

    assert RetrievalIndex.load(settings.voices_path / "ayana2.index").ntotal == 600  # both voices' vectors
    from singer.register import Register

    female = Register.typical("female")  # --gender female: the rule on a typical speaking pitch (200 Hz)
    assert merged["range"]["median"] == pytest.approx(0.6 * (57 + 76) / 2 + 0.4 * female.median)  # A3-E5 and female
    assert merged["speaking"]["median"] == pytest.approx(0.6 * (57 + 3) + 0.4 * female.speaking)
    assert merged["register"]["singing"]["from"].startswith("weighted merge")

    song = media.song_wav(tmp_path / "Song.wav", seconds=4.0, seed=3)
    res = invoke(
        "cover",
        song,
        "--voice",
        "ayana2",
        "--key",
        "auto",
        "--f0",
        "pm",
        "--index-rate",
        "0.5",
        "--format",
        "wav",
        "--out",
        tmp_path / "cover.wav",
        "--json",
        "-q",
    )
    assert res.exit_code == 0, res.stdout
    out = as_json(res)
    steps = {s["id"]: s for s in out["run"]["steps"]}
    meta = steps["convert"]["meta"]
    assert meta["engine"] == "rvc" and isinstance(meta["key"], float)
    assert meta["octave"]["shift"] == meta["key"] and meta["octave"]["source_delivery"] == "sung"
    assert out["pitch"]["octave"]["reason"] == meta["octave"]["reason"] and "ayana2" in meta["octave"]["reason"]
    assert steps["rekey"]["meta"].get("semitones", meta["instrumental_key"]) == meta["instrumental_key"]
    y, sr = sf.read(tmp_path / "cover.wav")
    assert sr == 44100 and abs(len(y) / sr - 4.0) < 0.05 and np.isfinite(y).all()

    # a voice note in the RVC voice (engine chosen by the voice's kind)
    note = media.voice_wav(tmp_path / "note.wav", seconds=3.0)
    res = invoke("convert", note, "--voice", "ayana_a", "--out", tmp_path / "note.ogg", "--json", "-q")
    assert res.exit_code == 0, res.stdout
    assert (tmp_path / "note.ogg").stat().st_size > 1000


def test_tampered_voice_fails_verify(rvc):
    settings, (a_pth, a_idx), _ = rvc
    assert invoke("voices", "add", "tv", "--pth", a_pth).exit_code == 0
    with open(settings.voices_path / "tv.pth", "ab") as f:
        f.write(b"x")
    res = invoke("voices", "verify", "tv", "--json")
    assert res.exit_code == 4 and "sha256" in as_json(res)["message"]


def test_bad_adds_and_merges_are_clear(rvc, tmp_path):
    settings, (a_pth, a_idx), _ = rvc
    v1_pth, v1_idx = write_voice_files(tmp_path / "src", "old", version="v1", seed=4)
    res = invoke("voices", "add", "x", "--pth", a_pth, "--index", v1_idx, "--json")  # 256-dim index for a v2 model
    assert res.exit_code == 3 and "256-dim" in as_json(res)["message"]  # InputError
    assert not (settings.voices_path / "x.json").exists()
    assert invoke("voices", "add", "new", "--pth", a_pth).exit_code == 0
    assert invoke("voices", "add", "old", "--pth", v1_pth).exit_code == 0
    res = invoke("voices", "merge", "new", "old", "--name", "bad", "--json")
    assert res.exit_code == 3 and "version differs" in as_json(res)["message"]
    res = invoke("voices", "merge", "new", "ayana", "--name", "bad", "--json")  # rvc + bundled profile
    assert res.exit_code == 3 and "Cannot merge" in as_json(res)["message"]
    res = invoke(
        "cover", media.song_wav(tmp_path / "s.wav", seconds=2.0), "--voice", "ayana", "--engine", "rvc", "--json", "-q"
    )
    assert res.exit_code == 2 and "cannot sing" in as_json(res)["message"]


def test_key_auto_needs_a_range(rvc, tmp_path):
    settings, (a_pth, _), _ = rvc
    assert invoke("voices", "add", "norange", "--pth", a_pth).exit_code == 0
    note = media.voice_wav(tmp_path / "n.wav", seconds=2.0)
    res = invoke("convert", note, "--voice", "norange", "--key", "auto", "--f0", "pm", "--json", "-q")
    assert res.exit_code == 3 and "no recorded range" in as_json(res)["message"]
