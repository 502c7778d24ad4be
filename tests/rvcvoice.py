"""A tiny but real RVC set-up for tests: HF-format content model in the models folder + RVC voices in the store.

Everything is random weights in the real file formats (``.pth`` as RVC saves it, faiss ``.index``, transformers
HuBERT folder); the real loading, retrieval and inference code runs on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.rvckit import make_hf_hubert, make_index

HUBERT = dict(hidden=768, layers=2, heads=4, ffn=64, conv_dim=(16, 16), final_dim=256, seed=0)


def install_content_model(settings) -> Path:
    folder = Path(settings.models_path) / "hubert"
    if not (folder / "config.json").exists():
        make_hf_hubert(folder, **HUBERT)
    return folder


def write_voice_files(
    folder: Path,
    name: str,
    *,
    version: str = "v2",
    sr: int = 40000,
    f0: bool = True,
    seed: int = 1,
    with_index: bool = True,
    speakers: int = 4,
) -> tuple[Path, Path | None]:
    from singer.engines.converters.rvc.testing import write_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    pth = write_checkpoint(
        folder / f"{name}.pth", version=version, sr=sr, f0=f0, size="tiny", seed=seed, speakers=speakers
    )
    index = None
    if with_index:
        rng = np.random.default_rng(seed)
        dim = 768 if version == "v2" else 256
        index = make_index(folder / f"{name}.index", rng.standard_normal((300, dim)).astype(np.float32))
    return pth, index


def install_voice(settings, name: str = "tinyrvc", *, vocal_range: str | None = "A3-E5", **kw):
    """Content model + one RVC voice in the user's store; returns the Voice."""
    from singer.voices import VoiceStore

    install_content_model(settings)
    pth, index = write_voice_files(Path(settings.home) / "src-models", name, **kw)
    return VoiceStore(settings).add_rvc(name, pth, index, vocal_range=vocal_range)
