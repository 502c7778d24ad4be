#!/usr/bin/env python3
"""Whole-cover figures on a generated song, through the real CLI in fresh processes. Prints ONE JSON object.

  cold_s            first cover of a 3-minute song, empty cache (default engines: spleeter + world)
  other_voice_s     same song, another voice (separation reused)      goal <= 0.40 x cold
  repeat_s          identical repeat (every step cached)              goal <= 1 s
  stage_s           per-step compute seconds of the cold run
  loudness          on a mixture with known stems: output LUFS vs target, true peak, vocal/instrumental ratio
  long_peak_rss_mb  10-minute song, whole cover, peak RSS of the process   goal <= 1500 MB (--long)

Usage: python benchmarks/bench_cover.py [--seconds 180] [--long] [--synthetic]
--synthetic uses the pure-numpy song generator (tests/synth.py) instead of Festival + FluidSynth.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def make_song(out: Path, seconds: float, synthetic: bool) -> dict:
    if not synthetic:
        try:
            import songgen

            return songgen.make_song(out, seconds=seconds, seed=0)
        except Exception as e:  # festival/fluidsynth missing
            print(f"songgen unavailable ({e}); using the synthetic generator", file=sys.stderr)
    from singer.audio import write_wav
    from tests.synth import make_synthetic_song

    mix, voc, inst = make_synthetic_song(seconds, sr=44100, seed=0)
    paths = {}
    for name, data in (("mix", mix), ("vocals", voc), ("instrumental", inst)):
        paths[name] = out / f"{name}.wav"
        write_wav(paths[name], data, 44100)
    return paths


def cli(args: list[str], env: dict) -> tuple[float, dict, float]:
    """Run `singer ...` in a child process; return (wall seconds, JSON result, child peak RSS MB)."""
    code = (
        "import resource,subprocess,sys,json;"
        "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "sys.stdout.write(p.stdout);"
        "print(json.dumps({'rss_kb':resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,'rc':p.returncode,'err':p.stderr[-2000:]}))"
    )
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", code, sys.executable, "-m", "singer", *args, "--json", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
    )
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    result, stats = json.loads(lines[-2]), json.loads(lines[-1])
    if stats["rc"] != 0:
        raise SystemExit(f"singer {' '.join(args)} failed: {result} {stats['err']}")
    return wall, result, stats["rss_kb"] / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--long", action="store_true", help="also a 10-minute song for peak RSS")
    ap.add_argument("--synthetic", action="store_true")
    args = ap.parse_args()

    from singer.audio import decode
    from singer.loudness import true_peak_db
    from singer.mix import stem_loudness

    work = Path(tempfile.mkdtemp(prefix="singer-bench-"))
    env = {**os.environ, "SINGER_HOME": str(work / "home")}
    song = make_song(work / "song", args.seconds, args.synthetic) if (work / "song").mkdir() is None else None
    out = work / "out"
    out.mkdir()
    res: dict = {"song_seconds": args.seconds, "generator": "synthetic" if args.synthetic else "songgen"}

    cold, r_cold, rss_cold = cli(
        ["cover", str(song["mix"]), "--voice", "ayana", "--format", "wav", "--out", str(out / "a.wav")], env
    )
    other, r_other, _ = cli(
        ["cover", str(song["mix"]), "--voice", "kenji", "--format", "wav", "--out", str(out / "b.wav")], env
    )
    repeat, r_rep, _ = cli(
        ["cover", str(song["mix"]), "--voice", "ayana", "--format", "wav", "--out", str(out / "c.wav")], env
    )
    res.update(
        cold_s=round(cold, 2),
        other_voice_s=round(other, 2),
        other_over_cold=round(other / cold, 3),
        repeat_s=round(repeat, 3),
        cold_peak_rss_mb=round(rss_cold, 1),
        stage_s={s["id"]: s["seconds"] for s in r_cold["run"]["steps"]},
        other_voice_stage_s={s["id"]: s["seconds"] for s in r_other["run"]["steps"]},
        repeat_all_cached=all(s["cached"] or s["skipped"] for s in r_rep["run"]["steps"]),
    )

    # loudness figures against the known stems
    mixm = next(s for s in r_cold["run"]["steps"] if s["id"] == "mix")["meta"]
    y = decode(out / "a.wav", 44100, 2)
    from singer.loudness import integrated_loudness

    target = -14.0
    orig_ratio = stem_loudness(song["vocals"]) - stem_loudness(song["instrumental"])
    cover_ratio = (mixm["converted_vocals_lufs"] + mixm["vocal_gain_db"]) - mixm["instrumental_lufs"]
    res["loudness"] = {
        "target_lufs": target,
        "output_lufs": round(integrated_loudness(y, 44100), 2),
        "output_true_peak_dbtp": round(true_peak_db(y), 2),
        "original_vocal_minus_instrumental_lu": round(orig_ratio, 2),
        "cover_vocal_minus_instrumental_lu": round(cover_ratio, 2),
        "ratio_error_lu": round(abs(cover_ratio - orig_ratio), 2),
    }
    # the same three runs inside one warm process (the HTTP service / batch runner case): no interpreter start,
    # imports and model loads paid once
    code = (
        "import json,sys,time;from singer import Singer,CoverRequest;from singer.config import Settings;"
        "s=Singer(Settings());m=sys.argv[1];o=sys.argv[2];t=[]\n"
        "for v,n in (('ayana','a'),('kenji','b'),('ayana','c')):\n"
        "    t0=time.perf_counter();s.cover(CoverRequest(input=m,voice=v,format='wav',out=o+'/'+n+'.wav'));"
        "t.append(time.perf_counter()-t0)\n"
        "print(json.dumps(t))"
    )
    env_w = {**os.environ, "SINGER_HOME": str(work / "home-warm")}
    out_w = (
        subprocess.run(
            [sys.executable, "-c", code, str(song["mix"]), str(out)],
            capture_output=True,
            text=True,
            env=env_w,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    w_cold, w_other, w_rep = json.loads(out_w)
    res["in_process"] = {
        "cold_s": round(w_cold, 2),
        "other_voice_s": round(w_other, 2),
        "other_over_cold": round(w_other / w_cold, 3),
        "repeat_s": round(w_rep, 3),
    }
    if args.long:
        song10 = (
            make_song((work / "long").resolve(), 600.0, args.synthetic) if (work / "long").mkdir() is None else None
        )
        env10 = {**env, "SINGER_HOME": str(work / "home10")}
        t10, _, rss10 = cli(["cover", str(song10["mix"]), "--voice", "ayana", "--out", str(out / "long.mp3")], env10)
        res.update(long_seconds=600.0, long_cold_s=round(t10, 1), long_peak_rss_mb=round(rss10, 1))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
