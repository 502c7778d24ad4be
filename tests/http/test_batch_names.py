"""HTTP batches name outputs as ``singer batch`` does (singer.batch.plan_outputs): x.wav and x.flac in one folder
become x.ogg and x-2.ogg, never one file twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from singer.batch import plan_outputs
from singer.http.app import create_app
from tests import media
from tests.http.test_batches import app_settings, roots  # noqa: F401 - the same apps as the batch tests

KEY = {"X-API-Key": "k-one"}




def test_folder_and_upload_batches_give_each_input_its_own_output(app_settings, roots, tmp_path):
    note = media.voice_wav(tmp_path / "n.wav", seconds=0.5)
    folder = roots / "same"
    folder.mkdir()
    (folder / "x.wav").write_bytes(note.read_bytes())
    media.encoded(note, folder / "x.flac", "flac")
    with TestClient(create_app(app_settings, run_worker=False)) as c:
        from singer.jobs.batches import batch_out

        r = c.post("/v1/batches", data={"folder": "same", "format": "ogg"}, headers=KEY)
        assert r.status_code == 202, r.text
        batch_id = r.json()["batch_id"]
        outs = [Path(j.request["out"]).relative_to(batch_out(app_settings, batch_id)).as_posix()
                for j in c.app.state.service.store.batches.jobs(batch_id)]
        assert sorted(outs) == ["x-2.ogg", "x.ogg"]
        assert sorted(outs) == sorted(plan_outputs([("x.wav", "ogg"), ("x.flac", "ogg")]))

        files = [("files", ("x.wav", note.read_bytes(), "audio/wav")),
                 ("files", ("x.flac", (folder / "x.flac").read_bytes(), "audio/flac"))]
        r = c.post("/v1/batches", files=files, data={"format": "ogg"}, headers=KEY)
        assert r.status_code == 202, r.text
        batch_id = r.json()["batch_id"]
        outs = {Path(j.request["out"]).relative_to(batch_out(app_settings, batch_id)).as_posix()
                for j in c.app.state.service.store.batches.jobs(batch_id)}
        assert outs == {"x.ogg", "x-2.ogg"}
