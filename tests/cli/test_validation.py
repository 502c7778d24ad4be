"""A bad request is a usage error found before any step runs (issue 12): the key, a step parameter, a format.
The run's run.json records the error and the step it belongs to; no step computed anything."""

from __future__ import annotations

import json

import pytest

from tests import media
from tests.clirun import as_json, invoke


@pytest.fixture
def song(tmp_path):
    return media.song_wav(tmp_path / "Test Song.wav", seconds=3.0, seed=9)


def _runs(settings):
    folder = settings.runs_path
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*/run.json"))] if folder.is_dir() else []


def _computed(settings):
    """Step entries in the cache (a step that ran wrote one)."""
    return [p for p in settings.cache_path.rglob("manifest.json")] if settings.cache_path.is_dir() else []


@pytest.mark.parametrize(
    "args,words",
    [
        (["--key", "30"], "--key"),
        (["--key", "nan"], "--key"),
        (["--key", "inf"], "--key"),
        (["--key", "1e308"], "--key"),
        (["--set", "convert.key=30"], "convert.key"),
        (["--set", "convert.key=nan"], "convert.key"),
    ],
)
def test_a_bad_key_fails_before_any_step(settings, song, tmp_path, args, words):
    res = invoke("cover", song, "--voice", "ayana", "--out", f"{tmp_path}/", "--json", *args)
    assert res.exit_code == 2, res.stdout
    data = as_json(res)
    assert data["error"] == "usage" and words in data["message"] and "-24 to 24" in data["hint"]
    assert not _computed(settings)


@pytest.mark.parametrize(
    "args,step,param",
    [
        (["--set", "source.sample_rate=x"], "source", "sample_rate"),
        (["--set", "source.channels=[1]"], "source", "channels"),
        (["--set", "rekey.semitones=30"], "rekey", "semitones"),
        (["--set", "rekey.semitones=nan"], "rekey", "semitones"),
        (["--set", "mix.target_lufs=3"], "mix", "target_lufs"),
        (["--set", "convert.strength=high"], "convert", "strength"),
        (["--set", "encode.format=xyz"], "encode", "xyz"),
    ],
)
def test_a_bad_step_parameter_is_a_usage_error_before_any_step(settings, song, tmp_path, args, step, param):
    res = invoke("cover", song, "--voice", "ayana", "--out", f"{tmp_path}/", "--json", *args)
    assert res.exit_code == 2, res.stdout
    data = as_json(res)
    assert data["error"] == "usage" and f"'{step}'" in data["message"] and param in data["message"], data
    assert "Internal error" not in data["message"] and "Traceback" not in res.stdout + res.stderr
    assert not _computed(settings)  # found before the first step ran
    (run,) = _runs(settings)
    assert run["ok"] is False and run["steps"] == []
    assert run["error"]["error"] == "usage" and run["error"]["step"] == step and param in run["error"]["message"]


def test_a_step_failing_at_run_time_is_recorded_with_its_step(settings, song, tmp_path, monkeypatch):
    from singer.workflow import ops

    def broken(self, ctx, work, inputs, bound, progress):
        raise RuntimeError("/secret/server/path")

    monkeypatch.setattr(ops.MixOp, "run", broken)
    res = invoke("cover", song, "--voice", "ayana", "--out", f"{tmp_path}/", "--json")
    assert res.exit_code == 1
    (run,) = _runs(settings)
    assert run["ok"] is False and run["error"]["step"] == "mix" and run["error"]["error"] == "step_failed"
    assert "mix" not in [s["id"] for s in run["steps"]] and "convert" in [s["id"] for s in run["steps"]]


def test_a_bug_while_binding_is_a_failed_step_not_a_bare_internal_error(settings, song, tmp_path, monkeypatch):
    from singer.workflow import ops

    def broken(self, ctx, params, engine):
        raise OSError("disk on fire")

    monkeypatch.setattr(ops.MixOp, "bind", broken)
    res = invoke("cover", song, "--voice", "ayana", "--out", f"{tmp_path}/", "--json")
    assert res.exit_code == 1 and as_json(res)["error"] == "step_failed"
    (run,) = _runs(settings)
    assert run["error"]["step"] == "mix" and run["error"]["error"] == "step_failed" and not _computed(settings)


def test_good_overrides_still_run(settings, song, tmp_path):
    res = invoke(
        "cover",
        song,
        "--voice",
        "ayana",
        "--out",
        f"{tmp_path}/",
        "--json",
        "--key",
        "+2",
        "--set",
        "source.sample_rate=22050",
        "--set",
        "mix.vocal_gain_db=1",
    )
    assert res.exit_code == 0, res.stdout
    steps = {s["id"]: s for s in as_json(res)["run"]["steps"]}
    assert steps["source"]["params"]["sample_rate"] == 22050 and steps["rekey"]["params"]["semitones"] == 2.0
