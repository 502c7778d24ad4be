"""UVR separation (MDX-Net, Roformer/MDX23C, VR...) through audio-separator's ``Separator``.

* Models live in ``<models>/uvr/``, handed to audio-separator as its ``model_file_dir``; singer's
  :class:`~.compat.OfflineSeparator` never downloads (``singer models pull`` does, with checksums).
* A step picks its model by preset, manifest name or file (:mod:`.catalog`) and its **stage**: ``vocals``
  (vocals / instrumental), ``karaoke`` (lead / backing, run on a vocal stem), ``dereverb`` (dry / reverb). The
  model's own stem names are mapped to the stage's outputs, so ``UVR_MDXNET_KARA`` ("Vocals") and a Roformer
  ("vocals"/"other") both give ``lead``/``backing``.
* Loaded models stay warm in the process's one warm-model cache (:mod:`singer.engines.warm`, sized by
  ``settings.max_warm_models``, least recently used dropped): a second job with the same model skips loading.
* MDX models always run at their own ``dim_t`` through ONNX Runtime (see :mod:`.compat` for why).
* audio-separator reads the song itself (librosa, resampled to 44.1 kHz) and writes float WAVs straight into the
  step's folder: singer adds no copy of the audio in memory. Only other rates or mono inputs are converted back
  afterwards (streamed), so outputs keep the input's rate, length and channel count.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import warnings
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ....audio import stem_info
from ....config import Settings
from ....errors import EngineUnavailable, SingerError, StepFailed
from ...base import Progress, Separator, no_progress
from . import catalog

SAMPLE_RATE = 44100
_RUN_LOCK = threading.Lock()  # audio-separator's Separator is not thread-safe, and warm ones are shared
_FIX = "make install (it adds audio-separator==0.47.1 with --no-deps; see the README, 'UVR separation')"


class UVRSeparator(Separator):
    """Separation with UVR models through audio-separator, offline once the model files are here."""

    name: ClassVar[str] = "uvr"
    kind: ClassVar[str] = "separator"
    version: ClassVar[str] = "1"
    description: ClassVar[str] = (
        "UVR models (MDX-Net, Roformer, VR) via audio-separator; presets by published SDR; "
        "stages vocals, karaoke (lead/backing), dereverb"
    )
    stems: ClassVar[tuple[str, ...]] = catalog.STAGES["vocals"]

    class Params(BaseModel):
        model_config = ConfigDict(extra="forbid")
        model: str = Field(
            "",
            description="Preset (best-vocals, fast-cpu, karaoke, dereverb...), manifest name or "
            "file in MODELS/uvr; empty = the stage's default",
        )
        stage: Literal["vocals", "karaoke", "dereverb"] = "vocals"

    @classmethod
    def check(cls, settings: Settings) -> None:
        missing = {m: "not installed" for m in ("audio_separator", "onnxruntime", "torch") if find_spec(m) is None}
        if missing:
            raise EngineUnavailable(
                f"The uvr separator cannot run: {', '.join(missing)} not installed.", hint=_FIX, reasons=missing
            )
        folder = catalog.uvr_dir(settings)
        if not any(
            p.suffix.lower() in (".onnx", ".ckpt", ".pth") for p in (folder.iterdir() if folder.is_dir() else ())
        ):
            raise EngineUnavailable(
                f"No UVR model in {folder}.",
                hint="Fetch one with `singer models pull vocals-mdx` (fast on CPU) or "
                "`singer models pull vocals-roformer` (best published SDR); "
                "`singer models list --kind separator` lists them all.",
            )

    @classmethod
    def bind(cls, settings: Settings, params: dict) -> tuple[dict, dict[str, Path]]:
        """Canonical params (the model resolved to its file) and the files whose content goes into the cache key.
        Raises :class:`ModelError` (exit 4) naming ``singer models pull`` when a file is missing."""
        p = cls.Params(**params)
        m = catalog.resolve(settings, p.model, p.stage)
        paths = catalog.require(settings, m)
        return {"model": m.file, "stage": p.stage}, {f"model:{path.name}": path for path in paths}

    def __init__(self, settings: Settings):
        self.settings = settings

    # ---- models -------------------------------------------------------------------------------------------------
    def _separator(self, m: catalog.UVRModel) -> Any:
        """A Separator with ``m`` loaded: reused while warm, else created (:mod:`singer.engines.warm`)."""
        from ... import warm

        where = str(catalog.uvr_dir(self.settings).resolve() / m.file)
        stamp = warm.file_stamp(*m.paths(self.settings))  # a replaced model file loads afresh
        return warm.get("uvr", m.file, where, lambda: self._load(m), stamp=stamp)

    def _load(self, m: catalog.UVRModel) -> Any:
        from . import compat

        compat.prepare()
        folder = catalog.uvr_dir(self.settings)
        with warnings.catch_warnings():  # its constructor would silence every warning of the whole process
            sep = compat.offline_separator_class()(
                log_level=logging.WARNING,
                model_file_dir=str(folder),
                output_dir=tempfile.gettempdir(),
                output_format="WAV",
                use_soundfile=True,
                sample_rate=SAMPLE_RATE,
            )
        sep.model_file_dir = str(folder)  # AUDIO_SEPARATOR_MODEL_DIR must not send it elsewhere
        if m.file.lower().endswith(".onnx"):  # MDX: run at the model's own dim_t, in ONNX Runtime
            data = sep.load_model_data_using_hash(str(folder / m.file))
            if "mdx_dim_t_set" in data:
                sep.arch_specific_params["MDX"] = {
                    **sep.arch_specific_params["MDX"],
                    "segment_size": 2 ** int(data["mdx_dim_t_set"]),
                }
        try:
            sep.load_model(m.file)
        except SingerError:
            raise
        except Exception as e:
            raise EngineUnavailable(
                f"audio-separator could not load the UVR model '{m.name}' ({m.file}): {type(e).__name__}: {e}",
                hint=f"Check the files with `singer models verify {m.pull or ''}`".strip() + "; "
                "pull them again if they are damaged.",
            ) from e
        return sep

    def warm(self) -> list[str]:
        """File names of this engine's models (those in its UVR folder) loaded now, most recently used last."""
        from ... import warm

        folder = catalog.uvr_dir(self.settings).resolve()
        return [name for name, where in warm.MODELS.warm("uvr") if where == str(folder / name)]

    # ---- separation ---------------------------------------------------------------------------------------------
    def separate(
        self, src: Path, out_dir: Path, progress: Progress = no_progress, params: dict | None = None
    ) -> dict[str, Path]:

        p = self.Params(**(params or {}))
        src, out_dir = Path(src), Path(out_dir)
        info = stem_info(src, "uvr")
        m = catalog.resolve(self.settings, p.model, p.stage)
        catalog.require(self.settings, m)
        out_dir.mkdir(parents=True, exist_ok=True)
        with _RUN_LOCK:
            progress(0.0, f"loading {m.name}")
            sep = self._separator(m)
            parts = self._run(sep, src, out_dir, p.stage, progress)
        try:
            final = {}
            for out, part in parts.items():
                final[out] = out_dir / f"{out}.wav"
                _conform(part, final[out], info.samplerate, info.frames, info.channels)
        finally:
            for part in parts.values():
                part.unlink(missing_ok=True)
        progress(1.0, "separated")
        return final

    def _run(self, sep: Any, src: Path, out_dir: Path, stage: str, progress: Progress) -> dict[str, Path]:
        from . import compat

        inst = sep.model_instance
        mapping = catalog.assign(stage, str(inst.primary_stem_name), str(inst.secondary_stem_name))
        names = {stem: f"uvr-part-{out}" for out, stem in mapping.items()}  # it strips leading dots from names
        done = [0.0]

        def report(fraction: float) -> None:  # two passes in some architectures: never go backwards
            done[0] = max(done[0], fraction)
            progress(0.02 + 0.9 * done[0], "separating")

        sep.output_dir = inst.output_dir = str(out_dir)
        token = compat.reporting(report)
        try:
            written = sep.separate(str(src), custom_output_names=names)
        except (SingerError, MemoryError):
            raise
        except Exception as e:
            raise StepFailed(f"audio-separator failed on {src.name}: {type(e).__name__}: {e}") from e
        finally:
            compat.stop_reporting(token)
        parts = {out: out_dir / f"{names[stem]}.wav" for out, stem in mapping.items()}
        missing = [out for out, part in parts.items() if not part.is_file()]
        if missing:
            raise StepFailed(
                f"audio-separator wrote {', '.join(Path(w).name for w in written)} but not the "
                f"{', '.join(missing)} stem"
            )
        return parts


