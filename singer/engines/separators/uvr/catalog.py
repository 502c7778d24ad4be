"""Which UVR model a step uses: presets, manifest names and loose files, resolved to files in the UVR folder.

The UVR models singer knows are the ``engine = "uvr"`` entries of ``models/manifest.toml`` (published SDR, stage,
presets). A step names one by preset (``best-vocals``), by manifest name (``vocals-roformer``) or by the file name
of any model audio-separator knows that the user copied into ``<models>/uvr/``. Nothing here imports
audio-separator: resolving is cheap and happens when a workflow binds its steps (the files' digests go into the
cache key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ....config import Settings
from ....errors import ModelError, UsageError

STAGES: dict[str, tuple[str, str]] = {  # stage -> (output kept, the rest)
    "vocals": ("vocals", "instrumental"),
    "karaoke": ("lead", "backing"),
    "dereverb": ("dry", "reverb"),
}
DEFAULT_PRESETS = {"vocals": "best-vocals", "karaoke": "karaoke", "dereverb": "dereverb"}
# the model stem names that mean "the output kept" in each stage (audio-separator's names, lower case)
KEPT = {
    "vocals": {"vocals", "vocal"},
    "karaoke": {"vocals", "lead vocals", "lead"},
    "dereverb": {"no reverb", "noreverb", "dry", "no echo", "noecho", "no reverb/echo"},
}
# files audio-separator reads for every model (UVR's model list) and, by extension, for MDX/VR hash lookups
LIST_FILE = "download_checks.json"
HASH_DATA = ("mdx_model_data.json", "vr_model_data.json")  # read for every .onnx (MDX) and .pth (VR) model


def uvr_dir(settings: Settings) -> Path:
    return Path(settings.models_path) / "uvr"


@dataclass(frozen=True)
class UVRModel:
    name: str  # manifest name, or the file name of a loose model
    file: str  # model file name inside the UVR folder (what audio-separator's load_model takes)
    stage: str
    files: tuple[str, ...]  # every file it needs, relative to the UVR folder
    arch: str = ""
    presets: tuple[str, ...] = ()
    sdr: dict = field(default_factory=dict, compare=False)
    pull: str = ""  # what `singer models pull` takes to fetch it ("" for a loose file)

    def paths(self, settings: Settings) -> list[Path]:
        return [uvr_dir(settings) / f for f in self.files]


def _from_entry(entry: Any, store: Any) -> UVRModel:
    rels = [f.rel for r in entry.requires for f in store.resolve(r).files] + [f.rel for f in entry.files]
    x = entry.extra
    return UVRModel(
        entry.name,
        Path(entry.files[0].rel).name,
        x.get("stage", "vocals"),
        tuple(str(Path(r).relative_to("uvr")) for r in rels),
        x.get("arch", ""),
        tuple(x.get("presets", [])),
        dict(x.get("sdr", {})),
        entry.name,
    )


def catalog(settings: Settings) -> list[UVRModel]:
    from ....modelstore import ModelStore

    store = ModelStore(settings)
    return [_from_entry(e, store) for e in store.entries("separator") if e.engine == "uvr"]


def resolve(settings: Settings, model: str, stage: str) -> UVRModel:
    """The model a step asks for; ``""`` means the stage's default (``settings.uvr_model`` for the vocals stage,
    else the stage's default preset)."""
    if stage not in STAGES:
        raise UsageError(f"Unknown separation stage '{stage}'", hint=f"Stages: {', '.join(STAGES)}.")
    text = (
        model or (getattr(settings, "uvr_model", "") if stage == "vocals" else "") or DEFAULT_PRESETS[stage]
    ).strip()
    known = catalog(settings)
    for m in known:
        if text == m.name or text in m.presets or text == m.file:
            return m
    loose = uvr_dir(settings) / text
    if Path(text).name == text and loose.is_file():
        need = [LIST_FILE, *(HASH_DATA if loose.suffix.lower() in (".onnx", ".pth") else ()), text]
        return UVRModel(text, text, stage, tuple(need))
    presets = sorted(p for m in known for p in m.presets)
    raise UsageError(
        f"Unknown UVR model or preset '{text}'",
        hint=f"Presets: {', '.join(presets)}; models: {', '.join(m.name for m in known)} "
        f"(`singer models list --kind separator`), or the file name of a model in {uvr_dir(settings)}.",
    )


def require(settings: Settings, m: UVRModel) -> list[Path]:
    """The model's files; :class:`ModelError` (exit 4) naming the pull command when any is missing."""
    paths = m.paths(settings)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        how = f"`singer models pull {m.pull}`" if m.pull else f"copying them into {uvr_dir(settings)}"
        raise ModelError(
            f"The UVR model '{m.name}' is not here: missing {', '.join(p.name for p in missing)}.",
            hint=f"Fetch it with {how} (online), or copy the files to {uvr_dir(settings)}.",
            reasons={p.name: "missing" for p in missing},
        )
    return paths


def assign(stage: str, primary: str, secondary: str) -> dict[str, str]:
    """Map the model's two stems to the stage's outputs, e.g. karaoke: {"lead": "Vocals", "backing": "Instrumental"}."""
    kept, rest = STAGES[stage]
    if primary.lower() in KEPT[stage]:
        return {kept: primary, rest: secondary}
    if secondary.lower() in KEPT[stage]:
        return {kept: secondary, rest: primary}
    raise ModelError(
        f"This model's stems ({primary}, {secondary}) do not fit the {stage} stage, which keeps "
        f"one of: {', '.join(sorted(KEPT[stage]))}.",
        hint=f"Pick a {stage} model: `singer models list --kind separator`.",
    )
