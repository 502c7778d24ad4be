"""RVC figures (issue 3), printed as JSON.

  python benchmarks/bench_rvc.py            # stage: singer vs rvc-python's Pipeline, v2 40k full size, 30 s vocals
  python benchmarks/bench_rvc.py --long     # peak RSS of the rvc engine on 10 minutes of vocals (child process)
  python benchmarks/bench_rvc.py --merge    # time to merge two full-size checkpoints (+ their indexes)
  python benchmarks/bench_rvc.py --speed --repeats 3   # issue 17: RTF + quality per precision, second voice, reference
  python benchmarks/bench_rvc.py --service  # issue 17: warm service, 10 s voice note through a full-size voice

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


def _median_run(fn, repeats: int) -> tuple[float, float, object]:
    """(median wall s, median process CPU s, last result) over ``repeats`` calls."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return float(np.median(walls)), float(np.median(cpus)), out


def speed(seconds: float, repeats: int, with_reference: bool = True) -> dict:
    """Issue 17: RTF per precision (fp32, bf16, int8 content, auto), quality of each against fp32, the second voice on
    cached features, and fp32 against the reference pipeline, all in one process, medians of ``repeats``."""
    import torch

    from singer.engines.converters.rvc import checkpoint as ck
    from singer.engines.converters.rvc import precision as prec
    from singer.engines.converters.rvc.features import Features
    from singer.engines.converters.rvc.hubert import ContentEncoder
    from singer.engines.converters.rvc.index import RetrievalIndex
    from singer.engines.converters.rvc.pipeline import Converter, Settings
    from singer.engines.converters.rvc.quality import THRESHOLDS, compare
    from singer.engines.converters.rvc.testing import random_checkpoint

    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-rvc-speed-"))
    enc = ContentEncoder.load(full_hubert(tmp / "hubert"))
    index = RetrievalIndex.load(make_index(tmp / "voice.index"))
    nets = [ck.from_dict(random_checkpoint("v2", 40000, size="full", seed=i, speakers=109)).build() for i in (0, 1)]
    convs = [Converter(net, enc, index) for net in nets]
    audio = vocals16k(seconds)
    s = Settings(f0_method="pm", index_rate=0.75, protect=0.33, rms_mix_rate=0.25, filter_radius=3, seed=0)

    def set_path(content: str, decoder: str) -> None:
        for c in convs:
            c.content_precision = content
            c.net.dec.compute_dtype = torch.bfloat16 if decoder == "bf16" else torch.float32

    convs[0](audio[: 16000 * 3], s)  # warm-up
    out: dict = {"figure": "rvc_speed_issue17", "vocals_seconds": seconds, "repeats": repeats, "f0": "pm"}
    flags = prec.cpu_flags()
    out["cpu"] = {
        "isa": prec.instruction_set(flags),
        "native_bf16": prec.native_bf16(flags),
        "threads": torch.get_num_threads(),
    }
    paths = {"fp32": ("fp32", "fp32"), "bf16": ("bf16", "bf16"), "int8_content": ("int8", "fp32")}
    auto = prec.resolve("auto")
    out["auto_is"] = next((n for n, p in paths.items() if p == (auto.content, auto.decoder)), "auto")
    if out["auto_is"] == "auto":  # a path of its own only when it is none of the above
        paths["auto"] = (auto.content, auto.decoder)
    for content, decoder in paths.values():  # warm-up of every path (bf16 weight copies, the int8 model)
        set_path(content, decoder)
        for c in convs:
            c(audio[: 16000 * 3], s)
    runs: dict[str, dict[str, list]] = {name: {"wall": [], "cpu": [], "w2": [], "c2": []} for name in paths}
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):  # paths interleaved, so a change of machine load hits them alike
        for name, (content, decoder) in paths.items():
            set_path(content, decoder)
            wall, cpu, outputs[name] = _median_run(lambda: convs[0](audio, s), 1)
            fe_path = tmp / f"features-{name}.npz"
            convs[0].features(audio, s).save(fe_path)
            w2, c2, _ = _median_run(lambda fe=fe_path: convs[1].synthesize(Features.load(fe), s), 1)
            for k, v in (("wall", wall), ("cpu", cpu), ("w2", w2), ("c2", c2)):
                runs[name][k].append(v)
    set_path("fp32", "fp32")
    _, _, seed1 = _median_run(lambda: convs[0](audio, Settings(**{**s.__dict__, "seed": 1})), 1)
    out["fp32_other_seed_vs_fp32"] = compare(outputs["fp32"], seed1, 40000)
    for name, (content, decoder) in paths.items():
        wall, cpu, w2, c2 = (float(np.median(runs[name][k])) for k in ("wall", "cpu", "w2", "c2"))
        row = {"content": content, "decoder": decoder, "seconds": round(wall, 2), "rtf": round(wall / seconds, 3)}
        row |= {
            "all_seconds": [round(x, 2) for x in runs[name]["wall"]],
            "cpu_seconds": round(cpu, 2),
            "rtf_cpu_bound": round(cpu / torch.get_num_threads() / seconds, 3),  # if the cores were ours alone
            "second_voice_seconds": round(w2, 2),
            "second_voice_ratio": round(w2 / wall, 3),
            "second_voice_cpu_ratio": round(c2 / cpu, 3),
        }
        if name != "fp32":
            row["quality_vs_fp32"] = compare(outputs["fp32"], outputs[name], 40000)
        out[name] = row
    ref_out = outputs["fp32"]
    out["auto_path"] = auto.to_dict()
    out["thresholds"] = THRESHOLDS
    if with_reference:
        set_path("fp32", "fp32")
        ref = stage_reference(audio, enc, tmp / "voice.index", repeats)
        if "error" not in ref:
            ref_out_i16 = ref.pop("output")
            peak = np.abs(ref_out).max() / 0.99
            scaled = (ref_out * (32768 / peak if peak > 1 else 32768)).astype(np.int16)
            ref["max_diff_int16_steps_fp32"] = int(np.abs(scaled.astype(np.int32) - ref_out_i16.astype(np.int32)).max())
            ref["fp32_over_reference"] = round(out["fp32"]["seconds"] / ref["seconds"], 3)
        out["reference"] = ref
    out["loadavg_start"], out["loadavg_end"] = [round(x, 2) for x in load0], [round(x, 2) for x in os.getloadavg()]
    return out


