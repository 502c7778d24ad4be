"""Voice names are matched whole: a trailing newline (which "$" lets through) is refused everywhere."""

from __future__ import annotations

import pytest

from singer.config import Settings
from singer.errors import InputError, VoiceNotFound
from singer.voices import VoiceStore, validate_name


@pytest.mark.parametrize("bad", ["ayana\n", "mine\n", "a\r", "ayana\n\n", "x\nayana", "ayana\x00"])
def test_names_with_line_ends_are_refused(bad, tmp_path):
    with pytest.raises(InputError, match="Invalid voice name"):
        validate_name(bad)
    store = VoiceStore(Settings(home=tmp_path / "home"))
    with pytest.raises(VoiceNotFound):
        store.get(bad)
    with pytest.raises(InputError):
        store.create(bad, [tmp_path / "missing.wav"])


def test_good_names_still_pass(tmp_path):
    assert validate_name("ayana") == "ayana" and validate_name("a" * 40) == "a" * 40
    assert VoiceStore(Settings(home=tmp_path / "home")).get("ayana").name == "ayana"


def test_a_cover_with_such_a_voice_fails_before_any_step(settings, tmp_path):
    from singer.api import CoverRequest, Singer
    from tests import media

    song = media.voice_wav(tmp_path / "n.wav", seconds=0.5)
    with pytest.raises(VoiceNotFound):
        Singer(settings).convert(CoverRequest(input=str(song), voice="ayana\n", out=f"{tmp_path}/"))
    assert not list(settings.cache_path.rglob("manifest.json"))
