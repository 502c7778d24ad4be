"""One contract suite over every engine (like Hamilton's IMPLEMENTATIONS + indirect parametrize).

Every separator, converter and source listed in the registry must pass the same tests. A later engine (uvr, rvc)
joins by adding a factory to the tables below; an engine that cannot run here is skipped with its reason, never
silently passed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from singer.audio import encode, write_wav
from singer.engines import registry
from singer.engines.base import Candidate, Converter, Separator, Source
from singer.errors import EngineUnavailable, InputError
from tests.media import serve_folder
from tests.synth import make_synthetic_song


def _engine(kind: str, name: str, settings):
    try:
        return registry.create(kind, name, settings)
    except EngineUnavailable as e:
        pytest.skip(f"{kind} {name} unavailable here: {e}")


def _progress_log():
    log: list[float] = []
    return log, lambda f, m=None: log.append(f)


# ---- separators ---------------------------------------------------------------------------------------------------
SEPARATORS = registry.names("separator")


@pytest.fixture(params=SEPARATORS)
def separator(request, settings):
    if request.param == "uvr":  # a tiny real-format MDX model trained on synthetic songs (nothing downloaded)
        from singer.engines.separators.uvr.catalog import uvr_dir
        from tests.uvrkit import install_uvr_kit

        settings.uvr_model = install_uvr_kit(uvr_dir(settings))["vocals"]
    return _engine("separator", request.param, settings)


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    mix, vocals, inst = make_synthetic_song(6.0, sr=44100, seed=1)
    d = tmp_path_factory.mktemp("song")
    write_wav(d / "mix.wav", mix, 44100)
    return d / "mix.wav", mix, vocals, inst


def test_separator_protocol(separator):
    assert isinstance(separator, Separator)
    assert separator.kind == "separator" and separator.version and separator.stems


@pytest.mark.parametrize("sr,channels", [(44100, 2), (48000, 2), (44100, 1), (22050, 1)])
def test_separator_keeps_rate_and_length(separator, song, tmp_path, sr, channels):
    from singer.audio import resample

    _, mix, _, _ = song
    x = resample(mix, 44100, sr)[:channels]
    src = tmp_path / "in.wav"
    write_wav(src, x, sr)
    log, progress = _progress_log()
    (tmp_path / "out").mkdir()
    out = separator.separate(src, tmp_path / "out", progress)
    assert set(out) == set(separator.stems)
    for path in out.values():
        info = sf.info(str(path))
        assert info.samplerate == sr and info.frames == x.shape[1]
        data = sf.read(str(path), dtype="float32")[0]
        assert np.isfinite(data).all()
    assert log and all(0 <= f <= 1 for f in log) and log == sorted(log)


def test_separator_finds_the_voice(separator, song, tmp_path):
    path, mix, vocals, inst = song
    out = separator.separate(path, tmp_path, lambda f, m=None: None)
    est = sf.read(str(out["vocals"]), dtype="float32", always_2d=True)[0].T
    corr_voice = np.corrcoef(est.mean(0), vocals.mean(0))[0, 1]
    corr_inst = np.corrcoef(est.mean(0), inst.mean(0))[0, 1]
    assert corr_voice > 0.5 and corr_voice > corr_inst


# ---- converters ---------------------------------------------------------------------------------------------------
CONVERTERS = registry.names("converter")


@pytest.fixture(params=CONVERTERS)
def converter(request, settings):
    if request.param == "rvc":  # a tiny real-format content model + RVC voice (random weights, nothing downloaded)
        from tests.rvcvoice import install_voice

        install_voice(settings)
    return _engine("converter", request.param, settings)


@pytest.fixture
def voice(converter, settings):
    """A voice this converter can use: bundled profiles for world, the tiny installed RVC voice for rvc."""
    from singer.voices import VoiceStore

    store = VoiceStore(settings)
    usable = [v for v in store.list() if converter.accepts(v)]
    if not usable:
        pytest.skip(f"no voice for converter {converter.name}")
    return usable[0]


@pytest.fixture(scope="module")
def sung(tmp_path_factory):
    _, vocals, _ = make_synthetic_song(5.0, sr=44100, seed=2)
    d = tmp_path_factory.mktemp("sung")
    write_wav(d / "vocals.wav", vocals, 44100)
    return d / "vocals.wav", vocals


def test_converter_protocol(converter):
    assert isinstance(converter, Converter)
    assert converter.kind == "converter" and converter.version


@pytest.mark.parametrize("key", [0.0, 3.0])
def test_converter_keeps_rate_and_length(converter, voice, sung, tmp_path, key):
    src, vocals = sung
    dst = tmp_path / "conv.wav"
    log, progress = _progress_log()
    meta = converter.convert(src, dst, voice, {"key": key}, progress)
    assert isinstance(meta, dict)
    info = sf.info(str(dst))
    assert info.samplerate == 44100 and info.frames == vocals.shape[1]
    y = sf.read(str(dst), dtype="float32")[0]
    assert np.isfinite(y).all() and np.abs(y).max() > 1e-3
    assert log and log == sorted(log)


def test_converter_is_deterministic(converter, voice, sung, tmp_path):
    src, _ = sung
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    converter.convert(src, a, voice, {}, lambda f, m=None: None)
    converter.convert(src, b, voice, {}, lambda f, m=None: None)
    assert np.array_equal(sf.read(str(a))[0], sf.read(str(b))[0])


def test_converter_refuses_silence(converter, voice, tmp_path):
    src = tmp_path / "silence.wav"
    write_wav(src, np.zeros((1, 44100 * 2), np.float32), 44100)
    with pytest.raises(InputError):
        converter.convert(src, tmp_path / "o.wav", voice, {}, lambda f, m=None: None)
    assert not (tmp_path / "o.wav").exists()


# ---- sources ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    d = tmp_path_factory.mktemp("www")
    t = np.arange(44100 * 2) / 44100
    write_wav(d / "tone.wav", (0.3 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32), 44100)
    encode(d / "tone.wav", d / "Contract Song.mp3", tags={"title": "Contract Song", "artist": "Tester"})

    with serve_folder(d) as base:
        yield d, f"{base}/Contract%20Song.mp3"


def _source_case(name, settings, served):
    folder, url = served
    if name == "local":
        return settings, str(folder / "Contract Song.mp3")
    if name == "library":
        return settings.model_copy(update={"library": str(folder)}), "contract song"
    if name == "ytdlp":
        return settings.model_copy(update={"allow_private_urls": True}), url
    pytest.fail(f"add a contract case for source '{name}'")


@pytest.mark.parametrize("name", registry.names("source"))
def test_source_contract(name, settings, served, tmp_path):
    settings, query = _source_case(name, settings, served)
    src = _engine("source", name, settings)
    assert isinstance(src, Source) and src.kind == "source" and src.version
    if name == "ytdlp":
        cand = Candidate(title="Contract Song", source="ytdlp", ref=query, url=query)
    else:
        hits = src.search(query, 3)
        assert hits and all(isinstance(h, Candidate) for h in hits)
        cand = hits[0]
    path = Path(src.fetch(cand, tmp_path, lambda f, m=None: None))
    assert path.is_file() and path.stat().st_size > 0
    again = Path(src.fetch(cand, tmp_path, lambda f, m=None: None))
    assert again == path  # cached / stable
