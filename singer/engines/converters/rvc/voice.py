"""RVC voices in the voice store: add (copy + sha256), verify, N-way merge with index merge and provenance.

A voice ``NAME`` is ``NAME.json`` + ``NAME.pth`` (+ ``NAME.index``) in the user's voices folder. The manifest
records each file's sha256, the model's version/sample rate/f0, the voice's register when known and where the
voice came from. The register (used by ``--key auto`` and ``auto_octave``; :mod:`singer.register`) is
``meta["range"]``, the singing range (MIDI p10/median/p90 and ``from``), and ``meta["speaking"]``, the speaking
pitch (MIDI ``median`` and ``from``), from ``--range`` (a singing range), ``--sample`` recordings (sung: the
range is measured and the speaking pitch follows by the rule; spoken: the speaking pitch is measured and the range
follows; ``meta["samples"]`` says which, and whether the user said so or singer heard it) or ``--gender`` (the
rule on a typical speaking pitch). Manifests from before ``speaking`` existed still load: their range is taken
as a singing range and the speaking pitch follows by the rule. Files are copied next to a temporary name and
renamed into place; the manifest is written last, so a voice is complete or absent.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ....errors import InputError, ModelError
from ....files import sha256_file
from ....register import TYPICAL_SPEAKING_HZ, Register
from . import checkpoint as ck

NOTE_RE = re.compile(r"([A-Ga-g])([#b]?)(-?\d)\Z")
NOTES = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
GENDERS = tuple(TYPICAL_SPEAKING_HZ)  # --gender values that give a typical register
SAMPLE_KINDS = ("auto", "sung", "spoken")
_OLD_FROM = {  # "from" values of manifests written before the register had a speaking pitch
    "given": "given (--range)",
    "samples": "measured from --sample recordings (added before singer told singing from speech: taken as sung)",
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

    @property
    def register(self) -> Register | None:
        """Singing range and speaking pitch, each with where it came from; None without a range."""
        rng = self.meta.get("range")
        if not rng:
            return None
        frm = str(rng.get("from", ""))
        frm = _OLD_FROM.get(frm, "typical range by gender (older manifest)" if frm.startswith("typical") else frm)
        recorded = str((self.meta.get("samples") or {}).get("kind", ""))
        speaking = self.meta.get("speaking")
        if speaking:
            return Register(
                float(rng["p10"]),
                float(rng["median"]),
                float(rng["p90"]),
                frm,
                float(speaking["median"]),
                str(speaking.get("from", "")),
                recorded,
            )
        return Register.from_singing(float(rng["p10"]), float(rng["median"]), float(rng["p90"]), frm, recorded)


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
        raise InputError(
            f"Cannot read the note '{note}'.", hint="Write notes like C3, F#4, Bb3 or MIDI numbers like 48."
        )
    return 12 * (int(m.group(3)) + 1) + NOTES[m.group(1).lower()] + {"#": 1, "b": -1, "": 0}[m.group(2)]


def parse_range(text: str) -> dict:
    """``"C3-C5"`` or ``"48-72"`` -> {"p10", "median", "p90"} in MIDI numbers."""
    parts = re.split(r"\s*(?:-|\.\.|to)\s*(?=[A-Ga-g\d])", text.strip(), maxsplit=1)
    if len(parts) != 2:
        raise InputError(f"Cannot read the range '{text}'.", hint="Write the lowest and highest note, e.g. C3-C5.")
    lo, hi = sorted((_midi(parts[0]), _midi(parts[1])))
    if hi - lo < 3:
        raise InputError(
            f"The range '{text}' is narrower than three semitones.",
            hint="Give the voice's comfortable range, e.g. A3-E5.",
        )
    return {"p10": lo, "median": (lo + hi) / 2, "p90": hi, "from": "given (--range)"}


def register_from_range(text: str) -> Register:
    """``--range C3-C5``: a singing range given by the user; the speaking pitch follows by the rule."""
    r = parse_range(text)
    return Register.from_singing(r["p10"], r["median"], r["p90"], r["from"], recorded="")


def register_from_samples(paths: Sequence[Path], kind: str = "auto") -> tuple[Register, dict]:
    """Measure the voice's register from recordings of it (fcpe pitch). ``kind``: "sung", "spoken", or "auto" (told
    from the pitch track, :func:`singer.register.classify`). Sung samples give the singing range (their 10th-90th
    percentile), spoken ones the speaking pitch (their median); the other figure follows by the rule.
    Returns (register, what the samples were: {"kind", "said": "by you" | "detected", evidence...})."""
    import numpy as np

    from .... import audio
    from ....register import classify, pitch_stats
    from .f0 import FRAME_S, extract_f0

    if kind not in SAMPLE_KINDS:
        raise InputError(f"Unknown sample kind '{kind}'.", hint=f"Choose one of: {', '.join(SAMPLE_KINDS)}.")
    f0s = []
    for p in paths:
        x = audio.decode(Path(p), 16000, 1)[0].astype(np.float64)
        f0s.append(extract_f0(x, len(x) // 160, "fcpe"))
    stats = pitch_stats(f0s, FRAME_S) if f0s else None
    if stats is None:
        raise InputError(
            "Too little voice in the samples to measure the voice's range.",
            hint="Give recordings with a few seconds of singing or speech, or --range C3-C5.",
        )
    heard = classify(f0s, FRAME_S)
    said = (
        {"kind": kind, "said": "by you (--sample-kind)"}
        if kind != "auto"
        else {"kind": heard.kind if heard else "sung", "said": "detected"}
    )
    samples = {**said, **({"evidence": heard.to_dict()} if heard else {}), "files": [Path(p).name for p in paths]}
    if samples["kind"] == "sung":
        reg = Register.from_singing(
            stats["p10"],
            stats["median"],
            stats["p90"],
            "measured from sung --sample recordings (10th-90th percentile of their pitch)",
        )
    else:
        reg = Register.from_speaking(stats["median"], "measured from spoken --sample recordings (median pitch)")
    return reg, samples


def register_meta(reg: Register) -> dict:
    """The manifest's ``range`` and ``speaking`` entries for a register."""
    return {"range": reg.singing_dict(), "speaking": {"median": round(reg.speaking, 2), "from": reg.speaking_from}}


