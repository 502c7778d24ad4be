"""One classifier decides what an input is (path, URL, search text); the remote policy never reaches server files;
local inputs are keyed by content, however their name is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from singer.api import CoverRequest, Singer
from singer.engines.sources.inputs import InputPolicy, classify, path_like
from singer.errors import InputError
from tests import media


@pytest.mark.parametrize(
    "text",
    [
        '"/x/y.mp3"',
        "'a b.mp3'",
        "~/x.mp3",
        "/etc/passwd",
        "file:///x",
        "FILE:x",
        "./x",
        "../x",
        "a/b.mp3",
        "a\\b",
        "C:\\x.mp3",
        "C:/x.mp3",
        ".",
        "..",
        "x\x00y",
    ],
)
def test_path_like_text(text):
    assert path_like(text)


@pytest.mark.parametrize("text", ["queen bohemian rhapsody", "...Baby One More Time", "song ~ live", "AC DC"])
def test_search_text_is_not_path_like(text):
    assert not path_like(text) and classify(text, local=False).kind == "search"


@pytest.mark.parametrize(
    "text",
    ['"/srv/a.mp3"', "~/a.mp3", "/srv/a.mp3", "file:///srv/a.mp3", "sub/a.mp3", "..\\a.mp3", "AC/DC", "  /srv/a.mp3  "],
)
def test_remote_callers_cannot_name_paths(text):
    with pytest.raises(InputError, match="file"):
        classify(text, local=False)


def test_urls_and_local_words():
    assert classify("https://example.com/a.mp3", local=False).kind == "url"
    assert classify("youtu.be/abc", local=False).url == "https://youtu.be/abc"
    with pytest.raises(InputError, match="http"):
        classify("ftp://example.com/a.mp3", local=False)
    assert classify("AC/DC", local=True).kind == "search"  # the CLI: words naming no file stay words
    assert classify("./missing.mp3", local=True).kind == "path"


def test_remote_policy_reads_only_its_roots(tmp_path):
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    mine = uploads / "abc"
    mine.write_bytes(b"x")
    outside = tmp_path / "secret.mp3"
    outside.write_bytes(b"x")
    (uploads / "link").symlink_to(outside)
    policy = InputPolicy(local=False, roots=(uploads,))
    assert policy.own_file(str(mine)) == mine.resolve()
    for text in (str(outside), str(uploads / "link"), str(uploads / ".." / "secret.mp3"), "abc"):
        assert policy.own_file(text) is None
    with pytest.raises(InputError):
        policy.check_file(uploads / "link", "link")


def test_a_quoted_local_path_is_keyed_by_content(settings, tmp_path):
    """Replace the file, convert again: the new audio comes out (the old cache entry is not reused)."""
    note = tmp_path / "my note.wav"
    singer = Singer(settings)
    outs = []
    for seed in (1, 2):
        media.voice_wav(note, seconds=1.5, seed=seed)
        res = singer.convert(
            CoverRequest(input=f'"{note}"', voice="ayana", format="wav", out=str(tmp_path / f"out{seed}.wav"))
        )
        outs.append(Path(res.output).read_bytes())
        assert not res.run.step("source").cached
    assert outs[0] != outs[1]


def test_output_names_fit_a_file_system_in_bytes():
    from singer.api import _safe_name

    name = _safe_name("日本" * 45 + " / live")
    assert len(name.encode("utf-8")) <= 150 and name.startswith("日本")
    assert _safe_name(" ./ ") == "cover"
