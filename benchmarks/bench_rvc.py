"""RVC figures (issue 3), printed as JSON.

  python benchmarks/bench_rvc.py            # stage: singer vs rvc-python's Pipeline, v2 40k full size, 30 s vocals
  python benchmarks/bench_rvc.py --long     # peak RSS of the rvc engine on 10 minutes of vocals (child process)
  python benchmarks/bench_rvc.py --merge    # time to merge two full-size checkpoints (+ their indexes)

Models are random weights in the real formats and full-size architectures: RVC v2 40k (27.5 M parameters) and
HuBERT base (transformers defaults, 94 M). The reference is rvc-python 0.1.5's ``modules/vc/pipeline.py`` and
``lib/infer_pack`` loaded by file path, fed the same HuBERT through a fairseq-shaped shim, same f0 method (pm:
both sides call parselmouth identically), same index, same seed. Its output is int16; singer's float output is
compared after the same scaling, in int16 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def full_hubert(folder: Path) -> Path:
    """A full-size HuBERT base (random weights) saved as a transformers folder."""
    import torch
    from transformers import HubertConfig, HubertModel

    if not (folder / "config.json").exists():
        torch.manual_seed(0)
        HubertModel(HubertConfig()).save_pretrained(folder)
    return folder


def vocals16k(seconds: float, seed: int = 0) -> np.ndarray:
    from singer.audio import resample
    from tests.synth import make_synthetic_song

    _, vocals, _ = make_synthetic_song(seconds, sr=44100, seed=seed)
    return resample(vocals.mean(axis=0), 44100, 16000).astype(np.float64)


def make_index(path: Path, n: int = 20000, seed: int = 0) -> Path:
    from singer.engines.converters.rvc.index import build_index

    rng = np.random.default_rng(seed)
    build_index(rng.standard_normal((n, 768)).astype(np.float32)).save(path)
    return path


def stage(seconds: float, repeats: int) -> dict:
    import torch

    from singer.engines.converters.rvc import checkpoint as ck
    from singer.engines.converters.rvc.hubert import ContentEncoder
    from singer.engines.converters.rvc.index import RetrievalIndex
    from singer.engines.converters.rvc.pipeline import Converter, Settings
    from singer.engines.converters.rvc.testing import random_checkpoint
    from tests import rvc_reference
    from tests.rvckit import FairseqShim

    pipe_mod = rvc_reference.pipeline_module()
    if pipe_mod is None:
        return {"error": "rvc-python (reference) is not installed: pip install --no-deps rvc-python==0.1.5"}
    tmp = Path(tempfile.mkdtemp(prefix="bench-rvc-"))
    enc = ContentEncoder.load(full_hubert(tmp / "hubert"))
    cpt = random_checkpoint("v2", 40000, f0=True, size="full", seed=0, speakers=109)
    index_path = make_index(tmp / "voice.index")
    ref_net = rvc_reference.reference_synthesizer(cpt)
    conv = Converter(ck.from_dict(cpt).build(), enc, RetrievalIndex.load(index_path))
    cfg = SimpleNamespace(x_pad=1, x_query=6, x_center=38, x_max=41, is_half=False, device="cpu")
    ref_pipe = pipe_mod.Pipeline(40000, cfg, str(tmp))
    audio = vocals16k(seconds)
    s = Settings(f0_method="pm", index_rate=0.75, protect=0.33, rms_mix_rate=0.25, filter_radius=3, seed=0)

    def run_ref():
        torch.manual_seed(0)
        return ref_pipe.pipeline(
            FairseqShim(enc),
            ref_net,
            0,
            audio.copy(),
            "bench",
            [0, 0, 0],
            0,
            "pm",
            str(index_path),
            0.75,
            1,
            3,
            40000,
            0,
            0.25,
            "v2",
            0.33,
        )

    def run_singer():
        return conv(audio, s)

    run_singer(), run_ref()  # warm-up (allocators, first-call costs) for both
    t_ref, t_sg = [], []
    for _ in range(repeats):  # alternate so machine noise hits both
        t = time.perf_counter()
        ref_out = run_ref()
        t_ref.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = run_singer()
        t_sg.append(time.perf_counter() - t)
    peak = np.abs(out).max() / 0.99
    scaled = (out * (32768 / peak if peak > 1 else 32768)).astype(np.int16)
    diff = np.abs(scaled.astype(np.int32) - ref_out.astype(np.int32))
    ref_med, sg_med = float(np.median(t_ref)), float(np.median(t_sg))
    return {
        "figure": "rvc_stage_vs_reference",
        "model": "v2 40k full size (random weights)",
        "content": "hubert-base (random)",
        "vocals_seconds": seconds,
        "f0": "pm",
        "index_vectors": 20000,
        "repeats": repeats,
        "reference_s": [round(x, 2) for x in t_ref],
        "singer_s": [round(x, 2) for x in t_sg],
        "ratio_median": round(sg_med / ref_med, 3),
        "goal": "<= 0.8",
        "samples": int(len(out)),
        "same_length": len(out) == len(ref_out),
        "max_diff_int16_steps": int(diff.max()),
        "mean_diff_int16_steps": round(float(diff.mean()), 4),
        "peak_int16": int(np.abs(ref_out.astype(np.int32)).max()),
    }


LONG_CHILD = r"""
import sys, json, time, resource
sys.path.insert(0, {root!r})
from pathlib import Path
from singer.config import Settings
from singer.voices import VoiceStore
from singer.engines.converters.rvc.engine import RVCConverter
settings = Settings(home={home!r})
voice = VoiceStore(settings).get("bench")
conv = RVCConverter(settings)
t = time.perf_counter()
meta = conv.convert(Path({src!r}), Path({dst!r}), voice, {{"f0_method": "fcpe"}}, lambda f, m=None: None)
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0].split()[1]  # ru_maxrss keeps the parent's peak across exec
print(json.dumps({{"seconds": time.perf_counter() - t, "maxrss_mb": int(hwm) / 1024}}))
"""


def long(seconds: float) -> dict:
    from singer.audio import write_wav
    from singer.config import Settings
    from singer.engines.converters.rvc.testing import write_checkpoint
    from singer.voices import VoiceStore
    from tests.synth import make_synthetic_song

    tmp = Path(tempfile.mkdtemp(prefix="bench-rvc-long-"))
    settings = Settings(home=tmp / "home")
    full_hubert(Path(settings.models_path) / "hubert")
    pth = write_checkpoint(tmp / "bench.pth", version="v2", sr=40000, f0=True, size="full", seed=0, speakers=109)
    VoiceStore(settings).add_rvc("bench", pth, make_index(tmp / "bench.index"))
    _, vocals, _ = make_synthetic_song(seconds, sr=44100, seed=5)
    src = tmp / "vocals.wav"
    write_wav(src, vocals, 44100)
    del vocals
    code = LONG_CHILD.format(root=str(ROOT), home=str(settings.home), src=str(src), dst=str(tmp / "out.wav"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if res.returncode:
        return {"error": res.stderr[-2000:]}
    child = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        "figure": "rvc_long_peak_rss",
        "vocals_seconds": seconds,
        "model": "v2 40k full size",
        "f0": "fcpe",
        "engine_seconds": round(child["seconds"], 1),
        "realtime_factor": round(child["seconds"] / seconds, 2),
        "peak_rss_mb": round(child["maxrss_mb"], 1),
        "goal_mb": 2048,
    }


def merge() -> dict:
    from singer.config import Settings
    from singer.engines.converters.rvc.testing import write_checkpoint
    from singer.voices import VoiceStore

    tmp = Path(tempfile.mkdtemp(prefix="bench-rvc-merge-"))
    store = VoiceStore(Settings(home=tmp / "home"))
    out = {"figure": "rvc_merge_two_full_size", "goal_s": 5.0}
    for label, with_index in (("checkpoints_only", False), ("with_20k_vector_indexes", True)):
        for name, seed in (("a", 1), ("b", 2)):
            pth = write_checkpoint(tmp / f"{name}.pth", version="v2", sr=40000, size="full", seed=seed, speakers=109)
            idx = make_index(tmp / f"{name}.index", seed=seed) if with_index else None
            store.add_rvc(f"{name}{label[:4]}", pth, idx, overwrite=True)
        t = time.perf_counter()
        store.merge([f"a{label[:4]}", f"b{label[:4]}"], [0.6, 0.4], f"m{label[:4]}", overwrite=True)
        out[f"{label}_s"] = round(time.perf_counter() - t, 2)
    out["pth_mb"] = round((tmp / "a.pth").stat().st_size / 1e6, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--merge", action="store_true")
    a = ap.parse_args()
    if a.long:
        res = long(a.seconds if a.seconds != 30.0 else 600.0)
    elif a.merge:
        res = merge()
    else:
        res = stage(a.seconds, a.repeats)
    res["cpu_count"] = os.cpu_count()
    res["bench_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
