#!/usr/bin/env python3
"""Adding a voice from the wild: time and memory. Prints ONE JSON object.

* time to add a full-size RVC v2 40k voice (~55 MB .pth, random weights in the real format) from a loopback URL and
  from a local zip, against a plain copy of the same bytes (``shutil.copyfile``, what ``cp`` does): the ratios say
  what downloading, hashing, unzipping and checking the checkpoint cost on top of moving the bytes;
* peak RSS of the fetch stage (download with sha256 + zip extraction + picking the files) at two sizes, a 55 MB zip
  and a ~220 MB one (the same voice plus 165 MB of other files): flat when nothing is buffered whole;
* peak RSS (VmHWM, reset after the imports) of the whole add (which loads the checkpoint's weights to check them: that part grows with the model).

Each measured add runs in a child process of its own (its peak RSS is its own). Nothing leaves the machine.

Usage: python benchmarks/bench_voices.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {root!r})
mode, source, home, allow = sys.argv[1:5]
os.environ["SINGER_HOME"] = home
import torch  # imported before the clock starts, as in a warm CLI or service
from singer.config import Settings
from singer.api import Singer
from singer.voicesources import gathered
def status(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field + ":")) / 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # Linux: reset the peak RSS (VmHWM) to the current RSS, so import-time peaks do not hide ours
base = status("VmRSS")
s = Settings(home=home, url_allow=allow, network_timeout=30)
t0 = time.perf_counter()
if mode == "fetch":
    with gathered(s, "v", source) as got:
        pass
else:
    Singer(s).add_voice("v", source)
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "base_rss_mb": base, "peak_rss_mb": status("VmHWM")}}))
"""


def child(mode: str, source: str, home: Path, allow: str) -> dict:
    shutil.rmtree(home, ignore_errors=True)
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(root=str(ROOT)), mode, source, str(home), allow],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import torch

    from singer.engines.converters.rvc.testing import random_checkpoint
    from tests.voicehost import VoiceHost

    work = Path(tempfile.mkdtemp(prefix="bench-voices-"))
    try:
        pth = work / "voice.pth"
        torch.save(random_checkpoint("v2", 40000, size="full", seed=0), pth)
        size = pth.stat().st_size
        small = work / "voice.zip"
        with zipfile.ZipFile(small, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(pth, "voice/voice.pth")
        big = work / "big.zip"
        with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as z:
            z.write(pth, "voice/voice.pth")
            for i in range(3):  # other files a zip may carry (stored: they unpack at full size)
                z.writestr(f"voice/extra/take{i}.wav", os.urandom(55 * 1024**2))
        home = work / "home"
        cp, url, zipped = [], [], []
        with VoiceHost({"/v/x/voice.pth": pth, "/v/x/voice.zip": small, "/v/x/big.zip": big}) as host:
            allow = f"127.0.0.1:{host.port}"
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                shutil.copyfile(pth, work / "copy.pth")
                os.sync()
                cp.append(time.perf_counter() - t0)
                (work / "copy.pth").unlink()
                url.append(child("add", f"{host.base}/v/x/voice.pth", home, allow))
                zipped.append(child("add", str(small), home, allow))
            fetch_small = child("fetch", f"{host.base}/v/x/voice.zip", home, allow)
            fetch_big = child("fetch", f"{host.base}/v/x/big.zip", home, allow)
        med = statistics.median
        t_cp = med(cp)
        t_url = med(r["seconds"] for r in url)
        t_zip = med(r["seconds"] for r in zipped)
        print(
            json.dumps(
                {
                    "voice_mb": round(size / 1e6, 1),
                    "rounds": args.rounds,
                    "copy_s": round(t_cp, 3),
                    "add_from_url_s": round(t_url, 3),
                    "add_from_zip_s": round(t_zip, 3),
                    "url_vs_copy": round(t_url / t_cp, 1),
                    "zip_vs_copy": round(t_zip / t_cp, 1),
                    "rss_after_imports_mb": round(url[0]["base_rss_mb"], 1),
                    "add_from_url_peak_rss_mb": round(max(r["peak_rss_mb"] for r in url), 1),
                    "add_from_zip_peak_rss_mb": round(max(r["peak_rss_mb"] for r in zipped), 1),
                    "fetch_peak_rss_mb": {
                        f"{small.stat().st_size / 1e6:.0f}MB_zip": round(fetch_small["peak_rss_mb"], 1),
                        f"{big.stat().st_size / 1e6:.0f}MB_zip": round(fetch_big["peak_rss_mb"], 1),
                    },
                    "fetch_rss_growth_mb": {
                        f"{small.stat().st_size / 1e6:.0f}MB_zip": round(
                            fetch_small["peak_rss_mb"] - fetch_small["base_rss_mb"], 1
                        ),
                        f"{big.stat().st_size / 1e6:.0f}MB_zip": round(
                            fetch_big["peak_rss_mb"] - fetch_big["base_rss_mb"], 1
                        ),
                    },
                    "fetch_s": {"small": round(fetch_small["seconds"], 3), "big": round(fetch_big["seconds"], 3)},
                    "cpu": os.cpu_count(),
                    "note": "add = download/unzip + sha256 + checkpoint check (weights loaded) + copy into the store",
                }
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
