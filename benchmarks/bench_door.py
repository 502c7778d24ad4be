#!/usr/bin/env python3
"""Does the door cost anything? The HTTP benchmark (bench_http.py: status polls while the worker is busy, and a
burst of uploads) run against the service BEFORE the hardening of issue 12 and AFTER it, in one run, alternating
A B A B so drift on the machine hits both alike. Prints ONE JSON object: each run's figures and the after/before
ratios of the medians over the rounds.

"Before" is a git worktree of --before (default: the last commit before the hardening), made in a temporary folder
and removed at the end; each side runs its own copy of bench_http.py (the script did not change), so each starts
its own tree's `singer serve`.

Usage: python benchmarks/bench_door.py [--before dffeb99] [--rounds 2] [--poll-seconds 20] [--burst 30]
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


def run_http(tree: Path, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        str(tree / "benchmarks" / "bench_http.py"),
        "--phases",
        "polling,burst",
        "--poll-seconds",
        str(args.poll_seconds),
        "--idle-seconds",
        str(args.idle_seconds),
        "--burst",
        str(args.burst),
        "--long-seconds",
        "280",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGER_")}
    env["PYTHONPATH"] = str(tree)
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench_http in {tree} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def figures(res: dict) -> dict:
    poll, burst = res["polling"], res["burst"]
    return {
        "idle_p99_ms": poll["idle"]["latency_ms"]["p99"],
        "busy_p50_ms": poll["latency_ms"]["p50"],
        "busy_p99_ms": poll["latency_ms"]["p99"],
        "poll_errors": poll["errors"],
        "burst_202": burst["accepted_202"],
        "burst_429": burst["refused_429"],
        "burst_lost": burst["lost"],
        "burst_done": burst["done"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", default="dffeb99", help="commit of the service before the hardening")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--poll-seconds", type=float, default=20.0)
    ap.add_argument("--idle-seconds", type=float, default=8.0)
    ap.add_argument("--burst", type=int, default=30)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="singer-bench-door-"))
    before = work / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
        check=True,
        capture_output=True,
    )
    runs: dict[str, list[dict]] = {"before": [], "after": []}
    raw: dict[str, list[dict]] = {"before": [], "after": []}
    t0 = time.time()
    try:
        for _ in range(args.rounds):
            for side, tree in (("before", before), ("after", ROOT)):
                res = run_http(tree, args)
                raw[side].append(res)
                runs[side].append(figures(res))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)
    med = {
        side: {k: statistics.median([r[k] for r in rs if isinstance(r.get(k), (int, float))] or [0]) for k in rs[0]}
        for side, rs in runs.items()
    }
    ratio = {
        k: round(med["after"][k] / med["before"][k], 3)
        for k in ("idle_p99_ms", "busy_p50_ms", "busy_p99_ms")
        if med["before"][k]
    }
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    print(
        json.dumps(
            {
                "benchmark": "door",
                "before": args.before,
                "after": commit,
                "rounds": args.rounds,
                "order": "before, after, before, after, ...",
                "seconds": round(time.time() - t0, 1),
                "runs": runs,
                "median": med,
                "ratio_after_to_before": ratio,
                "settings": {
                    "poll_seconds": args.poll_seconds,
                    "idle_seconds": args.idle_seconds,
                    "burst": args.burst,
                    "rate": 200,
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
