"""What one cover costs in CPU-seconds per minute of audio (issue 17), from the run records (run.json), as JSON.

  python benchmarks/bench_cost.py [--seconds 60]

Workflows measured, each cold (empty cache) in this process, on one generated song (benchmarks/songgen.py):

- default: the ``cover`` workflow as shipped (spleeter + world, a bundled profile voice);
- full quality: ``cover`` with the uvr separator (an MDX-Net ONNX model in the real format, random weights, UVR's
  Voc_FT sizes; benchmarks/bench_uvr.py) and a full-size RVC v2 40k voice (random weights, HuBERT base, 20 000-vector
  index), at ``precision = auto`` and at ``fp32``;
- the same song in a second RVC voice after the first (features, separation and source cached).

CPU-seconds are the process's (every thread) plus its children's (ffmpeg), per step, as run.json records them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _cover(settings, song: Path, voice: str, out: Path, separator: str | None = None) -> dict:
    from singer.api import CoverRequest, Singer

    t = time.perf_counter()
    res = Singer(settings).cover(
        CoverRequest(input=str(song), voice=voice, format="mp3", out=str(out), separator=separator)
    )
    wall = time.perf_counter() - t
    record = json.loads((res.run.run_dir / "run.json").read_text())
    steps = {s["id"]: round(s["cpu_seconds"], 2) for s in record["steps"] if not s["skipped"]}
    conv = next((s for s in record["steps"] if s["id"] == "convert"), {})
    return {
        "wall_s": round(wall, 2),
        "cpu_seconds": record["cpu_seconds"],
        "steps_cpu_seconds": steps,
        "cached": [s["id"] for s in record["steps"] if s["cached"]],
        "path": (conv.get("meta") or {}).get("path"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--no-uvr", action="store_true", help="full quality with spleeter instead of uvr")
    a = ap.parse_args()
    from bench_rvc import full_hubert, make_index
    from bench_uvr import MODEL_FILE, make_song, write_model_folder

    from singer.config import Settings
    from singer.engines.converters.rvc.testing import write_checkpoint
    from singer.voices import VoiceStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-cost-"))
    song = make_song(tmp / "song", a.seconds, seed=7)
    models = tmp / "models"
    full_hubert(models / "hubert")
    write_model_folder(models / "uvr")
    pths = [
        write_checkpoint(tmp / f"v{i}.pth", version="v2", sr=40000, size="full", seed=i, speakers=109) for i in (0, 1)
    ]
    idx = [make_index(tmp / f"v{i}.index", seed=i) for i in (0, 1)]
    minutes = a.seconds / 60
    out: dict = {"figure": "cpu_seconds_per_minute", "song_seconds": a.seconds, "load_start": os.getloadavg()}
    sep = None if a.no_uvr else "uvr"
    runs = {
        "default": ("fp32", "ayana", None),
        "full_quality_auto": ("auto", "rvc0", sep),
        "full_quality_fp32": ("fp32", "rvc0", sep),
    }
    for label, (precision, voice, separator) in runs.items():
        home = tmp / f"home-{label}"
        settings = Settings(home=home, models_dir=models, uvr_model=MODEL_FILE, precision=precision)
        for i in (0, 1):
            VoiceStore(settings).add_rvc(f"rvc{i}", pths[i], idx[i], vocal_range="A3-E5")
        row = _cover(settings, song, voice, tmp / f"{label}.mp3", separator)
        if voice == "rvc0":
            row["second_voice"] = _cover(settings, song, "rvc1", tmp / f"{label}-2.mp3", separator)
            row["second_voice"]["cpu_seconds_per_minute"] = round(row["second_voice"]["cpu_seconds"] / minutes, 1)
        row["cpu_seconds_per_minute"] = round(row["cpu_seconds"] / minutes, 1)
        out[label] = row
        print(json.dumps({label: row}), file=sys.stderr, flush=True)
    out["separator_full_quality"] = sep or "spleeter"
    out["load_end"], out["cpu_count"] = os.getloadavg(), os.cpu_count()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