def _install(files: dict[str, Path], folder: Path) -> dict[str, str]:
    """Copy ``files`` ({name in folder: source}) into ``folder``; their sha256. Every copy is staged beside its
    target first and the targets replaced only once all are staged, so a failed copy leaves the folder as it was
    (a voice being replaced keeps its old files)."""
    staged = {dst: folder / f".{dst}.{os.getpid()}.tmp" for dst in files}
    try:
        sha = {}
        for dst, src in files.items():
            shutil.copyfile(src, staged[dst])
            sha[dst] = sha256_file(staged[dst])
        for dst, tmp in staged.items():
            os.replace(tmp, folder / dst)
        return sha
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


def check_index(index_path: Path, model: ck.RVCCheckpoint, label: str):
    from .index import RetrievalIndex, probe_file

    probe_file(index_path)  # an index from the wild: read first where its declared sizes cannot exhaust memory
    idx = RetrievalIndex.load(index_path)
    if idx.dim != model.content_dim:
        raise InputError(
            f"The index {index_path.name} holds {idx.dim}-dim features but {label} is an RVC {model.version} "
            f"model ({model.content_dim}-dim).",
            hint="Use the index trained with this model.",
        )
    return idx


def add(
    store: Any,
    name: str,
    pth: Path,
    index: Path | None,
    *,
    register: Register | None = None,
    samples: dict | None = None,
    gender: str = "",
    description: str = "",
    licence: str = "",
    overwrite: bool = False,
    source: dict | None = None,
):
    """Validate and copy an RVC model (+ index) into the store as voice ``name``. Without a ``register`` a known
    ``gender`` gives the typical one (:meth:`singer.register.Register.typical`). ``source``: where the files came
    from (:mod:`singer.voicesources`), kept in the manifest. A failure leaves none of the voice's files behind."""
    path = store._check_new(name, overwrite)
    pth = Path(pth)
    model = ck.load(pth)
    if index is not None:
        index = Path(index)
        if not index.is_file():
            raise InputError(
                f"No such index file: {index}", hint="Give the .index file trained with the model, or leave it out."
            )
        check_index(index, model, pth.name)
    if register is None and gender in GENDERS:
        register = Register.typical(gender)
    store.user_dir.mkdir(parents=True, exist_ok=True)
    files = {f"{name}.pth": pth, **({f"{name}.index": index} if index is not None else {})}
    was_new = not path.exists()
    sha = _install(files, store.user_dir)
    meta = {
        "description": description or f"RVC {model.version} {model.sr // 1000}k model from {pth.name}",
        "gender": gender,
        "licence": licence,
        **_model_meta(model),
        "sha256": sha,
        "bytes": sum((store.user_dir / dst).stat().st_size for dst in files),
    }
    if source:
        meta["source"] = source
    if register is not None:
        meta.update(register_meta(register))
    if samples:
        meta["samples"] = samples
    provenance = {"added_from": {pth.name: sha[f"{name}.pth"], **({index.name: sha[f"{name}.index"]} if index else {})}}
    return _write_or_undo(store, path, name, list(files), meta, provenance, was_new)


def _model_meta(model: ck.RVCCheckpoint) -> dict:
    d = model.describe()
    return {
        "version": d["version"],
        "sample_rate": d["sample_rate"],
        "f0": d["f0"],
        "speakers": d["speakers"],
        "info": d["info"],
        **{k: str(d[k]) for k in ("vocoder", "embedder_model") if d.get(k)},  # Applio names them
    }


