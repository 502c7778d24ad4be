#!/usr/bin/env python3
"""Memory of decoding a file whose header lies about its length, against an honest file of the limit's length.
Prints ONE JSON object.

Files (8 kbps mono MP3, as an attacker would send: small on the wire, long when decoded):
  honest   exactly --limit seconds
  liar     --liar-seconds of audio whose Xing header claims 25 frames (1.8 s)
Each decode runs in a fresh process (`singer.audio.decode(path, 44100, 2, max_duration=limit)`, what the source
step does with an upload) and reports its peak RSS (ru_maxrss), the RSS of the same process before decoding
(imports only), seconds, and what happened (samples or the error). The goal of issue 12: the liar's peak within
1.2x of the honest file's. With --before COMMIT the liar is also decoded by that commit's code (a temporary git
worktree), for context.

Usage: python benchmarks/bench_decode_limits.py [--limit 300] [--liar-seconds 1800] [--before dffeb99]
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

CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from singer import audio
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
try:
    x = audio.decode(sys.argv[2], 44100, 2, max_duration=float(sys.argv[3]))
    outcome = {"decoded_s": round(x.shape[1] / 44100, 2)}
except Exception as e:
    outcome = {"error": type(e).__name__, "message": str(e)[:160]}
print(json.dumps({"rss_before_mb": round(rss0, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "seconds": round(time.perf_counter() - t0, 2), **outcome}))
"""


def decode_in_child(tree: Path, path: Path, limit: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SINGER_")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(path), str(limit)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree,
    )
    if out.returncode != 0:
        return {"crashed": out.returncode, "stderr": out.stderr[-300:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from tests import media

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=float, default=300.0, help="the decode limit (SINGER_MAX_UPLOAD_DURATION)")
    ap.add_argument("--liar-seconds", type=float, default=1800.0)
    ap.add_argument("--before", default="", help="also decode the liar with this commit's code")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (median reported)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="singer-bench-decode-"))
    honest = work / "honest.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"sine=f=300:d={args.limit}",
            "-ac",
            "1",
            "-ar",
            "8000",
            "-b:a",
            "8k",
            str(honest),
        ],
        check=True,
    )
    liar = media.lying_mp3(work / "liar.mp3", seconds=args.liar_seconds)
    cases = {"honest": (ROOT, honest), "liar": (ROOT, liar)}
    before = None
    if args.before:
        before = work / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before), args.before],
            check=True,
            capture_output=True,
        )
        cases["liar_before"] = (before, liar)
    results: dict[str, list[dict]] = {k: [] for k in cases}
    try:
        for _ in range(args.repeat):
            for name, (tree, path) in cases.items():
                results[name].append(decode_in_child(tree, path, args.limit))
    finally:
        if before is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], capture_output=True)

    def median_peak(name: str) -> float:
        peaks = sorted(r.get("peak_rss_mb", 0.0) for r in results[name])
        return peaks[len(peaks) // 2]

    report = {
        "benchmark": "decode_limits",
        "limit_s": args.limit,
        "liar_actual_s": args.liar_seconds,
        "liar_header_claims_s": 1.8,
        "file_bytes": {"honest": honest.stat().st_size, "liar": liar.stat().st_size},
        "runs": results,
        "median_peak_rss_mb": {k: median_peak(k) for k in cases},
        "liar_to_honest_peak_ratio": round(median_peak("liar") / median_peak("honest"), 3),
        "goal": "liar_to_honest_peak_ratio <= 1.2",
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
