#!/usr/bin/env python3
"""Batch figures: `singer batch` over generated voice notes, through the real CLI in fresh processes. One JSON object.

  notes          --notes generated voice notes, 5-20 s each (the pure-numpy singer of tests/synth.py), in mixed
                 formats (wav, ogg/opus, mp3, m4a), in two sub-folders
  workers_1_s    the whole folder with --workers 1, empty cache
  workers_2_s    the same with --workers 2 (another empty cache)     goal: throughput >= 1.7x one worker
  rerun_s        the --workers 2 batch again (every output current)   goal <= 3 s
  peak_rss_mb    peak of the summed RSS of the batch's process tree (sampled every 0.1 s from /proc), for the
                 first --small notes and for all of them
  rss_p95_*      95th percentile of those samples in the first and the last quarter of the 200-note run
                                                                        goal: flat (not growing with the count)
  --one-core     also one worker held to one core (SINGER_THREADS=1): the ratio where a worker is one core
  cpu_s          CPU seconds of the batch's whole process tree (workers and ffmpeg included); cores_busy =
                 cpu_s / seconds

Usage: python benchmarks/bench_batch.py [--notes 200] [--small 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = ("wav", "ogg", "mp3", "m4a")


def make_notes(folder: Path, n: int, seed: int) -> float:
    """``n`` notes of 5-20 s; returns their total duration in seconds."""
    import numpy as np

    from singer.audio import encode, write_wav
    from tests.synth import make_synthetic_song

    rng = np.random.default_rng(seed)
    total = 0.0
    for i in range(n):
        seconds = float(rng.uniform(5, 20))
        _, vocals, _ = make_synthetic_song(seconds, sr=44100, seed=seed * 1000 + i)
        wav = folder / f".tmp{i}.wav"
        write_wav(wav, vocals.mean(0, keepdims=True), 44100)
        fmt = FORMATS[i % len(FORMATS)]
        dst = folder / f"group{i % 2}" / f"note{i:03d}.{fmt}"
        dst.parent.mkdir(parents=True, exist_ok=True)
        encode(wav, dst, fmt)
        wav.unlink()
        total += seconds
    return total


def _tree_rss_mb(pid: int) -> float:
    """Summed RSS of ``pid`` and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            parents[int(d)] = int(stat[1])
            rss[int(d)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier += kids
    return sum(rss.get(p, 0) for p in tree) / 1e6


def run_batch(folder: Path, out: Path, home: Path, workers: int, threads: int = 0) -> dict:
    env = {**os.environ, "SINGER_HOME": str(home), "PYTHONPATH": str(ROOT), "SINGER_THREADS": str(threads)}
    cmd = [
        sys.executable,
        "-m",
        "singer",
        "batch",
        str(folder),
        "--voice",
        "ayana",
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--json",
    ]
    t0 = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    samples: list[float] = []

    def sample():
        while proc.poll() is None:
            samples.append(_tree_rss_mb(proc.pid))
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    stdout, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the batch, its workers and their ffmpeg runs
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    t.join()
    res = json.loads(stdout.strip().splitlines()[-1])
    quarter = max(1, len(samples) // 4)
    return {
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 1),
        "cores_busy": round(cpu / seconds, 2),
        "peak_rss_mb": round(max(samples, default=0.0), 1),
        # RSS early and late in the same run (95th percentile of the 0.1 s samples in the first and the last
        # quarter of its time): a leak shows as growth here, a one-off coincidence of peaks does not
        "rss_p95_first_quarter_mb": round(float(np.percentile(samples[:quarter], 95)), 1) if samples else 0.0,
        "rss_p95_last_quarter_mb": round(float(np.percentile(samples[-quarter:], 95)), 1) if samples else 0.0,
        "exit_code": proc.returncode,
        **{k: res.get(k) for k in ("files", "done", "skipped", "failed")},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=200)
    ap.add_argument("--small", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--one-core", action="store_true", help="also run one worker held to one core (SINGER_THREADS=1)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="singer-bench-batch-") as tmp:
        tmp = Path(tmp)
        notes, small = tmp / "notes", tmp / "small"
        t0 = time.perf_counter()
        notes.mkdir()
        total = make_notes(notes, args.notes, args.seed)
        setup = time.perf_counter() - t0
        small.mkdir()
        for p in sorted(notes.rglob("*.*"))[: args.small]:
            (small / p.parent.name).mkdir(exist_ok=True)
            os.link(p, small / p.parent.name / p.name)
        one = run_batch(notes, tmp / "out1", tmp / "home1", 1)
        two = run_batch(notes, tmp / "out2", tmp / "home2", 2)
        rerun = run_batch(notes, tmp / "out2", tmp / "home2", 2)
        few = run_batch(small, tmp / "out3", tmp / "home3", 2)
        one_core = run_batch(notes, tmp / "out4", tmp / "home4", 1, threads=1) if args.one_core else None
    ratio = one["seconds"] / two["seconds"]
    print(
        json.dumps(
            {
                "figure": "batch",
                "notes": args.notes,
                "audio_seconds": round(total, 1),
                "setup_s": round(setup, 1),
                "cpu_count": os.cpu_count(),
                "workers_1": one,
                "workers_2": two,
                "rerun": rerun,
                f"first_{args.small}": few,
                "throughput_ratio_2_vs_1": round(ratio, 3),
                **(
                    {
                        "workers_1_one_core": one_core,
                        "throughput_ratio_2_vs_1_one_core": round(one_core["seconds"] / two["seconds"], 3),
                    }
                    if one_core
                    else {}
                ),
                "peak_rss_growth": round(two["peak_rss_mb"] / max(few["peak_rss_mb"], 1e-9), 3),
                "rss_growth_within_run": round(
                    two["rss_p95_last_quarter_mb"] / max(two["rss_p95_first_quarter_mb"], 1e-9), 3
                ),
                "goals": {"throughput_ratio_2_vs_1": ">= 1.7", "rerun_s": "<= 3", "peak_rss": "flat"},
                "meets": {
                    "throughput": ratio >= 1.7,
                    "rerun": rerun["seconds"] <= 3.0,
                    "flat_rss": two["rss_p95_last_quarter_mb"] <= 1.15 * two["rss_p95_first_quarter_mb"],
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
