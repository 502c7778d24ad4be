"""RVC's reference inference code (rvc-python's ``lib/infer_pack``, ``modules/vc/pipeline.py``) loaded by file path.

rvc-python's package ``__init__`` imports fairseq and fails on Python 3.11, so its modules are loaded one by one
from their files under empty stand-in packages. Everything returns None when rvc-python is not installed; tests
then skip. Used only by tests and benchmarks, never by singer itself.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path


def _root() -> Path | None:
    spec = importlib.util.find_spec("rvc_python") if "rvc_python" not in sys.modules else None
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    mod = sys.modules.get("rvc_python")
    return Path(mod.__path__[0]) if mod is not None and getattr(mod, "__path__", None) else None


def _package(name: str, path: Path) -> None:
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(path)]
        sys.modules[name] = pkg


def _load(name: str, path: Path):
    if name in sys.modules and getattr(sys.modules[name], "__file__", None):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        del sys.modules[name]  # never leave a half-imported module behind
        raise
    return mod


def infer_pack():
    """rvc_python.lib.infer_pack.models (with commons, modules, attentions, transforms), or None."""
    try:
        root = _root()
    except (ImportError, ValueError):
        return None
    if root is None or not (root / "lib" / "infer_pack" / "models.py").is_file():
        return None
    _package("rvc_python", root)
    _package("rvc_python.lib", root / "lib")
    _package("rvc_python.lib.infer_pack", root / "lib" / "infer_pack")
    base = root / "lib" / "infer_pack"
    for m in ("commons", "transforms", "modules", "attentions", "models"):
        mod = _load(f"rvc_python.lib.infer_pack.{m}", base / f"{m}.py")
    return mod


def pipeline_module():
    """rvc_python.modules.vc.pipeline (needs faiss, librosa, parselmouth, pyworld, torchcrepe), or None."""
    if infer_pack() is None:
        return None
    root = _root()
    _package("rvc_python.modules", root / "modules")
    _package("rvc_python.modules.vc", root / "modules" / "vc")
    from singer.engines.converters.rvc.f0 import (
        _torchaudio_stub,  # torchcrepe imports torchaudio, which singer does not install
    )

    try:
        with _torchaudio_stub():
            return _load("rvc_python.modules.vc.pipeline", root / "modules" / "vc" / "pipeline.py")
    except ImportError:
        return None


def reference_synthesizer(cpt: dict):
    """RVC's own synthesizer class for a checkpoint dict, weights loaded, eval mode (as rvc-python's VC.get_vc)."""
    import contextlib
    import io

    models = infer_pack()
    version, f0 = cpt.get("version", "v1"), int(cpt.get("f0", 1))
    cls = {
        ("v1", 1): models.SynthesizerTrnMs256NSFsid,
        ("v1", 0): models.SynthesizerTrnMs256NSFsid_nono,
        ("v2", 1): models.SynthesizerTrnMs768NSFsid,
        ("v2", 0): models.SynthesizerTrnMs768NSFsid_nono,
    }[(version, f0)]
    config = list(cpt["config"])
    config[-3] = cpt["weight"]["emb_g.weight"].shape[0]
    with contextlib.redirect_stdout(io.StringIO()):  # it prints gin_channels
        net = cls(*config, is_half=False)
    del net.enc_q
    net.load_state_dict(cpt["weight"], strict=False)
    return net.eval().float()