def stage_reference(audio: np.ndarray, enc, index_path: Path, repeats: int) -> dict:
    """rvc-python's pipeline on the same input, content model, index and seed (v2 40k seed 0, pm)."""
    import torch

    from singer.engines.converters.rvc.testing import random_checkpoint
    from tests import rvc_reference
    from tests.rvckit import FairseqShim

    pipe_mod = rvc_reference.pipeline_module()
    if pipe_mod is None:
        return {"error": "rvc-python (reference) is not installed: pip install --no-deps rvc-python==0.1.5"}
    ref_net = rvc_reference.reference_synthesizer(random_checkpoint("v2", 40000, size="full", seed=0, speakers=109))
    cfg = SimpleNamespace(x_pad=1, x_query=6, x_center=38, x_max=41, is_half=False, device="cpu")
    pipe = pipe_mod.Pipeline(40000, cfg, str(index_path.parent))
    args = (0, "bench", [0, 0, 0], 0, "pm", str(index_path), 0.75, 1, 3, 40000, 0, 0.25, "v2", 0.33)

    def run():
        torch.manual_seed(0)
        return pipe.pipeline(FairseqShim(enc), ref_net, args[0], audio.copy(), *args[1:])

    wall, cpu, y = _median_run(run, repeats)
    return {
        "seconds": round(wall, 2),
        "cpu_seconds": round(cpu, 2),
        "rtf": round(wall / (len(audio) / 16000), 3),
        "output": y,
    }


