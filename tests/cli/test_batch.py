"""`singer batch`: mirrored outputs in the input's format, failures recorded (exit 3), resumable reruns."""

from __future__ import annotations

import csv
import json
import time

from tests import media
from tests.clirun import as_json, invoke


def _folder(tmp_path):
    src = tmp_path / "notes"
    (src / "group").mkdir(parents=True)
    media.voice_wav(src / "a.wav", seconds=1.5, seed=1)
    media.encoded(media.voice_wav(tmp_path / "b.wav", seconds=1.5, seed=2), src / "group" / "b.ogg", "ogg")
    (src / "broken.mp3").write_bytes(b"this is not audio")
    (src / "notes.txt").write_text("ignored: not an audio file")
    return src


def test_batch_converts_records_failures_and_resumes(settings, tmp_path):
    src, out = _folder(tmp_path), tmp_path / "out"
    res = invoke("batch", src, "--voice", "ayana", "--out", out, "--workers", "2", "--json")
    summary = as_json(res)
    assert res.exit_code == 3  # one bad file
    assert (summary["files"], summary["done"], summary["failed"]) == (3, 2, 1)
    assert (out / "a.wav").is_file() and (out / "group" / "b.ogg").is_file()  # tree and formats mirrored
    bad = next(i for i in summary["items"] if i["rel"] == "broken.mp3")
    assert bad["status"] == "failed" and "broken.mp3" in bad["message"]
    assert not (out / "broken.mp3").exists() and not list(out.rglob("*.part"))
    rows = list(csv.DictReader(open(out / "batch-summary.csv")))
    assert {r["rel"]: r["status"] for r in rows} == {"a.wav": "done", "broken.mp3": "failed", "group/b.ogg": "done"}
    assert json.loads((out / "batch-summary.json").read_text())["failed"] == 1

    t0 = time.perf_counter()
    again = as_json(invoke("batch", src, "--voice", "ayana", "--out", out, "--workers", "1", "--json"))
    assert (again["skipped"], again["done"], again["failed"]) == (2, 0, 1) and time.perf_counter() - t0 < 30

    media.voice_wav(src / "a.wav", seconds=1.0, seed=3)  # an edited input runs again; the other stays done
    third = as_json(invoke("batch", src, "--voice", "ayana", "--out", out, "--json"))
    states = {i["rel"]: i["status"] for i in third["items"]}
    assert states == {"a.wav": "done", "broken.mp3": "failed", "group/b.ogg": "skipped"}

    fourth = as_json(invoke("batch", src, "--voice", "ayana", "--out", out, "--denoise", "--json"))
    assert fourth["done"] == 2  # another recipe (here: denoise) makes every output again


def test_batch_of_a_missing_folder_is_an_input_error(settings, tmp_path):
    res = invoke("batch", tmp_path / "nope", "--out", tmp_path / "o", "--json")
    assert res.exit_code == 3 and "not a folder" in as_json(res)["message"]


def test_files_without_an_extension_are_taken_by_their_content(tmp_path):
    from singer.batch import find_inputs, output_format

    (tmp_path / "sub").mkdir()
    media.encoded(media.voice_wav(tmp_path / "v.wav", seconds=0.5), tmp_path / "sub" / "voicemail", "ogg")
    media.encoded(tmp_path / "v.wav", tmp_path / "sub" / "memo", "m4a")
    (tmp_path / "LICENSE").write_text("not audio")
    (tmp_path / "notes.txt").write_text("not audio either")
    found = [p.relative_to(tmp_path).as_posix() for p in find_inputs(tmp_path)]
    assert found == ["v.wav", "sub/memo", "sub/voicemail"]
    assert output_format(tmp_path / "sub" / "voicemail", None, "ogg") == "ogg"  # no extension: the default format


def test_batch_of_songs_through_the_cover_workflow(settings, tmp_path):
    src, out = tmp_path / "songs", tmp_path / "covers"
    src.mkdir()
    media.encoded(media.song_wav(tmp_path / "s.wav", seconds=4.0, seed=5), src / "song.flac", "flac")
    summary = as_json(invoke("batch", src, "--workflow", "cover", "--voice", "ayana", "--out", out, "--json"))
    assert (summary["done"], summary["failed"]) == (1, 0)
    assert (out / "song.flac").is_file()  # its own format kept
    record = json.loads((settings.runs_path / summary["items"][0]["run_id"] / "run.json").read_text())
    assert record["workflow"] == "cover" and "separate" in [s["id"] for s in record["steps"] if not s["skipped"]]
