"""End to end: multi-stage UVR covers through the CLI on tiny real-format models (nothing downloaded)."""

from __future__ import annotations

import pytest

from singer.api import CoverRequest, Singer
from singer.engines.separators.uvr.catalog import uvr_dir
from singer.progress import RecordingHooks
from tests import media
from tests.clirun import as_json, invoke
from tests.uvrkit import install_uvr_kit

pytest.importorskip("audio_separator")


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return media.song_wav(tmp_path_factory.mktemp("uvr-e2e") / "Stage Song.wav", seconds=6.0, seed=3)


@pytest.fixture
def kit(settings, monkeypatch):
    names = install_uvr_kit(uvr_dir(settings))
    monkeypatch.setenv("SINGER_UVR_MODEL", names["vocals"])  # what the CLI reads
    settings.uvr_model = names["vocals"]
    return names


def _request(song, kit, tmp_path, **kw):
    # the tiny vocal model doubles as the karaoke model (its "Vocals" stem becomes the lead); the Roformer de-reverbs
    params = {"karaoke": {"model": kit["vocals"]}, "dereverb": {"model": kit["roformer"]}}
    return CoverRequest(
        input=str(song),
        voice="ayana",
        separator="uvr",
        stages=["vocals", "karaoke", "dereverb"],
        step_params=params,
        format="wav",
        out=str(tmp_path) + "/",
        **kw,
    )


def test_every_stage_runs_and_every_stem_is_mixed(settings, kit, song, tmp_path):
    hooks = RecordingHooks()
    singer = Singer(settings, hooks)
    res = singer.cover(_request(song, kit, tmp_path, convert_parts=["lead", "backing"]))
    ran = [s.id for s in res.run.steps if not s.skipped]
    assert ran == ["source", "separate", "karaoke", "dereverb", "convert", "convert_backing", "reverb", "mix", "encode"]
    assert set(res.run.step("karaoke").outputs) == {"lead", "backing"}
    assert set(res.run.step("dereverb").outputs) == {"dry", "reverb"}
    mix = res.run.step("mix").meta
    assert (
        "backing_lufs" in mix and "reference_backing_lufs" in mix and mix["output_lufs"] == pytest.approx(-14, abs=0.5)
    )
    # the converted backing is matched to the separated backing, the lead to the dry lead
    assert mix["backing_gain_db"] == pytest.approx(mix["reference_backing_lufs"] - mix["backing_lufs"], abs=0.02)
    # the converted lead's new reverb sits at the loudness of the reverb the de-reverb stage took off
    assert mix["reverb_gain_db"] == pytest.approx(mix["reference_reverb_lufs"] - mix["reverb_lufs"], abs=0.02)
    assert res.output.is_file()
    # both models stay loaded in the process for the next job (separate + karaoke share the MDX model)
    assert singer.pool.get("separator", "uvr").warm() == [kit["vocals"], kit["roformer"]]


def test_changing_the_voice_reuses_every_separation_stage(settings, kit, song, tmp_path):
    s = Singer(settings)
    s.cover(_request(song, kit, tmp_path / "a"))
    r2 = s.cover(_request(song, kit, tmp_path / "b").model_copy(update={"voice": "kenji"}))
    assert all(r2.run.step(i).cached for i in ("source", "separate", "karaoke", "dereverb"))
    assert not r2.run.step("convert").cached
    assert r2.run.step("convert_backing").skipped and r2.run.step("rekey_backing").skipped  # key 0: nothing to re-key


def test_backing_kept_and_rekeyed_when_not_converted(settings, kit, song, tmp_path):
    res = Singer(settings).cover(_request(song, kit, tmp_path, key=2))
    assert res.run.step("convert_backing").skipped
    assert not res.run.step("rekey_backing").skipped and res.run.step("rekey_backing").params["semitones"] == 2
    assert "backing_lufs" in res.run.step("mix").meta


def test_cli_preset_and_steps(settings, kit, song, tmp_path):
    res = invoke(
        "cover",
        song,
        "--voice",
        "ayana",
        "--preset",
        kit["vocals"],
        "--steps",
        "vocals,karaoke",
        "--set",
        f'karaoke.model="{kit["vocals"]}"',
        "--format",
        "wav",
        "--out",
        f"{tmp_path}/",
        "--json",
    )
    out = as_json(res)
    assert res.exit_code == 0 and out["ok"], out
    steps = {s["id"]: s for s in out["run"]["steps"]}
    assert steps["separate"]["params"]["engine"] == "uvr" and not steps["karaoke"]["skipped"]
    assert steps["dereverb"]["skipped"]


def test_cli_missing_model_exits_4_naming_the_pull(settings, song, tmp_path):
    (tmp_path / "out").mkdir()
    res = invoke("cover", song, "--voice", "ayana", "--preset", "fast-cpu", "--out", f"{tmp_path}/out/", "--json")
    out = as_json(res)
    assert res.exit_code == 4 and not out["ok"]
    assert "singer models pull vocals-mdx" in out["hint"]
    assert not list((tmp_path / "out").iterdir())  # nothing written


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--convert", "lead,backing"], "karaoke stage"),
        (["--steps", "vocals,drums"], "unknown stage"),
        (["--separator", "spleeter", "--preset", "fast-cpu"], "does not apply"),
    ],
)
def test_cli_refuses_inconsistent_stage_options(settings, song, tmp_path, args, needle):
    res = invoke("cover", song, "--voice", "ayana", *args, "--json")
    out = as_json(res)
    assert res.exit_code == 2 and needle in out["message"]