def _write(store: Any, path: Path, name: str, files: list[str], meta: dict, provenance: dict):
    from ....files import atomic_write_json

    atomic_write_json(path, {"name": name, "kind": "rvc", "files": files, "meta": meta, "provenance": provenance})
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
            raise ModelError(
                f"Voice '{voice.name}' is missing {f.name}.",
                hint=f"Add the voice again (singer voices add {voice.name} ...).",
            )
        actual = sha256_file(f)
        report[f.name] = {
            "expected": expected.get(f.name, ""),
            "actual": actual,
            "ok": expected.get(f.name) in ("", None, actual),
        }
    bad = [k for k, v in report.items() if not v["ok"]]
    if bad:
        raise ModelError(
            f"Voice '{voice.name}': {', '.join(bad)} changed since it was added (sha256 differs).",
            hint=f"Re-add the voice from the original files: singer voices add {voice.name} --pth ... --overwrite",
        )
    return report


def merge(
    store: Any,
    voices: Sequence[Any],
    weights: Sequence[float],
    new_name: str,
    *,
    description: str = "",
    overwrite: bool = False,
):
    """Weighted merge of RVC voices: parameters averaged, retrieval indexes combined and rebuilt."""
    path = store._check_new(new_name, overwrite)
    names = [v.name for v in voices]
    rvs = [load_voice(v) for v in voices]
    models = [ck.load(r.pth) for r in rvs]
    merged = ck.merge(models, list(weights), names)
    store.user_dir.mkdir(parents=True, exist_ok=True)
    # made in a staging folder and installed together, so a failure (index merge, disk) leaves no new file and a
    # voice being replaced keeps its files
    with tempfile.TemporaryDirectory(prefix=".merge-", dir=store.user_dir) as staging:
        made = {f"{new_name}.pth": Path(staging) / f"{new_name}.pth"}
        merged.save(made[f"{new_name}.pth"])
        note = ""
        live = [(r, w) for r, w in zip(rvs, weights) if w > 0]
        if all(r.index is not None for r, _ in live):
            from .index import RetrievalIndex, merge_indexes

            idx = merge_indexes([RetrievalIndex.load(r.index) for r, _ in live if r.index], [w for _, w in live])
            made[f"{new_name}.index"] = Path(staging) / f"{new_name}.index"
            idx.save(made[f"{new_name}.index"])
        elif any(r.index is not None for r, _ in live):
            note = "no index: not every merged voice has one"
        was_new = not path.exists()
        sha = _install(made, store.user_dir)
    files = list(made)
    meta = _merged_meta(voices, rvs, weights, merged, sha, note)
    if description:
        meta["description"] = description
    provenance = {
        "merged_from": [
            {"name": n, "weight": w, "sha256": r.meta.get("sha256", {})} for n, w, r in zip(names, weights, rvs)
        ]
    }
    voice = _write_or_undo(store, path, new_name, files, meta, provenance, was_new)
    if f"{new_name}.index" not in files:  # the voice it replaced had one: it is not this voice's
        (store.user_dir / f"{new_name}.index").unlink(missing_ok=True)
    return voice


def _merged_meta(voices: Sequence[Any], rvs: list, weights: Sequence[float], merged: Any, sha: dict, note: str) -> dict:
    """A merged voice's manifest meta: its description, gender, licences, model, and the weighted register."""
    names = [v.name for v in voices]
    total = float(sum(weights))
    ranges = [r.range for r in rvs]
    meta = {
        "description": "merge of " + " + ".join(f"{w / total:.3g}*{n}" for n, w in zip(names, weights)),
        "gender": _merged_gender(voices),
        "licence": "; ".join(sorted({v.meta.get("licence", "") for v in voices} - {""})),
        **_model_meta(merged),
        "sha256": sha,
    }
    if note:
        meta["note"] = note
    if all(ranges):
        meta["range"] = {k: sum(r[k] * w for r, w in zip(ranges, weights)) / total for k in ("p10", "median", "p90")}
        meta["range"]["from"] = "weighted merge of the voices' singing ranges"
        speaking = [r.register.speaking for r in rvs]  # measured, given or by the rule: each voice's best figure
        meta["speaking"] = {
            "median": sum(s * w for s, w in zip(speaking, weights)) / total,
            "from": "weighted merge of the voices' speaking pitches",
        }
    return meta


def _write_or_undo(
    store: Any, path: Path, name: str, files: list[str], meta: dict, provenance: dict, was_new: bool
) -> Any:
    """The manifest written; a new voice whose manifest could not be written leaves none of its files."""
    try:
        return _write(store, path, name, files, meta, provenance)
    except BaseException:
        if was_new:
            for dst in files:
                (store.user_dir / dst).unlink(missing_ok=True)
        raise


def _merged_gender(voices: Sequence[Any]) -> str:
    g = {v.meta.get("gender", "") for v in voices}
    return g.pop() if len(g) == 1 else "mixed"
