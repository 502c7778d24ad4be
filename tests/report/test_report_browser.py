"""Run and batch reports, rendered in headless Chromium and checked for their parts: the workflow's steps with
parameters, cache and timing; loudness figures, a waveform, a decoded spectrogram and a playable player for every
stage; the pitch curves of source vs converted vocals; nothing fetched from the network."""

from __future__ import annotations

import json

import pytest

from singer.api import CoverRequest, Singer
from singer.batch import Batch
from tests import media
from tests.browser import AUDIO_DURATIONS, IMAGE_WIDTHS, page


@pytest.fixture
def converted(settings, tmp_path):
    """A voice note converted twice (the second run is all cache hits)."""
    note = media.voice_wav(tmp_path / "hello.wav", seconds=3.0, seed=4)
    s = Singer(settings)
    first = s.convert(CoverRequest(input=str(note), voice="ayana", format="ogg", out=str(tmp_path / "first.ogg")))
    second = s.convert(CoverRequest(input=str(note), voice="ayana", format="ogg", out=str(tmp_path / "again.ogg")))
    return first, second


def _check_page(pg, url: str) -> None:
    pg.goto(url)
    assert pg.console_errors == []
    assert all(u.startswith(("file:", "data:")) for u in pg.requests), pg.requests  # offline: nothing fetched
    assert all(w > 0 for w in pg.evaluate(IMAGE_WIDTHS))


def test_run_report_shows_every_part(settings, converted):
    from singer.report import run_report

    first, second = converted
    html = run_report(settings, first.run.run_id[:22])  # a run id, or enough of it
    record = json.loads((first.run.run_dir / "run.json").read_text())
    stages = [f"{s['id']}.{n}" for s in record["steps"] if not s["skipped"] for n in s["outputs"]]
    with page() as pg:
        _check_page(pg, html.as_uri())
        assert "voice_note run" in pg.inner_text("h1")
        rows = pg.locator("table.steps tbody tr")
        assert rows.count() == len(record["steps"])
        for i, step in enumerate(record["steps"]):
            text = rows.nth(i).inner_text()
            assert step["id"] in text and " s" in text
            assert ("skipped" in text) if step["skipped"] else ("computed" in text)
        assert "voice=ayana" in pg.locator("table.steps").inner_text()  # parameters shown
        shown = pg.eval_on_selector_all(".stage[data-stage]", "els => els.map(e => e.dataset.stage)")
        assert shown == list(dict.fromkeys(stages))
        for el in pg.locator(".stage[data-stage]").all():
            assert el.locator("svg.wave polygon").count() == 1
            assert el.locator(".spec img").count() == 1
            assert "LUFS" in el.locator("table.figures").inner_text()
        durations = pg.evaluate(AUDIO_DURATIONS)
        assert len(durations) == len(shown) and all(d > 2.5 for d in durations), durations  # every player plays
        curves = pg.eval_on_selector_all(
            ".pitch-block path.curve", "els => els.map(e => [e.dataset.label, e.getAttribute('d').length])"
        )
        assert [c[0] for c in curves] == ["source vocals", "converted vocals"] and all(n > 50 for _, n in curves)
        cards = pg.inner_text(".cards")
        assert "LUFS" in cards and "dBTP" in cards
        pg.screenshot(path=str(html.with_suffix(".png")), full_page=True)

    again = run_report(settings, second.output)  # by the output file's content: the newest run that made it
    assert again.parent.name == second.run.run_id
    with page() as pg:
        _check_page(pg, again.as_uri())
        badges = pg.locator("table.steps tbody tr").all_inner_texts()
        assert all("cache hit" in t or "skipped" in t for t in badges)


def test_batch_report_lists_files_failures_and_plays_outputs(settings, tmp_path):
    from singer.report import batch_report

    src, out = tmp_path / "notes", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    media.voice_wav(src / "one.wav", seconds=2.0, seed=1)
    media.encoded(media.voice_wav(tmp_path / "two.wav", seconds=2.0, seed=2), src / "sub" / "two.ogg", "ogg")
    (src / "bad.mp3").write_bytes(b"not audio at all")
    summary = Batch(settings, src, out, {"workflow": "voice_note", "voice": "ayana"}, workers=1).run()
    assert summary["report"] == str(out / "batch-report.html")  # written at the end of every batch
    html = batch_report(settings, out, runs=True)
    with page() as pg:
        _check_page(pg, html.as_uri())
        assert "1 failed" in pg.inner_text("h1")
        assert "bad.mp3" in pg.inner_text("table.failures")
        rows = pg.locator("table.items tbody tr").all_inner_texts()
        assert len(rows) == 3 and sum("done" in r for r in rows) == 2
        durations = pg.evaluate(AUDIO_DURATIONS)
        assert len(durations) == 2 and all(d > 1.5 for d in durations), durations  # players reach the outputs
        links = pg.eval_on_selector_all("table.items a", "els => els.map(e => e.getAttribute('href'))")
        assert sorted(links) == ["reports/bad.mp3.html", "reports/one.wav.html", "reports/sub/two.ogg.html"]
        pg.goto((out / "reports/sub/two.ogg.html").as_uri())
        assert "voice_note run" in pg.inner_text("h1")
        pg.goto((out / "reports/bad.mp3.html").as_uri())  # a failed file's run: where and why it failed
        assert "failed" in pg.inner_text("h1") and "step source" in pg.inner_text(".failure")
        assert "bad.mp3" in pg.inner_text(".failure")
