"""The bad-input matrix: each case gives a clear error or a correct result, and on error nothing is written at
the output path."""

from __future__ import annotations

import pytest

from singer.api import CoverRequest, Singer
from singer.audio import decode, probe
from singer.errors import InputError
from tests import media


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return media.voice_wav(d / "voice.wav", seconds=4.0)


def _convert(settings, path, out_dir, **kw):
    return Singer(settings).convert(CoverRequest(input=str(path), voice="ayana", out=str(out_dir) + "/", **kw))


def _assert_nothing_written(out_dir):
    assert not out_dir.exists() or not any(out_dir.iterdir())


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


ERROR_CASES = {
    "empty": (lambda d, b: _file(d / "empty.mp3", b""), "empty"),
    "not_audio": (lambda d, b: _file(d / "notes.mp3", b"this is not audio\n" * 50), "Not a readable"),
    "silence": (lambda d, b: media.silence_wav(d / "silence.wav"), "silent"),
    "missing": (lambda d, b: d / "nope.wav", "not found"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_bad_inputs_fail_clearly(case, settings, base, tmp_path):
    make, words = ERROR_CASES[case]
    src = make(tmp_path, base)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError) as exc:
        _convert(settings, src, out_dir)
    assert words.lower() in exc.value.user_message.lower()
    assert src.name in exc.value.user_message or case == "silence"
    assert exc.value.hint  # says how to fix
    _assert_nothing_written(out_dir)


def test_too_long_is_refused(settings, base, tmp_path):
    s = settings.model_copy(update={"max_duration": 2.0})
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(InputError, match="limit"):
        _convert(s, base, out_dir)
    _assert_nothing_written(out_dir)


def _ok_cases(d, base):
    return {
        "truncated_mp3": media.truncated(media.encoded(base, d / "full.mp3"), d / "truncated.mp3"),
        "8k_mono": media.voice_wav(d / "phone 8k.wav", sr=8000, channels=1),
        "48k_opus": media.encoded(media.voice_wav(d / "v48.wav", sr=48000), d / "note.opus", "opus"),
        "video": media.video_with_audio(base, d / "clip.mp4"),
        "unicode_name": media.encoded(base, d / "ボイス メモ é.m4a"),
    }


@pytest.mark.parametrize("case", ["truncated_mp3", "8k_mono", "48k_opus", "video", "unicode_name"])
def test_awkward_inputs_work(case, settings, base, tmp_path):
    src = _ok_cases(tmp_path, base)[case]
    out_dir = tmp_path / "out"
    res = _convert(settings, src, out_dir)
    assert res.output.exists() and res.output.parent == out_dir
    info = probe(res.output)
    assert info.codec == "opus" and info.sample_rate == 48000
    decodable = decode(src, 48000, 1).shape[1] / 48000  # a truncated file: what can be decoded
    assert abs(info.duration - decodable) < 0.1
    if case == "truncated_mp3":
        assert "truncated" in res.run.step("source").meta["warning"]


def test_error_leaves_existing_output_untouched(settings, tmp_path):
    out = tmp_path / "keep.ogg"
    out.write_bytes(b"previous result")
    with pytest.raises(InputError):
        Singer(settings).convert(
            CoverRequest(input=str(media.silence_wav(tmp_path / "s.wav")), voice="ayana", out=str(out))
        )
    assert out.read_bytes() == b"previous result"
