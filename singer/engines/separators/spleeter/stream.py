"""Spleeter's streaming core: STFT windows pulled from a reader, the two networks' ratio masks (blended across
window boundaries), and a streaming inverse STFT pushing final samples to a writer. The scheme is described in
:mod:`.engine`; here it runs on any ``read``/``write`` pair, so files, resampled files and tests share it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...base import Progress, no_progress

N_FFT = 4096
HOP = 1024
BINS = 1024  # frequency bins the model sees (0 .. 11 kHz)
FRAMES = 512  # frames the model sees at once
BRIDGE = 64  # frames of the extra window centred on each boundary between two network windows
BLEND = 16  # frames each side of a boundary whose masks fade through the bridge estimate
EPS = 1e-10

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

    def __init__(self, model: Any, threads: int):
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


class _BlendedMasks:
    """The vocal masks of one network window after another, faded through the bridge estimate at each boundary.

    :meth:`next` returns the masks of the frames that are final (from ``first``); the last ``blend`` frames of a
    window are held back until the next window's bridge estimate is known.
    """

    def __init__(self, masker: _Masker, bridge: int, blend: int):
        import torch

        self.masker, self.bridge, self.blend, self.half = masker, bridge, blend, bridge // 2
        ramp = (torch.arange(blend, dtype=torch.float32) + 0.5) / max(blend, 1)
        self.rise, self.fall = ramp.view(1, 1, -1), ramp.flip(0).view(1, 1, -1)  # bridge weight left / right
        self.held: Any = None  # the previous window's masks for the frames just left of the next boundary

    def next(self, mag: Any, first: int) -> tuple[Any, int]:
        """``mag``: (2, bins, half + 512) magnitudes of frames ``first - half ..``; returns (masks, first frame)."""
        import torch

        half, blend = self.half, self.blend
        if self.held is None:
            (mask,) = self.masker([mag[:, :, half:]])
        else:  # fade through the bridge estimate around boundary 512 k
            mask, bmask = self.masker([mag[:, :, half:], mag[:, :, : self.bridge]])
            centre = bmask[:, :, half - blend : half + blend]
            left = self.held * (1 - self.rise) + centre[:, :, :blend] * self.rise
            right = centre[:, :, blend:] * self.fall + mask[:, :, :blend] * (1 - self.fall)
            mask = torch.cat([left, right, mask[:, :, blend:]], dim=2)
            first -= blend
        if blend:  # the last frames wait for the next boundary's blend
            self.held = mask[:, :, -blend:].clone()
            mask = mask[:, :, :-blend]
        return mask, first


def separate_stream(
    model: Any,
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
    masks = _BlendedMasks(_Masker(model, threads or torch.get_num_threads()), bridge, blend)
    synth = _OverlapAdd()

    buf = np.zeros((2, span), dtype=np.float32)
    lead = half * HOP + N_FFT // 2  # buffer samples before the song's first sample
    got = read(span - lead)
    buf[:, lead : lead + got.shape[1]] = got
    k = 0
    try:
        with torch.inference_mode():
            while True:
                spec = torch.stft(torch.from_numpy(buf), N_FFT, HOP, window=window, center=False, return_complex=True)
                spec = spec[:, :BINS]  # (2, bins, half + 512): frames 512 k - half .. 512 k + 511
                mask, first = masks.next(spec.abs(), FRAMES * k)
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
        masks.masker.close()
