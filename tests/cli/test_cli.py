"""The CLI through Typer's CliRunner: JSON output, exit codes, no stack traces for user errors."""

from __future__ import annotations

import pytest

from tests import media
from tests.clirun import as_json, invoke


@pytest.fixture
def song(tmp_path):
    return media.song_wav(tmp_path / "Test Song.wav", seconds=5.0, seed=9)


def test_help_and_version(settings):
    assert invoke("--help").exit_code == 0
    assert invoke("version").exit_code == 0


def test_engines_json(settings):
    res = invoke("engines", "--json")
    assert res.exit_code == 0
    names = {(e["kind"], e["name"]): e for e in as_json(res)["engines"]}
    for key in [("separator", "spleeter"), ("converter", "world"), ("source", "ytdlp")]:
        assert names[key]["available"], names[key]


def test_voices_list_has_bundled(settings):
    data = as_json(invoke("voices", "list", "--json"))
    names = {v["name"] for v in data["voices"]}
    assert "ayana" in names and len(names) >= 3


def test_voices_create_merge_remove(settings, tmp_path):
    sample = media.voice_wav(tmp_path / "ref.wav", seconds=6.0)
    assert invoke("voices", "create", "mine", "--from", str(sample), "--json").exit_code == 0
    res = invoke("voices", "merge", "mine", "ayana", "--weights", "0.5,0.5", "--name", "blend", "--json")
    assert res.exit_code == 0, res.stdout
    assert as_json(res)["voice"]["name"] == "blend"
    assert invoke("voices", "remove", "blend").exit_code == 0
    res = invoke("voices", "remove", "ayana", "--json")
    assert res.exit_code == 3 and not as_json(res)["ok"]


def test_cover_json_then_cached(settings, song, tmp_path):
    out = tmp_path / "out"
    res = invoke("cover", str(song), "--voice", "ayana", "--out", f"{out}/", "--json")
    assert res.exit_code == 0, res.stdout
    data = as_json(res)
    assert data["ok"] and data["output"].endswith(".mp3")
    res2 = as_json(invoke("cover", str(song), "--voice", "ayana", "--out", f"{out}/", "--json"))
    assert all(s["cached"] or s["skipped"] for s in res2["run"]["steps"])
    res3 = as_json(invoke("cover", str(song), "--voice", "ayana", "--out", f"{out}/", "--json", "--recompute", "mix"))
    steps = {s["id"]: s for s in res3["run"]["steps"]}
    assert not steps["mix"]["cached"] and steps["separate"]["cached"]


def test_convert_voice_note(settings, tmp_path):
    note = media.encoded(media.voice_wav(tmp_path / "n.wav", seconds=3.0), tmp_path / "note.ogg", "ogg")
    res = invoke("convert", str(note), "--voice", "ayana", "--out", str(tmp_path / "reply.ogg"), "--json")
    assert res.exit_code == 0, res.stdout
    assert (tmp_path / "reply.ogg").exists()


@pytest.mark.parametrize(
    "args,code,words",
    [
        (["cover", "/nonexistent/song.mp3", "--voice", "ayana"], 3, "not found"),
        (["cover", "{song}", "--voice", "nobody"], 3, "nobody"),
        (["cover", "{song}", "--format", "xyz"], 2, "format"),
        (["cover", "{song}", "--key", "up"], 2, "key"),
        (["cover", "{song}", "--separator", "nosuch"], 2, "nosuch"),
        (["cover", "{song}", "--set", "mix.target_lufs=3"], 2, "mix"),
        (["cover", "{song}", "--recompute", "nostep"], 2, "nostep"),
    ],
)
def test_errors_map_to_exit_codes(settings, song, args, code, words):
    args = [a.replace("{song}", str(song)) for a in args]
    res = invoke(*args)
    assert res.exit_code == code, res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    assert words.lower() in (res.stdout + res.stderr).lower()
    data = as_json(invoke(*args, "--json"))
    assert data["ok"] is False and data["error"] and data["message"]


def test_engine_unavailable_exit_4(settings, song, monkeypatch):
    from singer.engines import registry

    monkeypatch.setitem(registry.ENGINES["separator"], "ghost", "singer.engines.separators.ghost_missing:Ghost")
    res = invoke("cover", str(song), "--separator", "ghost", "--json")
    assert res.exit_code == 4
    assert as_json(res)["error"] == "engine_unavailable"


def test_cache_commands(settings, song, tmp_path):
    invoke("cover", str(song), "--voice", "ayana", "--out", f"{tmp_path}/", "--quiet")
    ls = as_json(invoke("cache", "ls", "--json"))
    assert {e["step"] for e in ls["entries"]} >= {"source", "separate", "convert", "mix", "encode"}
    du = as_json(invoke("cache", "du", "--json"))
    assert du["bytes"] > 0
    pr = as_json(invoke("cache", "prune", "--max-size", "0B", "--json"))
    assert pr["bytes_now"] == 0 and len(pr["removed"]) == len(ls["entries"])
    assert invoke("cache", "prune").exit_code == 2


def test_search_offline_falls_back_to_library(settings, tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    media.encoded(media.song_wav(tmp_path / "x.wav", seconds=2.0), lib / "Moonlight Shadow.mp3")
    monkeypatch.setenv("SINGER_LIBRARY", str(lib))
    from singer.engines.sources.ytdlp import YtDlpSource

    monkeypatch.setattr(YtDlpSource, "extra_params", {"proxy": "http://127.0.0.1:9"})
    res = invoke("search", "moonlight shadow", "--json")
    assert res.exit_code == 0, res.stdout
    data = as_json(res)
    assert data["candidates"][0]["title"].lower().startswith("moonlight")
    assert "network" in data["warning"].lower()


def test_cover_from_loopback_url(settings, tmp_path, monkeypatch):
    """A URL source end to end: yt-dlp's generic extractor fetches a page's <audio> from a loopback server."""
    www = tmp_path / "www"
    www.mkdir()
    media.encoded(media.song_wav(tmp_path / "s.wav", seconds=4.0, seed=3), www / "track.mp3")
    (www / "index.html").write_text('<html><body><audio src="track.mp3" controls></audio></body></html>')

    with media.serve_folder(www) as base:
        url = f"{base}/index.html"
        refused = invoke("cover", url, "--voice", "ayana", "--json")
        assert (
            refused.exit_code == 3
            and "private" in as_json(refused)["hint"].lower() + as_json(refused)["message"].lower()
        )
        monkeypatch.setenv("SINGER_ALLOW_PRIVATE_URLS", "1")
        res = invoke("cover", url, "--voice", "ayana", "--out", str(tmp_path / "url.mp3"), "--json")
        assert res.exit_code == 0, res.stdout
        assert (tmp_path / "url.mp3").stat().st_size > 1000
