"""The voice_note workflow's trim and denoise steps, end to end through the real engines (world converter)."""

from __future__ import annotations

import pytest

from singer.api import CoverRequest, Singer
from singer.audio import probe, write_wav
from tests.unit.test_speech import SR, padded_note, with_noise

LEAD_S, TAIL_S = 1.5, 2.0


@pytest.fixture(scope="module")
def note(tmp_path_factory):
    """A 3 s speech-like note between 1.5 s and 2 s of silence, with faint hiss (-65 dBFS): (path, first, last, n)."""
    x, a, b = padded_note("speech", LEAD_S, TAIL_S, noise_dbfs=-65, seed=0, seconds=3.0)
    path = tmp_path_factory.mktemp("note") / "padded note.wav"
    write_wav(path, x, SR)
    return path, a, b, x.shape[1]


def test_voice_note_is_trimmed_unless_asked_not_to(settings, note, tmp_path):
    path, a, b, n = note
    s = Singer(settings)
    r1 = s.convert(CoverRequest(input=str(path), voice="ayana", format="wav", out=str(tmp_path / "trimmed.wav")))
    out = probe(r1.output).duration
    assert out == pytest.approx((b - a) / SR + 0.3, abs=0.25)  # the speech and 0.15 s padding each side
    assert n / SR - out == pytest.approx(LEAD_S + TAIL_S - 0.3, abs=0.25)
    trim = r1.run.step("trim")
    assert not trim.skipped and trim.meta["duration_in"] == pytest.approx(n / SR, abs=1e-3)
    assert trim.meta["duration_out"] == pytest.approx(out, abs=0.01)
    assert trim.meta["lead_trimmed_s"] == pytest.approx(LEAD_S - 0.15, abs=0.25) and trim.meta["method"] != "none"
    assert r1.run.step("denoise").skipped

    r2 = s.convert(
        CoverRequest(input=str(path), voice="ayana", format="wav", trim=False, out=str(tmp_path / "whole.wav"))
    )
    assert probe(r2.output).duration == pytest.approx(n / SR, abs=0.05)
    assert r2.run.step("trim").skipped and r2.run.step("source").cached


def test_step_keys_follow_trim_and_denoise_params(settings, note, tmp_path):
    path, _, _, _ = note
    noisy = tmp_path / "noisy.wav"
    x, _, _ = padded_note("speech", LEAD_S, TAIL_S, seed=0, seconds=3.0)
    write_wav(noisy, with_noise(x, 15.0), SR)
    s = Singer(settings)

    def run(name, src=path, **kw):
        return s.convert(CoverRequest(input=str(src), voice="ayana", format="wav", out=str(tmp_path / name), **kw))

    r1 = run("a.wav")
    r2 = run("b.wav", step_params={"trim": {"pad_s": 0.4}})
    assert r2.run.step("source").cached and not r2.run.step("trim").cached
    assert r2.run.step("trim").key != r1.run.step("trim").key
    assert probe(r2.output).duration == pytest.approx(probe(r1.output).duration + 0.5, abs=0.05)

    d1 = run("c.wav", src=noisy, denoise=True)
    d2 = run("d.wav", src=noisy, denoise=True, step_params={"denoise": {"strength": 0.9}})
    k1, k2 = d1.run.step("denoise"), d2.run.step("denoise")
    assert not k1.skipped and k1.key and k2.key != k1.key and d2.run.step("trim").cached
    assert k2.meta["noise_reduction_db"] > k1.meta["noise_reduction_db"] and k1.meta["noise_floor_dbfs"] < -20
    off = run("e.wav", src=noisy, denoise=True, step_params={"denoise": {"strength": 0}})  # a no-op: passed through
    assert off.run.step("denoise").skipped and off.run.step("denoise").meta == {"skipped": "no-op"}
    assert run("f.wav", src=noisy).run.step("convert").cached  # the same audio as with strength 0


def test_cli_flags_reach_the_workflow(settings, note, tmp_path, monkeypatch):
    from tests.clirun import as_json, invoke

    res = as_json(
        invoke(
            "convert",
            note[0],
            "--voice",
            "ayana",
            "--format",
            "wav",
            "--no-trim",
            "--denoise",
            "--out",
            tmp_path / "x.wav",
            "--json",
        )
    )
    steps = {s["id"]: s for s in res["run"]["steps"]}
    assert steps["trim"]["skipped"] and not steps["denoise"]["skipped"]

    seen = {}

    class FakeBatch:  # records the request `singer batch` builds; converts nothing
        def __init__(self, settings, folder, out, request, workers=1, fmt=None):
            seen.update(request)

        def run(self, on_item):
            return {"done": 0, "skipped": 0, "failed": 0, "seconds": 0.0, "out": str(tmp_path), "items": []}

    monkeypatch.setattr("singer.batch.Batch", FakeBatch)
    assert invoke("batch", tmp_path, "--out", tmp_path / "o", "--no-trim", "--denoise", "--json").exit_code == 0
    assert seen["trim"] is False and seen["denoise"] is True
    seen.clear()
    invoke("batch", tmp_path, "--out", tmp_path / "o", "--json")
    assert "trim" not in seen and "denoise" not in seen  # the workflow's defaults
