"""Batches over HTTP (POST /v1/batches): the CLI's folder run as jobs on the service's queue, through TestClient."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from singer.batch import Item, plan_outputs
from singer.http.app import create_app
from tests import media

KEY = {"X-API-Key": "k-one"}
OTHER = {"X-API-Key": "k-two"}


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "shared-notes"
    root.mkdir()
    return root


@pytest.fixture
def app_settings(settings, roots):
    return settings.model_copy(
        update={"api_keys": "k-one,k-two", "max_jobs_per_key": 3, "rate_limit": 1000, "batch_roots": str(roots)}
    )


@pytest.fixture(scope="module")
def note(tmp_path_factory):
    """One short voice note as wav bytes; every file of a batch has the same sound, so the step cache computes the
    conversion once and the batches stay quick."""
    folder = tmp_path_factory.mktemp("note")
    return media.voice_wav(folder / "n.wav", seconds=1.0)


def _wait(client, batch_id, headers=KEY, timeout=180.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        batch = client.get(f"/v1/batches/{batch_id}", headers=headers).json()
        if batch["state"] == "done":
            return batch
        time.sleep(0.2)
    raise AssertionError(f"batch {batch_id} did not finish: {batch}")


def _zip(client, batch_id) -> zipfile.ZipFile:
    r = client.get(f"/v1/batches/{batch_id}/result", headers=KEY)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text
    return zipfile.ZipFile(io.BytesIO(r.content))


def test_upload_batch_runs_each_file_and_records_bad_ones(live, note, tmp_path):
    ogg = media.encoded(note, tmp_path / "a.ogg", "ogg")
    files = [
        ("files", ("monday/a.ogg", ogg.read_bytes(), "audio/ogg")),
        ("files", ("b.wav", note.read_bytes(), "audio/wav")),
        ("files", ("notes.txt", b"this is not audio at all", "text/plain")),
    ]
    r = live.post("/v1/batches", files=files, data={"voice": "ayana"}, headers=KEY)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert accepted["total"] == 3 and accepted["status_url"] == f"/v1/batches/{accepted['batch_id']}"
    batch = _wait(live, accepted["batch_id"])
    assert batch["counts"] == {"total": 3, "queued": 0, "running": 0, "done": 2, "failed": 1}
    assert batch["progress"] == 1.0 and batch["result_url"] == f"/v1/batches/{batch['batch_id']}/result"
    items = {i["input"]: i for i in batch["items"]}
    assert set(items) == {"a.ogg", "b.wav", "notes.txt"}  # the client's names, directories dropped
    bad = items["notes.txt"]
    assert bad["state"] == "failed" and bad["result_url"] is None
    assert bad["error"]["error"] == "bad_input" and "notes.txt" in bad["error"]["message"]
    assert "uploads" not in json.dumps(bad["error"])  # our file names and paths stay ours
    for name in ("a.ogg", "b.wav"):  # each file is an ordinary job of the key that sent the batch
        job = live.get(items[name]["result_url"].removesuffix("/result"), headers=KEY).json()
        assert job["state"] == "done" and job["batch"] == batch["batch_id"]
    assert live.get(items["b.wav"]["result_url"], headers=KEY).content[:4] == b"RIFF"

    z = _zip(live, batch["batch_id"])
    assert set(z.namelist()) == {
        "a.ogg",
        "b.wav",
        "batch-summary.json",
        "batch-summary.csv",
        "batch-report.html",
    }  # formats kept
    page = z.read("batch-report.html").decode()
    assert 'src="a.ogg"' in page and 'src="b.wav"' in page and "notes.txt" in page  # plays the files beside it
    assert z.read("a.ogg")[:4] == b"OggS" and z.read("b.wav")[:4] == b"RIFF"
    summary = json.loads(z.read("batch-summary.json"))
    assert {k: summary[k] for k in ("files", "done", "skipped", "failed")} == {
        "files": 3,
        "done": 2,
        "skipped": 0,
        "failed": 1,
    }
    rows = list(csv.DictReader(io.StringIO(z.read("batch-summary.csv").decode())))
    assert list(rows[0]) == [f.name for f in dataclasses.fields(Item)]  # the CLI's columns
    by_rel = {row["rel"]: row for row in rows}
    assert by_rel["b.wav"]["output"] == "b.wav" and float(by_rel["b.wav"]["duration"]) == pytest.approx(1.0, abs=0.1)
    assert by_rel["notes.txt"]["status"] == "failed" and "notes.txt" in by_rel["notes.txt"]["message"]
    settings = live.app.state.service.settings
    assert not (settings.cache_path / "uploads" / batch["batch_id"]).exists()  # its uploads went when it ended
    r = live.get(batch["report_url"], headers=KEY)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text.count('<audio controls preload="none" src="data:audio/') == 2 and "1 failed" in r.text
    assert not list((settings.home / "batches" / batch["batch_id"]).glob(".result-*"))  # the zip went once sent


def test_folder_batch_mirrors_the_tree_and_records_bad_files(live, note, roots, tmp_path):
    folder = roots / "team" / "week1"
    (folder / "monday").mkdir(parents=True)
    (folder / "a.wav").write_bytes(note.read_bytes())
    media.encoded(note, folder / "monday" / "b.ogg", "ogg")
    (folder / "monday" / "broken.mp3").write_bytes(b"ID3 but nothing after it")  # bad: not refused up front
    (folder / "readme.txt").write_text("not a voice note")  # not audio by name: left out, like the CLI
    r = live.post("/v1/batches", data={"folder": "team/week1", "voice": "ayana"}, headers=KEY)  # under a root
    assert r.status_code == 202, r.text
    assert r.json()["total"] == 3
    batch = _wait(live, r.json()["batch_id"])
    states = {i["input"]: i["state"] for i in batch["items"]}
    assert states == {"a.wav": "done", "monday/b.ogg": "done", "monday/broken.mp3": "failed"}
    broken = next(i for i in batch["items"] if i["state"] == "failed")
    assert "broken.mp3" in broken["error"]["message"] and "Traceback" not in broken["error"]["message"]
    z = _zip(live, batch["batch_id"])
    assert set(z.namelist()) == {
        "a.wav",
        "monday/b.ogg",
        "batch-summary.json",
        "batch-summary.csv",
        "batch-report.html",
    }
    summary = json.loads(z.read("batch-summary.json"))
    assert summary["folder"] == "team/week1" and [i["rel"] for i in summary["items"]] == [
        "a.wav",
        "monday/b.ogg",
        "monday/broken.mp3",
    ]
    assert (folder / "a.wav").is_file()  # the inputs are the client's: never removed


def test_folder_batches_stay_inside_the_batch_roots(idle, roots, tmp_path):
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.wav").write_bytes(b"RIFF")
    (roots / "ok").mkdir()
    os.symlink(outside, roots / "link")
    cases = [str(outside), "../private", str(roots / ".." / "private"), "link", str(roots / "link")]
    for folder in cases:
        r = idle.post("/v1/batches", data={"folder": folder}, headers=KEY)
        assert r.status_code == 403, (folder, r.text)
        assert r.json()["error"] == "forbidden" and "SINGER_BATCH_ROOTS" in r.json()["message"]
    # a linked file inside the folder is not followed out of the roots: it is a failed item, not read
    os.symlink(outside / "secret.wav", roots / "ok" / "secret.wav")
    (roots / "ok" / "fine.wav").write_bytes(b"RIFF")
    r = idle.post("/v1/batches", data={"folder": str(roots / "ok")}, headers=KEY)
    assert r.status_code == 202, r.text
    items = {i["input"]: i for i in idle.get(r.json()["status_url"], headers=KEY).json()["items"]}
    assert items["secret.wav"]["state"] == "failed" and items["secret.wav"]["error"]["error"] == "forbidden"
    assert items["fine.wav"]["state"] == "queued"


def test_folder_batches_are_refused_without_batch_roots(app_settings, roots):
    (roots / "a.wav").write_bytes(b"RIFF")
    with TestClient(create_app(app_settings.model_copy(update={"batch_roots": ""}), run_worker=False)) as c:
        r = c.post("/v1/batches", data={"folder": str(roots)}, headers=KEY)
    assert r.status_code == 403 and "SINGER_BATCH_ROOTS is empty" in r.json()["message"]


def test_only_the_submitting_key_sees_a_batch(idle, note):
    r = idle.post("/v1/batches", files=[("files", ("n.wav", note.read_bytes(), "audio/wav"))], headers=KEY)
    batch_id = r.json()["batch_id"]
    assert idle.get(f"/v1/batches/{batch_id}", headers=KEY).json()["state"] == "queued"
    for url in (f"/v1/batches/{batch_id}", f"/v1/batches/{batch_id}/result"):
        other = idle.get(url, headers=OTHER)
        assert other.status_code == 404 and other.json()["error"] == "not_found"
    assert idle.get(f"/v1/batches/{batch_id}/result", headers=KEY).json()["error"] == "not_ready"


def test_limits_and_empty_batches(app_settings, note, roots):
    cfg = app_settings.model_copy(update={"max_batch_files": 2, "max_batches_per_key": 1})
    for name in ("a.wav", "b.wav", "c.wav"):
        (roots / "three" / name).parent.mkdir(exist_ok=True)
        (roots / "three" / name).write_bytes(b"RIFF")
    (roots / "empty" / "sub").mkdir(parents=True)
    wav = note.read_bytes()
    with TestClient(create_app(cfg, run_worker=False)) as c:
        r = c.post("/v1/batches", files=[("files", (f"{i}.wav", wav, "audio/wav")) for i in range(3)], headers=KEY)
        assert r.status_code == 400 and "limit is 2" in r.json()["message"]
        r = c.post("/v1/batches", data={"folder": "three"}, headers=KEY)
        assert r.status_code == 400 and "limit is 2" in r.json()["message"]
        r = c.post("/v1/batches", data={"folder": "empty"}, headers=KEY)
        assert r.status_code == 400 and "No audio or video files" in r.json()["message"]
        r = c.post("/v1/batches", data={"voice": "ayana"}, headers=KEY)
        assert r.status_code == 400 and "empty" in r.json()["message"]
        r = c.post("/v1/batches", files=[("files", ("n.wav", wav, "audio/wav"))], data={"key": "99"}, headers=KEY)
        assert r.status_code == 400 and "key" in r.json()["message"]  # the key rule: singer.keys.parse_key
        r = c.post("/v1/batches", files=[("files", ("n.wav", wav, "audio/wav"))], data={"voice": "nobody"}, headers=KEY)
        assert r.status_code == 404 and r.json()["error"] == "voice_not_found"
        assert not any((cfg.cache_path / "uploads").rglob("*"))  # refused batches leave no upload behind
        files = [("files", ("n.wav", wav, "audio/wav"))]
        assert c.post("/v1/batches", files=files, data={"key": "auto"}, headers=KEY).status_code == 202
        r = c.post("/v1/batches", files=files, headers=KEY)  # one unfinished batch per key here
        assert r.status_code == 429 and r.json()["error"] == "too_many_batches"
        assert c.post("/v1/batches", files=files, headers=OTHER).status_code == 202
        # a key's batch jobs do not count against its single jobs (max_jobs_per_key)
        assert c.post("/v1/covers", json={"query": "a song"}, headers=KEY).status_code == 202


def test_a_single_job_sent_after_a_batch_runs_first(idle, note):
    """With the worker stopped: a batch, then one voice note; the voice note is claimed first."""
    files = [("files", (f"{i}.wav", note.read_bytes(), "audio/wav")) for i in range(3)]
    batch = idle.post("/v1/batches", files=files, headers=KEY).json()
    single = idle.post("/v1/conversions", files={"file": ("n.wav", note.read_bytes(), "audio/wav")}, headers=KEY).json()
    store = idle.app.state.service.store
    order = [store.claim().id for _ in range(4)]
    items = idle.get(f"/v1/batches/{batch['batch_id']}", headers=KEY).json()["items"]
    assert order == [single["job_id"], *(i["job_id"] for i in items)]


def test_openapi_documents_the_batch_routes(idle):
    spec = idle.get("/openapi.json").json()
    assert {"/v1/batches", "/v1/batches/{batch_id}", "/v1/batches/{batch_id}/result"} <= set(spec["paths"])
    assert spec["components"]["schemas"]["BatchOut"].get("examples")
    assert "403" in spec["paths"]["/v1/batches"]["post"]["responses"]


def test_a_batch_of_only_bad_files_is_done_at_once(idle):
    files = [("files", ("a.ogg", b"nope", "audio/ogg")), ("files", ("a.ogg", b"nope again", "audio/ogg"))]
    r = idle.post("/v1/batches", files=files, headers=KEY)
    assert r.status_code == 202 and r.json()["state"] == "done"
    batch = idle.get(r.json()["status_url"], headers=KEY).json()
    assert [i["input"] for i in batch["items"]] == ["a.ogg", "a-2.ogg"]  # same client name: told apart
    assert batch["counts"]["failed"] == 2 and batch["progress"] == 1.0
    z = _zip(idle, batch["batch_id"])
    assert sorted(z.namelist()) == ["batch-report.html", "batch-summary.csv", "batch-summary.json"]
    assert json.loads(z.read("batch-summary.json"))["failed"] == 2
    uploads = idle.app.state.service.settings.cache_path / "uploads"
    assert not (uploads / batch["batch_id"]).exists()


def test_uploads_obey_the_size_and_duration_limits_of_voice_notes(app_settings, note, tmp_path):
    ogg = media.encoded(note, tmp_path / "n.ogg", "ogg").read_bytes()  # 1 s, a few kB
    cfg = app_settings.model_copy(update={"max_upload_mb": 0.05, "max_upload_duration": 0.5})
    with TestClient(create_app(cfg, run_worker=False)) as c:
        files = [("files", ("long.ogg", ogg, "audio/ogg")), ("files", ("big.wav", b"\0" * 60_000, "audio/wav"))]
        r = c.post("/v1/batches", files=files, headers=KEY)
        assert r.status_code == 202 and r.json()["state"] == "done"
        errors = {i["input"]: i["error"] for i in c.get(r.json()["status_url"], headers=KEY).json()["items"]}
    assert errors["big.wav"]["error"] == "too_large" and "0.05 MB" in errors["big.wav"]["message"]
    assert errors["long.ogg"]["error"] == "bad_input" and "the limit is" in errors["long.ogg"]["message"]


# HTTP batches name outputs as `singer batch` does (singer.batch.plan_outputs): x.wav and x.flac in one folder
# become x.ogg and x-2.ogg, never one file twice.
def test_folder_and_upload_batches_give_each_input_its_own_output(app_settings, roots, tmp_path):
    note = media.voice_wav(tmp_path / "n.wav", seconds=0.5)
    folder = roots / "same"
    folder.mkdir()
    (folder / "x.wav").write_bytes(note.read_bytes())
    media.encoded(note, folder / "x.flac", "flac")
    with TestClient(create_app(app_settings, run_worker=False)) as c:
        from singer.jobs.paths import batch_out

        r = c.post("/v1/batches", data={"folder": "same", "format": "ogg"}, headers=KEY)
        assert r.status_code == 202, r.text
        batch_id = r.json()["batch_id"]
        outs = [
            Path(j.request["out"]).relative_to(batch_out(app_settings, batch_id)).as_posix()
            for j in c.app.state.service.store.batches.jobs(batch_id)
        ]
        assert sorted(outs) == ["x-2.ogg", "x.ogg"]
        assert sorted(outs) == sorted(plan_outputs([("x.wav", "ogg"), ("x.flac", "ogg")]))

        files = [
            ("files", ("x.wav", note.read_bytes(), "audio/wav")),
            ("files", ("x.flac", (folder / "x.flac").read_bytes(), "audio/flac")),
        ]
        r = c.post("/v1/batches", files=files, data={"format": "ogg"}, headers=KEY)
        assert r.status_code == 202, r.text
        batch_id = r.json()["batch_id"]
        outs = {
            Path(j.request["out"]).relative_to(batch_out(app_settings, batch_id)).as_posix()
            for j in c.app.state.service.store.batches.jobs(batch_id)
        }
        assert outs == {"x.ogg", "x-2.ogg"}