def _conform(part: Path, dst: Path, rate: int, frames: int, channels: int) -> None:
    """``part`` (44.1 kHz stereo from audio-separator) -> ``dst`` with the input's rate, length and channels.
    A file that already matches is renamed, not copied; others are streamed in blocks."""
    import numpy as np
    import soundfile as sf

    from ....audio import resample_file

    info = sf.info(str(part))
    if info.samplerate == rate and info.frames == frames and info.channels == channels:
        os.replace(part, dst)
        return
    src = part
    tmp = dst.with_name(f".{dst.stem}.rate.wav")
    try:
        if info.samplerate != rate:
            resample_file(part, tmp, rate, n_out=frames)
            src = tmp
        block = 1 << 18
        with sf.SoundFile(str(src)) as f, sf.SoundFile(str(dst), "w", rate, channels, subtype="FLOAT") as out:
            written = 0
            while written < frames:
                x = f.read(min(block, frames - written), dtype="float32", always_2d=True)
                if len(x) == 0:
                    x = np.zeros((min(block, frames - written), f.channels), dtype=np.float32)
                if channels == 1 and x.shape[1] > 1:
                    x = x.mean(axis=1, keepdims=True)
                elif channels == 2 and x.shape[1] == 1:
                    x = np.repeat(x, 2, axis=1)
                out.write(x)
                written += len(x)
    finally:
        tmp.unlink(missing_ok=True)
