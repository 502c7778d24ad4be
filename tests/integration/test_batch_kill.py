"""`singer batch` killed with -9 mid-run (the whole process group: batch and workers) loses nothing it finished and
leaves no partial output; the rerun skips what was recorded and converts the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from singer.audio import probe
from tests import media
from tests.procs import wait_for


def _recorded(out):
    try:
        return json.loads((out / ".singer-batch.json").read_text())["items"]
    except (OSError, ValueError, KeyError):
        return {}


def test_kill_9_mid_batch_then_rerun(tmp_path):
    src, out = tmp_path / "notes", tmp_path / "out"
    src.mkdir()
    for i in range(8):
        media.voice_wav(src / f"n{i}.wav", seconds=2.0, seed=i)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "SINGER_HOME": str(tmp_path / "home")}
    cmd = [
        sys.executable,
        "-m",
        "singer",
        "batch",
        str(src),
        "--voice",
        "ayana",
        "--out",
        str(out),
        "--workers",
        "1",
        "--format",
        "wav",
        "--json",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(_recorded(out)) >= 2, 180, "two finished files")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the batch and its worker, mid-file
        proc.wait(10)
    done = _recorded(out)
    assert 2 <= len(done) < 8
    assert not [p for p in out.rglob("*") if p.name.endswith(".part")]  # no partial file anywhere
    for rel, rec in done.items():  # every recorded output is whole
        assert (out / rel).stat().st_size == rec["size"] and probe(out / rel).duration > 1.0
    for p in out.glob("n*.wav"):  # an output renamed into place just before the kill is whole too
        assert probe(p).duration > 1.0

    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert res.returncode == 0 and summary["failed"] == 0
    assert summary["skipped"] == len(done) and summary["done"] == 8 - len(done)