def service(seconds: float) -> dict:
    """A warm service (FastAPI app, embedded worker, full-size v2 40k voice): a voice note submitted to result."""
    from fastapi.testclient import TestClient

    from singer.audio import write_wav
    from singer.config import Settings
    from singer.engines.converters.rvc.testing import write_checkpoint
    from singer.http.app import create_app
    from singer.voices import VoiceStore
    from tests.synth import make_synthetic_song

    tmp = Path(tempfile.mkdtemp(prefix="bench-rvc-service-"))
    settings = Settings(home=tmp / "home", api_keys="k", rate_limit=1000)
    full_hubert(Path(settings.models_path) / "hubert")
    for i, name in enumerate(("bench", "bench2")):
        pth = write_checkpoint(tmp / f"{name}.pth", version="v2", sr=40000, f0=True, size="full", seed=i, speakers=109)
        VoiceStore(settings).add_rvc(name, pth, make_index(tmp / f"{name}.index", seed=i), vocal_range="A3-E5")
    notes = []
    for seed in range(4):
        _, vocals, _ = make_synthetic_song(seconds, sr=44100, seed=10 + seed)
        notes.append(tmp / f"note{seed}.wav")
        write_wav(notes[-1], vocals.mean(axis=0, keepdims=True), 44100)
    out: dict = {"figure": "rvc_service_voice_note", "note_seconds": seconds, "load_start": os.getloadavg()}
    with TestClient(create_app(settings)) as client:

        def submit(note: Path, voice: str) -> tuple[float, dict]:
            t = time.perf_counter()
            with open(note, "rb") as f:
                r = client.post(
                    "/v1/conversions",
                    files={"file": (note.name, f, "audio/wav")},
                    data={"voice": voice},
                    headers={"X-API-Key": "k"},
                )
            job_id = r.json()["job_id"]
            while True:
                job = client.get(f"/v1/jobs/{job_id}", headers={"X-API-Key": "k"}).json()
                if job["state"] in ("done", "failed"):
                    return time.perf_counter() - t, job
                time.sleep(0.05)

        out["cold_s"], _ = submit(notes[0], "bench")
        warm = [submit(n, "bench") for n in notes[1:]]
        out["warm_s"] = [round(w, 2) for w, _ in warm]
        out["warm_median_s"] = round(float(np.median([w for w, _ in warm])), 2)
        out["warm_cost"] = warm[-1][1].get("result", {}).get("cost")
        second, job = submit(notes[3], "bench2")  # same note, another voice: features cached
        out["same_note_other_voice_s"], out["other_voice_cost"] = round(second, 2), job.get("result", {}).get("cost")
        out["metrics_path"] = [
            ln for ln in client.get("/metrics", headers={"X-API-Key": "k"}).text.splitlines() if "engine_path" in ln
        ]
    out["cold_s"] = round(out["cold_s"], 2)
    out["goal_s"], out["load_end"] = 3.0, os.getloadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--long", action="store_true")
    ap.add_argument("--merge", action="store_true")
    ap.add_argument("--speed", action="store_true", help="issue 17: RTF and quality per precision, second voice")
    ap.add_argument("--no-reference", action="store_true", help="--speed without the rvc-python run")
    ap.add_argument("--service", action="store_true", help="warm service: a 10 s voice note, submit to result")
    a = ap.parse_args()
    if a.speed:
        res = speed(a.seconds, a.repeats, not a.no_reference)
    elif a.service:
        res = service(a.seconds if a.seconds != 30.0 else 10.0)
    elif a.long:
        res = long(a.seconds if a.seconds != 30.0 else 600.0)
    elif a.merge:
        res = merge()
    else:
        res = stage(a.seconds, a.repeats)
    res["cpu_count"] = os.cpu_count()
    res["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    res["bench_maxrss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
