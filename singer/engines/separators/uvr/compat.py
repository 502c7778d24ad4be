"""How singer runs audio-separator here: offline, quiet, on CPU torch without torchvision.

Three adjustments, each applied once per process by :func:`prepare` and each undoable by nothing but the process
ending (they only replace module attributes of audio-separator, never its files):

1. **onnx2torch without torchvision.** ``audio_separator.separator.architectures.mdx_separator`` imports
   ``onnx2torch`` at module top; onnx2torch imports torchvision (for its NMS / RoIAlign converters), and PyPI's
   torchvision for torch 2.13 is a CUDA build that fails on CPU torch ("operator torchvision::nms does not
   exist"). singer installs audio-separator with ``--no-deps`` and never installs onnx2torch or torchvision.
   onnx2torch is only *used* when an MDX model runs at a segment size other than its own ``dim_t``; singer always
   runs MDX models at their own ``dim_t``, through ONNX Runtime (the fast path on CPU, and UVR's default). So when
   ``import onnx2torch`` fails, a stand-in module takes its name; its ``convert()`` raises
   :class:`EngineUnavailable` saying why, instead of a silent fallback. Where a working onnx2torch exists (GPU
   installs), the real one is used.
2. **No network.** audio-separator downloads model lists, model data and weights on demand
   (``Separator.download_file_if_not_exists``). singer's :class:`OfflineSeparator` overrides that method: a file
   that is present is used, a missing one raises :class:`ModelError` naming ``singer models pull`` -- no request is
   ever made. Downloads belong to ``singer models pull`` (checksums, resume, URL policy).
3. **No printing.** audio-separator logs to a stream handler and draws tqdm bars on stderr. Its loggers get a
   NullHandler, and the architectures' ``tqdm`` name is bound to :class:`ProgressBar`, which reports to the
   running step's progress callback instead of the terminal.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ....errors import EngineUnavailable, ModelError

ARCH_MODULES = ("mdx_separator", "mdxc_separator", "vr_separator", "demucs_separator")
_report: contextvars.ContextVar[Callable[[float], None] | None] = contextvars.ContextVar("uvr_progress", default=None)
_prepared = False


def _onnx2torch_standin(error: BaseException) -> types.ModuleType:
    mod = types.ModuleType("onnx2torch")
    mod.__doc__ = "singer's stand-in: the real onnx2torch could not be imported here."

    def convert(*args: Any, **kwargs: Any) -> Any:
        raise EngineUnavailable(
            f"This MDX model would need onnx2torch, which cannot load here ({type(error).__name__}: {error}).",
            hint="Run MDX models at their own segment size (singer's default; do not set segment_size), "
            "which uses ONNX Runtime and needs no onnx2torch/torchvision.",
        )

    mod.convert = convert  # type: ignore[attr-defined]
    mod.SINGER_STANDIN = True  # type: ignore[attr-defined]
    return mod


def prepare() -> None:
    """Apply the three adjustments (idempotent). Imports audio-separator, so call it only when the engine runs."""
    global _prepared
    if _prepared:
        return
    try:
        import onnx2torch  # noqa: F401
    except Exception as e:  # ImportError without torchvision, RuntimeError with a CUDA-only torchvision
        for name in [m for m in sys.modules if m.split(".")[0] in ("onnx2torch", "torchvision")]:
            del sys.modules[name]  # half-imported packages must not linger
        sys.modules["onnx2torch"] = _onnx2torch_standin(e)
    logging.getLogger("audio_separator").addHandler(logging.NullHandler())
    import importlib
    import warnings

    for name in ARCH_MODULES:
        try:
            with warnings.catch_warnings():  # rotary-embedding-torch's torch.cuda.amp deprecation notices
                warnings.simplefilter("ignore", FutureWarning)
                mod = importlib.import_module(f"audio_separator.separator.architectures.{name}")
        except ImportError:  # an architecture whose extra packages are missing: load_model reports it when used
            continue
        if hasattr(mod, "tqdm"):
            setattr(mod, "tqdm", ProgressBar)  # noqa: B010 - a module attribute mypy cannot see
    _prepared = True


class ProgressBar:
    """Enough of tqdm's interface for audio-separator's loops; reports fractions to the current step."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, *args: Any, **kwargs: Any):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total or 0
        self.n = 0

    def __iter__(self):
        for item in self.iterable or ():
            yield item
            self.update(1)

    def update(self, n: int = 1) -> None:
        self.n += n
        report = _report.get()
        if report is not None and self.total:
            report(min(self.n / self.total, 1.0))

    def close(self) -> None:
        return None

    def set_description(self, *args: Any, **kwargs: Any) -> None:
        return None

    set_postfix = set_description

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def reporting(callback: Callable[[float], None]) -> contextvars.Token:
    """Route progress bars to ``callback`` until :func:`stop_reporting` with the returned token."""
    return _report.set(callback)


def stop_reporting(token: contextvars.Token) -> None:
    _report.reset(token)


def offline_separator_class() -> type:
    """audio-separator's Separator with downloads replaced by a clear error for a missing file."""
    from audio_separator.separator import Separator

    class OfflineSeparator(Separator):
        def download_file_if_not_exists(self, url: str, output_path: str) -> None:
            if Path(output_path).is_file():
                return
            raise ModelError(
                f"The UVR model file {Path(output_path).name} is not in {Path(output_path).parent}.",
                hint="Fetch it with `singer models pull NAME` (see `singer models list --kind separator`), "
                f"or copy it to {output_path}.",
            )

    return OfflineSeparator
