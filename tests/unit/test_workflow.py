"""Workflow engine: keys, store atomicity, resume, invalidation, single-flight, run folders, policy flags."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from singer.errors import InputError, UsageError
from singer.progress import RecordingHooks
from singer.workflow.hashing import canonical_json, file_digest, step_key
from singer.workflow.runner import EnginePool, RunContext, Runner
from singer.workflow.spec import load, parse
from singer.workflow.store import Store
from tests import wfkit


def make_runner(settings, hooks=None):
    store = Store(settings.cache_path)
    return Runner(settings, store, RunContext(settings, EnginePool(settings), voices=None), hooks), store


# ---- hashing ----------------------------------------------------------------------------------------------------
def test_key_is_order_and_float_form_independent():
    a = step_key("op", "1", {"x": 1.0, "y": [1, 2]}, {"in": "d1"})
    b = step_key("op", "1", {"y": [1, 2], "x": 1}, {"in": "d1"})
    assert a == b
    assert a != step_key("op", "2", {"x": 1, "y": [1, 2]}, {"in": "d1"})
    assert a != step_key("op", "1", {"x": 1.5, "y": [1, 2]}, {"in": "d1"})
    assert a != step_key("op", "1", {"x": 1, "y": [1, 2]}, {"in": "d2"})


def test_paths_are_refused_as_params():
    with pytest.raises(TypeError):
        canonical_json({"p": Path("/x")})


def test_file_digest_is_by_content_not_name(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "other name é.bin"
    a.write_bytes(b"x" * 5000)
    b.write_bytes(b"x" * 5000)
    assert file_digest(a) == file_digest(b)
    time.sleep(0.01)
    b.write_bytes(b"x" * 4999 + b"y")
    assert file_digest(a) != file_digest(b)


# ---- store ------------------------------------------------------------------------------------------------------
def test_store_failure_leaves_nothing(tmp_path):
    store = Store(tmp_path)

    def boom(work):
        (work / "half.wav").write_bytes(b"partial")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.compute("k" * 40, boom, {})
    assert store.lookup("k" * 40) is None
    assert store.entries() == []
    assert not any(store.tmp.iterdir())


def test_store_manifest_describes_entry(tmp_path):
    store = Store(tmp_path)

    def ok(work):
        (work / "o.txt").write_text("hi")
        return {"audio": work / "o.txt"}, {"note": 1}

    entry, cached = store.compute("ab" * 20, ok, {"step": "s", "op": "o"})
    assert not cached
    m = json.loads((entry.path / "manifest.json").read_text())
    assert m["step"] == "s" and m["outputs"]["audio"]["digest"] == file_digest(entry.path / "o.txt")
    entry2, cached2 = store.compute("ab" * 20, ok, {})
    assert cached2 and entry2.path == entry.path


def test_store_prune_lru(tmp_path):
    store = Store(tmp_path)
    for i in range(3):

        def w(work, i=i):
            (work / "o").write_bytes(b"0" * 1000)
            return {"audio": work / "o"}, {}

        e, _ = store.compute(f"{i:02d}" * 20, w, {})
        os.utime(e.path / ".used", (time.time() - 100 + i, time.time() - 100 + i))
    removed = store.prune(max_bytes=store.total_size() - 1)
    assert [e.key for e in removed] == ["00" * 20]
    assert len(store.entries()) == 2


# ---- runner -----------------------------------------------------------------------------------------------------
def test_second_run_recomputes_nothing_and_links_run_folder(settings, monkeypatch):
    wfkit.install(monkeypatch, settings.home)
    runner, _ = make_runner(settings)
    r1 = runner.run(wfkit.spec(), {})
    assert wfkit.counts(settings.home) == ["a", "b", "c"]
    assert r1.output.read_text() == "ABC"
    r2 = runner.run(wfkit.spec(), {})
    assert wfkit.counts(settings.home) == ["a", "b", "c"]
    assert all(s.cached for s in r2.steps)
    link = r2.run_dir / "02-b"
    assert link.is_symlink() and (link / "manifest.json").exists()


def test_param_change_reruns_that_step_and_later_only(settings, monkeypatch):
    wfkit.install(monkeypatch, settings.home)
    runner, _ = make_runner(settings)
    runner.run(wfkit.spec(), {})
    r = runner.run(wfkit.spec(), {"tb": "b2"})
    assert wfkit.counts(settings.home) == ["a", "b", "c", "b", "c"]
    assert r.output.read_text() == "Ab2C"


def test_same_output_content_stops_invalidation(settings, monkeypatch):
    """b's params change but its output is identical -> c is still a cache hit (content addressing)."""
    wfkit.install(monkeypatch, settings.home)
    runner, _ = make_runner(settings)
    runner.run(wfkit.spec(), {})
    runner.run(wfkit.spec(), {}, overrides={"b": {"unused": 1}})
    assert wfkit.counts(settings.home) == ["a", "b", "c", "b"]


