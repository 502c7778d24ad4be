"""`singer cache du | prune` over the step store and its side caches (downloads, library index, HTTP job outputs,
voice previews): sizes and entry counts per namespace, oldest first, and nothing in use is ever removed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from singer import locks
from singer.api import Singer
from singer.jobs.store import JobStore
from singer.workflow.store import Pins, Store
from tests.clirun import as_json, invoke

DAY = 86400.0


def _file(path: Path, size: int, age_days: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    when = time.time() - age_days * DAY
    os.utime(path, (when, when))
    return path


def _step(store: Store, key: str, size: int, age_days: float) -> None:
    def fill(work):
        return {"audio": _file(work / "o.wav", size)}, {}

    entry, _ = store.compute(key, fill, {"step": "s", "op": "separate"})
    when = time.time() - age_days * DAY
    os.utime(entry.path / ".used", (when, when))


def _job(jobs: JobStore, cache: Path, state: str, size: int, age_days: float) -> str:
    job = jobs.submit("owner", "cover", {"query": "song"})
    out = _file(cache / "jobs" / job.id / "song.mp3", size, age_days)
    if state != "queued":
        jobs.claim()
    if state == "done":
        jobs.finish(job.id, {"output": str(out), "content_type": "audio/mpeg", "format": "mp3"})
    elif state == "failed":
        jobs.fail(job.id, {"error": "step_failed", "message": "no"})
    return job.id


@pytest.fixture
def full(settings):
    """A cache with entries in every namespace, old ones and held ones; yields what the tests look at."""
    cache = settings.cache_path
    store = Store(cache)
    _step(store, "aa" * 20, 1000, age_days=10)
    _step(store, "bb" * 20, 1000, age_days=9)
    pins = Pins()
    assert store.lookup("bb" * 20, pins) is not None  # a running workflow holds this step
    dl = settings.downloads_path
    song = _file(dl / "youtube-abc.m4a", 2000, age_days=8)
    (dl / ".urls").mkdir(parents=True)
    (dl / ".urls" / "k.json").write_text(json.dumps({"url": "https://x/y", "file": song.name}))
    _file(dl / "by-caller" / "k1" / "generic-x.mp3", 1500, age_days=7)
    _file(dl / ".download-dead" / "media.m4a.part", 300, age_days=6)  # a killed download's leftover
    live_dl, live_fd = locks.hold_new(lambda: _mkdir(dl / ".download-live"))
    _file(live_dl / "media.m4a.part", 400, age_days=6)  # a download in progress
    _file(cache / "library-index.json", 700, age_days=5)
    _file(cache / ".library-index-dead.tmp", 50, age_days=5)
    previews = cache / "previews"
    _file(previews / "ayana.ogg", 600, age_days=4)
    part, part_fd = locks.hold_new(lambda: _file(previews / ".mine.ogg.abc.part", 0))
    _file(part, 200, age_days=4)  # a preview being written
    jobs = JobStore(settings.home / "jobs.db")
    ids = {s: _job(jobs, cache, s, 900, age_days=3) for s in ("running", "done", "failed")}
    yield {"settings": settings, "store": store, "ids": ids, "live_dl": live_dl, "part": part, "song": song}
    pins.release()
    locks.release(live_fd)
    locks.release(part_fd)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_du_reports_every_namespace(full):
    du = as_json(invoke("cache", "du", "--json"))
    spaces = du["namespaces"]
    assert spaces["steps"] == {**spaces["steps"], "bytes": full["store"].total_size(), "entries": 2}
    dl = spaces["downloads"]
    assert dl["entries"] == 4  # two songs, a dead and a live temp folder
    assert dl["bytes"] == 2000 + len((full["settings"].downloads_path / ".urls" / "k.json").read_bytes()) + 1500 + 700
    assert spaces["library-index"] == {**spaces["library-index"], "bytes": 750, "entries": 2}
    assert spaces["previews"] == {**spaces["previews"], "bytes": 800, "entries": 2}
    assert spaces["jobs"] == {**spaces["jobs"], "bytes": 2700, "entries": 3}
    assert du["bytes"] == sum(u["bytes"] for u in spaces.values())
    assert du["by_op"] == {"separate": full["store"].total_size()}
    assert Singer(full["settings"]).cache_usage() == spaces


def test_prune_by_size_removes_oldest_first_and_never_what_is_in_use(full):
    s, cache = full["settings"], full["settings"].cache_path
    dry = as_json(invoke("cache", "prune", "--max-size", "0B", "--dry-run", "--json"))
    assert dry["dry_run"] and dry["removed"] == ["aa" * 20]
    assert (cache / "previews" / "ayana.ogg").exists()  # a dry run removes nothing

    pr = as_json(invoke("cache", "prune", "--max-size", "0B", "--json"))
    assert pr["removed"] == ["aa" * 20] and "steps/" + "bb" * 20 in pr["in_use"]
    gone = pr["removed_by_namespace"]
    assert sorted(gone["downloads"]) == sorted(
        ["youtube-abc.m4a", str(Path("by-caller/k1/generic-x.mp3")), ".download-dead"]
    )
    assert sorted(gone["library-index"]) == [".library-index-dead.tmp", "library-index.json"]
    assert gone["previews"] == ["ayana.ogg"]
    assert gone["jobs"] == [full["ids"]["failed"]]
    # held: the pinned step, the live download, the preview being written, the running job; the finished job's
    # output its client may still fetch goes by age only
    assert Store(cache).lookup("bb" * 20) is not None
    assert (full["live_dl"] / "media.m4a.part").exists() and full["part"].exists()
    assert (cache / "jobs" / full["ids"]["running"]).is_dir() and (cache / "jobs" / full["ids"]["done"]).is_dir()
    assert not full["song"].exists() and not (s.downloads_path / ".urls" / "k.json").exists()  # its url record too
    held = Store(cache).lookup("bb" * 20).size() + 400 + 200 + 900 + 900
    assert pr["bytes_now"] == Singer(s).cache_size() == held


def test_prune_by_age_takes_a_finished_jobs_output_but_not_a_running_one(full):
    s, cache, ids = full["settings"], full["settings"].cache_path, full["ids"]
    pr = as_json(invoke("cache", "prune", "--older-than-days", "3.5", "--json"))
    assert "jobs" not in pr["removed_by_namespace"]  # three days old: younger than asked
    assert (cache / "previews" / "ayana.ogg").exists() is False and (cache / "library-index.json").exists() is False
    done = Singer(s).prune_cache(older_than_s=2 * DAY)
    assert sorted(i.name for i in done.removed if i.namespace == "jobs") == sorted([ids["done"], ids["failed"]])
    assert (cache / "jobs" / ids["running"]).is_dir()
    assert [i.name for i in done.in_use if i.namespace == "jobs"] == [ids["running"]]


def test_a_download_trims_its_folder_through_the_same_mechanism(full):
    from singer.workflow.namespaces import shrink

    s = full["settings"]
    kept = s.downloads_path / "by-caller" / "k1" / "generic-x.mp3"
    done = shrink(s, "downloads", 0, keep=(kept,))
    assert kept.exists() and (full["live_dl"] / "media.m4a.part").exists()
    assert {i.name for i in done.removed} == {"youtube-abc.m4a", ".download-dead"}
