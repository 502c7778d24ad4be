"""RVC voices in the voice store: add (copy + sha256), verify, N-way merge with index merge and provenance.

A voice ``NAME`` is ``NAME.json`` + ``NAME.pth`` (+ ``NAME.index``) in the user's voices folder. The manifest
records each file's sha256, the model's version/sample rate/f0, the voice's singing range when known (MIDI p10/
median/p90, used by ``--key auto``) and where the voice came from. Files are copied next to a temporary name and
renamed into place; the manifest is written last, so a voice is complete or absent.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
from . import checkpoint as ck

NOTE_RE = re.compile(r"([A-Ga-g])([#b]?)(-?\d)\Z")
NOTES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
GENDER_RANGES = {  # typical sung ranges (MIDI p10/median/p90) when nothing better is known
    "female": {"p10": 57.0, "median": 64.0, "p90": 72.0},
    "male": {"p10": 45.0, "median": 52.0, "p90": 60.0},
}


@dataclass
class RVCVoice:
    """What ``Voice.load()`` returns for ``kind == "rvc"``."""

    name: str
    pth: Path
    index: Path | None
    meta: dict = field(default_factory=dict)

    @property
    def range(self) -> dict | None:
        return self.meta.get("range")


def load_voice(voice: Any) -> RVCVoice:
    m = voice.manifest
    folder = Path(voice.files[0]).parent
    files = m["files"]
    pth = folder / files[0]
    index = folder / files[1] if len(files) > 1 else None
    return RVCVoice(name=voice.name, pth=pth, index=index, meta=m.get("meta", {}))


def _midi(note: str) -> float:
    note = note.strip()
    try:
        return float(note)
    except ValueError:
        pass
    m = NOTE_RE.match(note)
    if not m:
        raise InputError(f"Cannot read the note '{note}'.", hint="Write notes like C3, F#4, Bb3 or MIDI numbers like 48.")
    return 12 * (int(m.group(3)) + 1) + NOTES[m.group(1).lower()] + {"#": 1, "b": -1, "": 0}[m.group(2)]


def parse_range(text: str) -> dict:
    """``"C3-C5"`` or ``"48-72"`` -> {"p10", "median", "p90"} in MIDI numbers."""
    parts = re.split(r"\s*(?:-|\.\.|to)\s*(?=[A-Ga-g\d])", text.strip(), maxsplit=1)
    if len(parts) != 2:
        raise InputError(f"Cannot read the range '{text}'.", hint="Write the lowest and highest note, e.g. C3-C5.")
    lo, hi = sorted((_midi(parts[0]), _midi(parts[1])))
    if hi - lo < 3:
        raise InputError(f"The range '{text}' is narrower than three semitones.", hint="Give the voice's comfortable range, e.g. A3-E5.")
    return {"p10": lo, "median": (lo + hi) / 2, "p90": hi, "from": "given"}


def range_from_samples(paths: Sequence[Path]) -> dict:
    """Measure the voice's range from recordings of it (fcpe pitch)."""
    import numpy as np

    from .. import audio
    from .f0 import extract_f0, pitch_stats

    f0s = []
    for p in paths:
        x = audio.decode(Path(p), 16000, 1)[0].astype(np.float64)
        f0s.append(extract_f0(x, len(x) // 160, "fcpe"))
    stats = pitch_stats(np.concatenate(f0s)) if f0s else None
    if stats is None:
        raise InputError("Too little singing in the samples to measure the voice's range.",
                         hint="Give recordings with a few seconds of singing, or --range C3-C5.")
    return {**stats, "from": "samples"}


def _copy(src: Path, dst: Path) -> str:
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    digest = ck.sha256_file(tmp)
    tmp.replace(dst)
    return digest


def check_index(index_path: Path, model: ck.RVCCheckpoint, label: str):
    from .index import RetrievalIndex

    idx = RetrievalIndex.load(index_path)
    if idx.dim != model.content_dim:
        raise InputError(f"The index {index_path.name} holds {idx.dim}-dim features but {label} is an RVC {model.version} "
                         f"model ({model.content_dim}-dim).", hint="Use the index trained with this model.")
    return idx


def add(store: Any, name: str, pth: Path, index: Path | None, *, vocal_range: dict | None = None,
        gender: str = "", description: str = "", licence: str = "", overwrite: bool = False):
    """Validate and copy an RVC model (+ index) into the store as voice ``name``."""
    path = store._check_new(name, overwrite)
    pth = Path(pth)
    model = ck.load(pth)
    if index is not None:
        index = Path(index)
        if not index.is_file():
            raise InputError(f"No such index file: {index}", hint="Give the .index file trained with the model, or leave it out.")
        check_index(index, model, pth.name)
    if vocal_range is None and gender in GENDER_RANGES:
        vocal_range = {**GENDER_RANGES[gender], "from": f"typical {gender} range"}
    store.user_dir.mkdir(parents=True, exist_ok=True)
    files = {f"{name}.pth": pth, **({f"{name}.index": index} if index is not None else {})}
    sha = {dst: _copy(src, store.user_dir / dst) for dst, src in files.items()}
    meta = {"description": description or f"RVC {model.version} {model.sr // 1000}k model from {pth.name}",
            "gender": gender, "licence": licence, **_model_meta(model), "sha256": sha}
    if vocal_range:
        meta["range"] = vocal_range
    provenance = {"added_from": {pth.name: sha[f"{name}.pth"], **({index.name: sha[f"{name}.index"]} if index else {})}}
    return _write(store, path, name, list(files), meta, provenance)


def _model_meta(model: ck.RVCCheckpoint) -> dict:
    d = model.describe()
    return {"version": d["version"], "sample_rate": d["sample_rate"], "f0": d["f0"], "speakers": d["speakers"],
            "info": d["info"]}


def _write(store: Any, path: Path, name: str, files: list[str], meta: dict, provenance: dict):
    from ..profile import save_json

    save_json(path, {"name": name, "kind": "rvc", "files": files, "meta": meta, "provenance": provenance})
    voice = store._read(path, False)
    assert voice is not None
    return voice


def verify(voice: Any) -> dict:
    """Re-hash the voice's files against the manifest; raise ModelError naming any that changed."""
    rv = load_voice(voice)
    expected = rv.meta.get("sha256", {})
    report = {}
    for f in [rv.pth, *([rv.index] if rv.index else [])]:
        if not f.is_file():
            raise ModelError(f"Voice '{voice.name}' is missing {f.name}.", hint=f"Add the voice again (singer voices add {voice.name} ...).")
        actual = ck.sha256_file(f)
        report[f.name] = {"expected": expected.get(f.name, ""), "actual": actual, "ok": expected.get(f.name) in ("", None, actual)}
    bad = [k for k, v in report.items() if not v["ok"]]
    if bad:
        raise ModelError(f"Voice '{voice.name}': {', '.join(bad)} changed since it was added (sha256 differs).",
                         hint=f"Re-add the voice from the original files: singer voices add {voice.name} --pth ... --overwrite")
    return report


def merge(store: Any, voices: Sequence[Any], weights: Sequence[float], new_name: str, *, description: str = "",
          overwrite: bool = False):
    """Weighted merge of RVC voices: parameters averaged, retrieval indexes combined and rebuilt."""
    path = store._check_new(new_name, overwrite)
    names = [v.name for v in voices]
    rvs = [load_voice(v) for v in voices]
    models = [ck.load(r.pth) for r in rvs]
    merged = ck.merge(models, list(weights), names)
    store.user_dir.mkdir(parents=True, exist_ok=True)
    files = [f"{new_name}.pth"]
    pth_tmp = store.user_dir / f"{new_name}.pth"
    merged.save(pth_tmp)
    sha = {files[0]: ck.sha256_file(pth_tmp)}
    note = ""
    live = [(r, w) for r, w in zip(rvs, weights) if w > 0]
    if all(r.index is not None for r, _ in live):
        from .index import RetrievalIndex, merge_indexes

        idx = merge_indexes([RetrievalIndex.load(r.index) for r, _ in live], [w for _, w in live])
        files.append(f"{new_name}.index")
        idx.save(store.user_dir / files[1])
        sha[files[1]] = ck.sha256_file(store.user_dir / files[1])
    elif any(r.index is not None for r, _ in live):
        note = "no index: not every merged voice has one"
    total = float(sum(weights))
    ranges = [r.range for r in rvs]
    meta = {"description": description or "merge of " + " + ".join(f"{w / total:.3g}*{n}" for n, w in zip(names, weights)),
            "gender": _merged_gender(voices), "licence": "; ".join(sorted({v.meta.get("licence", "") for v in voices} - {""})),
            **_model_meta(merged), "sha256": sha}
    if note:
        meta["note"] = note
    if all(ranges):
        meta["range"] = {k: sum(r[k] * w for r, w in zip(ranges, weights)) / total for k in ("p10", "median", "p90")}
        meta["range"]["from"] = "weighted merge"
    provenance = {"merged_from": [{"name": n, "weight": w, "sha256": r.meta.get("sha256", {})} for n, w, r in zip(names, weights, rvs)]}
    return _write(store, path, new_name, files, meta, provenance)


def _merged_gender(voices: Sequence[Any]) -> str:
    g = {v.meta.get("gender", "") for v in voices}
    return g.pop() if len(g) == 1 else "mixed"