def test_editing_an_input_file_reruns_everything(settings, monkeypatch, tmp_path):
    wfkit.install(monkeypatch, settings.home)
    src = tmp_path / "in put é.txt"
    src.write_text("1")
    runner, _ = make_runner(settings)
    runner.run(wfkit.spec(src), {})
    runner.run(wfkit.spec(src), {})
    assert wfkit.counts(settings.home) == ["a", "b", "c"]
    time.sleep(0.01)
    src.write_text("2")
    r = runner.run(wfkit.spec(src), {})
    assert wfkit.counts(settings.home) == ["a", "b", "c"] * 2
    assert r.output.read_text() == "2ABC"
    # the same content under another name is a hit
    other = tmp_path / "copy.txt"
    other.write_text("2")
    runner.run(wfkit.spec(other), {})
    assert len(wfkit.counts(settings.home)) == 6


def test_recompute_and_no_cache_flags(settings, monkeypatch):
    wfkit.install(monkeypatch, settings.home)
    runner, _ = make_runner(settings)
    runner.run(wfkit.spec(), {})
    runner.run(wfkit.spec(), {}, recompute={"b"})
    assert wfkit.counts(settings.home)[3:] == ["b"]  # same output -> c stays cached
    runner.run(wfkit.spec(), {}, no_cache=True)
    assert wfkit.counts(settings.home)[4:] == ["a", "b", "c"]
    with pytest.raises(UsageError):
        runner.run(wfkit.spec(), {}, recompute={"nope"})


def test_progress_events(settings, monkeypatch):
    wfkit.install(monkeypatch, settings.home)
    hooks = RecordingHooks()
    runner, _ = make_runner(settings, hooks)
    runner.run(wfkit.spec(), {})
    assert hooks.steps("step_start") == ["a", "b", "c"]
    assert hooks.steps("step_progress") == ["a", "b", "c"]
    assert hooks.events[-1][0] == "run_end" and hooks.events[-1][2] is True


def test_disabled_step_passes_through(settings, monkeypatch):
    wfkit.install(monkeypatch, settings.home)
    data = wfkit.chain()
    data["steps"][1]["enabled"] = "$use_b"
    data["steps"][1]["passthrough"] = {"audio": "a.audio"}
    data["vars"]["use_b"] = False
    runner, _ = make_runner(settings)
    r = runner.run(parse(data), {})
    assert r.output.read_text() == "AC"
    assert wfkit.counts(settings.home) == ["a", "c"]


def test_spec_validation():
    with pytest.raises(InputError, match="before it is made"):
        parse({"steps": [{"id": "b", "op": "x", "inputs": {"i": "a.audio"}}]})
    with pytest.raises(InputError, match="malformed"):
        parse({"steps": [{"id": "b", "op": "x", "bogus": 1}]})
    with pytest.raises(InputError, match="Unknown workflow"):
        load("no-such-workflow")


def test_shipped_workflows_parse():
    for name in ("cover", "voice_note"):
        spec = load(name)
        assert spec.steps[0].op == "source" and spec.output == "encode.audio"


# ---- crash safety and single flight (real processes) -------------------------------------------------------------
SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from singer.config import Settings
    from singer.workflow import ops
    from tests import wfkit
    from tests.unit.test_workflow import make_runner
    home = Path({home!r})
    ops.OPS["t_write"] = wfkit.WriteOp(home)
    runner, _ = make_runner(Settings(home=home))
    print(runner.run(wfkit.spec(), {{}}).output.read_text())
    """
)


def _spawn(settings, env_extra=None):
    root = str(Path(__file__).resolve().parents[2])
    code = SCRIPT.format(root=root, home=str(settings.home))
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path: Path, timeout=30.0):
    t0 = time.time()
    while not path.exists():
        if time.time() - t0 > timeout:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)


def test_kill_9_mid_step_then_resume(settings):
    settings.home.mkdir(parents=True)
    p = _spawn(settings, {"SLEEP_STEP": "b"})
    _wait_for(settings.home / "started-b")
    p.send_signal(signal.SIGKILL)
    p.wait()
    store = Store(settings.cache_path)
    assert [e.manifest["step"] for e in store.entries()] == ["a"]  # b left nothing half-written
    p2 = _spawn(settings)
    out, err = p2.communicate(timeout=60)
    assert p2.returncode == 0, err.decode()
    assert out.decode().strip() == "ABC"
    assert wfkit.counts(settings.home) == ["a", "b", "b", "c"]  # a was not recomputed


def test_single_flight_two_processes(settings):
    settings.home.mkdir(parents=True)
    p1 = _spawn(settings, {"SLEEP_STEP": "a", "SLEEP_SECONDS": "2"})
    _wait_for(settings.home / "started-a")
    p2 = _spawn(settings)
    outs = [p.communicate(timeout=60) for p in (p1, p2)]
    assert [o[0].decode().strip() for o in outs] == ["ABC", "ABC"]
    assert wfkit.counts(settings.home) == ["a", "b", "c"]  # the second process computed nothing


def test_single_flight_owner_killed(settings):
    settings.home.mkdir(parents=True)
    p1 = _spawn(settings, {"SLEEP_STEP": "a"})
    _wait_for(settings.home / "started-a")
    p2 = _spawn(settings)
    time.sleep(1.0)
    assert p2.poll() is None  # waiting on a's lock, not computing it again
    p1.send_signal(signal.SIGKILL)
    p1.wait()
    out, err = p2.communicate(timeout=60)
    assert p2.returncode == 0, err.decode()
    # p1 died holding the lock; p2 took over and computed each step once
    assert wfkit.counts(settings.home) == ["a", "a", "b", "c"]
