#!/usr/bin/env python3
"""Two source trees of singer, back to back on one machine: the same covers through the real CLI in fresh
processes, run in turn (A B A B ...) so a drift in the machine's speed hits both. Prints ONE JSON object.

  cold          demo song, every step computed (--no-cache)
  other_voice   same song, another voice (separation cached; convert, rekey, mix, encode recomputed)
  repeat        identical repeat (every step cached)

For each: wall and CPU seconds (user + system of the child) of A and B (median of the runs) and the median of the
pairwise A/B ratios, plus the child's peak RSS and the load average when the runs began (other work on the
machine makes a wide spread; the pairwise ratio is the figure to quote).

Usage: python benchmarks/bench_ab.py --a TREE_A --b TREE_B [--runs 5]
(a tree is a checkout of this repository; its singer/ is put first on PYTHONPATH)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SONG = ROOT / "singer" / "data" / "demo" / "demo_song.mp3"
RECOMPUTE = ["--recompute", "convert", "--recompute", "rekey", "--recompute", "mix", "--recompute", "encode"]
SCENARIOS = {
    "cold": ("ayana", ["--no-cache"]),
    "other_voice": ("kenji", RECOMPUTE),
    "repeat": ("ayana", []),
}


def run(tree: Path, home: Path, voice: str, extra: list[str]) -> dict:
    """One cover in a child process: wall s, cpu s (that child only), peak RSS MB."""
    code = (
        "import resource,subprocess,sys,time;t=time.perf_counter();"
        "p=subprocess.run(sys.argv[1:],capture_output=True);w=time.perf_counter()-t;"
        "r=resource.getrusage(resource.RUSAGE_CHILDREN);"
        "print(p.returncode,w,r.ru_utime+r.ru_stime,r.ru_maxrss/1024)"
    )
    out = home / f"{voice}.wav"
    cmd = [sys.executable, "-m", "singer", "cover", str(SONG), "--voice", voice, "--key", "0", "--format", "wav"]
    cmd += ["--out", str(out), "--quiet", "--json", *extra]
    env = {**os.environ, "SINGER_HOME": str(home), "PYTHONPATH": str(tree)}
    p = subprocess.run([sys.executable, "-c", code, *cmd], capture_output=True, text=True, env=env, cwd=tree)
    rc, wall, cpu, rss = p.stdout.split()
    if rc != "0":
        raise SystemExit(f"cover failed in {tree}: {p.stderr[-400:]}")
    return {"wall_s": float(wall), "cpu_s": float(cpu), "peak_rss_mb": float(rss)}


def summary(a: list[dict], b: list[dict]) -> dict:
    out: dict = {}
    for k in ("wall_s", "cpu_s", "peak_rss_mb"):
        out[k] = {"a": round(statistics.median(x[k] for x in a), 3), "b": round(statistics.median(x[k] for x in b), 3)}
        out[k]["a_over_b"] = round(statistics.median(x[k] / y[k] for x, y in zip(a, b, strict=True)), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, type=Path, help="tree A (e.g. after a change)")
    ap.add_argument("--b", required=True, type=Path, help="tree B (e.g. before it)")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="singer-ab-"))
    homes = {"a": work / "a", "b": work / "b"}
    trees = {"a": args.a.resolve(), "b": args.b.resolve()}
    for side in ("a", "b"):  # warm each cache: separation for other_voice, everything for repeat
        homes[side].mkdir(parents=True)
        run(trees[side], homes[side], "ayana", [])
        run(trees[side], homes[side], "kenji", [])
    result: dict = {"song": SONG.name, "runs": args.runs, "a": str(args.a), "b": str(args.b), "scenarios": {}}
    for name, (voice, extra) in SCENARIOS.items():
        load = os.getloadavg()[0]
        runs: dict[str, list[dict]] = {"a": [], "b": []}
        for _ in range(args.runs):
            for side in ("a", "b"):
                runs[side].append(run(trees[side], homes[side], voice, extra))
        result["scenarios"][name] = {"load_at_start": round(load, 2), **summary(runs["a"], runs["b"])}
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
