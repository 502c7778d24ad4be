#!/usr/bin/env python3
"""UVR separation figures: singer's ``uvr`` stage against audio-separator called directly, same model, same song.

    python benchmarks/bench_uvr.py [--seconds 600] [--repeat 2] [--workdir DIR]
    python benchmarks/bench_uvr.py --quick          # 20 s song, one repeat: a smoke test

Goals (issue "UVR separation through audio-separator"): singer's stage time <= 1.05x audio-separator's, and
singer's peak RSS <= 1.2x audio-separator's, on a 10-minute song.

The model is an MDX-Net ONNX file with random (seeded) weights in the real format: input ``"input"``
``[batch, 4, dim_f, dim_t]`` (audio-separator's STFT layout: L re, L im, R re, R im), output of the same shape,
with UVR's parameters of its common vocal models (UVR-MDX-NET-Voc_FT / Inst: n_fft 6144, dim_f 2048, dim_t 2**8,
compensate 1.035, primary stem "Vocals"). The network is a small U-Net (4 -> 32 -> 64 -> 128 channels, stride-2
convolutions down, transposed convolutions up, skip connections) whose sigmoid mask multiplies the input. One
256-frame segment takes ~0.6-0.7 s in ONNX Runtime on two cores (~1 s per chunk with audio-separator's STFTs), so
a 10-minute song (137 chunks) separates in 2-3 minutes, as real MDX models take minutes. ONNX Runtime's working
memory for the full-resolution convolutions is ~1.1 GB whatever the song's length (real MDX nets also need
hundreds of MB); the file is 0.9 MB where real ones are 30-67 MB, which leaves both sides' RSS that much lower.
The model folder holds what audio-separator reads there: ``mdx_model_data.json`` keyed by its hash of the file
(MD5 of the file, or of its last 10,240,000 bytes), ``vr_model_data.json`` and ``download_checks.json`` (every
list ``Separator.list_supported_model_files`` indexes; the model in ``mdx_download_list``). No network is used.

The song is a 44.1 kHz stereo float WAV from ``benchmarks/songgen.py`` (Festival + FluidSynth).

Each measurement is a fresh child process (``--child MODE``) that prints JSON: load seconds (imports, Separator,
model), separate seconds (the model already loaded), peak RSS after loading and at the end (VmHWM from
/proc/self/status; ru_maxrss would carry this parent's peak across exec), and the output stems' frame counts.

* ``direct``: what a user of audio-separator 0.47.1 does: ``Separator(model_file_dir=..., output_dir=...,
  output_format="WAV", use_soundfile=True, sample_rate=44100, mdx_params={hop_length 1024, segment_size 256,
  overlap 0.25, batch_size 1, enable_denoise False})``, ``load_model(file)``, ``separate(song)``. One addition:
  ``mdx_separator`` imports onnx2torch at module top, and onnx2torch cannot import here (it needs torchvision, see
  ``singer/engines/separators/uvr/compat.py``), so singer's onnx2torch stand-in module is put in ``sys.modules``
  first. Only that: audio-separator keeps its own logging and tqdm bars (singer's ``uvr_compat.prepare()`` would
  also swap those). With segment_size == dim_t the stand-in is never called: the model runs in ONNX Runtime.
* ``singer``: the engine, ``UVRSeparator(Settings(home=fresh, models_dir=..., uvr_model=file))`` made by
  ``registry.create`` (as the workflow's engine pool does); the model is loaded first through the engine's own (private) ``_separator`` so that ``separate`` is timed warm, like direct.
* ``step``: the workflow step, ``singer.workflow.ops.get("separate")``: bind + run with the engine warm in the
  context's pool (run adds loudness metering of both stems and the mixture). The runner's input hashing and cache
  store are not part of it.

Runs alternate (direct, singer, step, direct, ...) ``--repeat`` times so machine drift hits all three; medians
and ratios are reported with the raw runs. Every run's vocal stem is compared with the first direct run's
(``max_abs_diff_vocals``, equal frame counts).

Prints one JSON object: seconds, input_frames, model, median (load_s, separate_s, peak_rss_mb per mode),
time_ratio (singer engine separate / direct separate), step_time_ratio, rss_ratio (singer engine peak / direct
peak), step_rss_ratio, goals, meets, max_abs_diff_vocals, all_same_length_as_input, runs (each run's JSON plus its
process wall time and the 1-minute load average before and after: other work on the machine skews timings).

A 10-minute song with ``--repeat 2`` takes ~20 minutes on the project's 2-core box (six separations of 2-3
minutes, plus ~1.5 minutes to generate the song) and needs ~1.5 GB of disk in the work folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

MODEL_FILE = "Bench_MDX_Vocals_random.onnx"
MODEL_DATA = {
    "compensate": 1.035,
    "mdx_dim_f_set": 2048,
    "mdx_dim_t_set": 8,
    "mdx_n_fft_scale_set": 6144,
    "primary_stem": "Vocals",
}
MDX_PARAMS = {"hop_length": 1024, "segment_size": 256, "overlap": 0.25, "batch_size": 1, "enable_denoise": False}
WIDTHS = (32, 64, 128)
HASH_TAIL = 10000 * 1024  # audio-separator hashes the last 10,240,000 bytes of larger files
LIST_KEYS = (
    "vr_download_list",
    "mdx_download_list",
    "mdx_download_vip_list",
    "demucs_download_list",
    "mdx23c_download_list",
    "mdx23c_download_vip_list",
    "roformer_download_list",
)
MODES = ("direct", "singer", "step")
GOALS = {"time_ratio": 1.05, "rss_ratio": 1.2}


# ------------------------------------------------------------------------------------------------------ the model


def mask_unet(widths: tuple[int, ...] = WIDTHS):
    """A U-Net over (freq, time) whose sigmoid mask multiplies the input spectrogram."""
    import torch
    from torch import nn

    def conv(c_in: int, c_out: int, **kw) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, **kw), nn.ReLU())

    class MaskUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = conv(4, widths[0])
            self.down = nn.ModuleList(conv(a, b, stride=2) for a, b in zip(widths, widths[1:]))
            self.up = nn.ModuleList(nn.ConvTranspose2d(b, a, 2, stride=2) for a, b in zip(widths, widths[1:]))
            self.fuse = nn.ModuleList(conv(2 * a, a) for a in widths[:-1])
            self.head = nn.Conv2d(widths[0], 4, 1)

        def forward(self, x):
            h = self.stem(x)
            skips = []
            for down in self.down:
                skips.append(h)
                h = down(h)
            for up, fuse, skip in zip(reversed(self.up), reversed(self.fuse), reversed(skips)):
                h = fuse(torch.cat([up(h), skip], dim=1))
            return x * torch.sigmoid(self.head(h))

    return MaskUNet()


def export_model(path: Path, seed: int = 0) -> None:
    import torch

    dim_f, dim_t = MODEL_DATA["mdx_dim_f_set"], 2 ** MODEL_DATA["mdx_dim_t_set"]
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.manual_seed(seed)
        net = mask_unet().eval()
        example = torch.zeros(1, 4, dim_f, dim_t)
        torch.onnx.export(
            net,
            (example,),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
        )


def model_hash(path: Path) -> str:
    """The key audio-separator looks a model up by: MD5 of the file, or of its last HASH_TAIL bytes."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - HASH_TAIL))
        return hashlib.md5(f.read()).hexdigest()


def write_model_folder(folder: Path, seed: int = 0) -> Path:
    """The model plus the three JSON files audio-separator reads from its model folder."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / MODEL_FILE
    export_model(model, seed)
    checks = {key: {} for key in LIST_KEYS}
    checks["mdx_download_list"] = {"MDX-Net Model: Bench Vocals (random weights)": MODEL_FILE}
    (folder / "mdx_model_data.json").write_text(json.dumps({model_hash(model): MODEL_DATA}, indent=1))
    (folder / "vr_model_data.json").write_text("{}")
    (folder / "download_checks.json").write_text(json.dumps(checks, indent=1))
    return model


# ------------------------------------------------------------------------------------------------------- the song


def make_song(folder: Path, seconds: float, seed: int = 0) -> Path:
    from songgen import make_song as songgen

    return Path(songgen(folder, seconds=seconds, seed=seed, write_extras=False)["mix"])


# ---------------------------------------------------------------------------------------------- child processes


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def install_onnx2torch_standin() -> None:
    """Singer's stand-in under the name onnx2torch when the real one cannot import (nothing else of prepare())."""
    try:
        import onnx2torch  # noqa: F401
    except Exception as e:  # ImportError without torchvision, RuntimeError with a CUDA-only torchvision
        from singer.engines.separators.uvr import compat as uvr_compat

        for name in [m for m in sys.modules if m.split(".")[0] in ("onnx2torch", "torchvision")]:
            del sys.modules[name]
        sys.modules["onnx2torch"] = uvr_compat._onnx2torch_standin(e)


def run_direct(models: Path, song: Path, out: Path, home: Path, loaded: Callable[[], None]) -> dict[str, Path]:
    install_onnx2torch_standin()
    from audio_separator.separator import Separator

    sep = Separator(
        model_file_dir=str(models / "uvr"),
        output_dir=str(out),
        output_format="WAV",
        use_soundfile=True,
        sample_rate=44100,
        mdx_params=dict(MDX_PARAMS),
    )
    sep.load_model(MODEL_FILE)
    loaded()
    sep.separate(str(song))
    return {"vocals": _one(out, "*(Vocals)*.wav"), "instrumental": _one(out, "*(Instrumental)*.wav")}


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one {pattern} in {folder}, found {[p.name for p in found]}")
    return found[0]


def _settings(models: Path, home: Path):
    from singer.config import Settings

    return Settings(home=home, cache_dir=home / "cache", models_dir=models, uvr_model=MODEL_FILE)


def run_singer(models: Path, song: Path, out: Path, home: Path, loaded: Callable[[], None]) -> dict[str, Path]:
    from singer.engines import registry
    from singer.engines.separators.uvr import catalog as uvr_catalog

    settings = _settings(models, home)
    sep = registry.create("separator", "uvr", settings)
    sep._separator(uvr_catalog.resolve(settings, "", "vocals"))  # load now, so separate() is timed warm
    loaded()
    return sep.separate(song, out)


def run_step(models: Path, song: Path, out: Path, home: Path, loaded: Callable[[], None]) -> dict[str, Path]:
    from singer.engines.separators.uvr import catalog as uvr_catalog
    from singer.workflow import ops
    from singer.workflow.runner import EnginePool, RunContext

    settings = _settings(models, home)
    ctx = RunContext(settings, EnginePool(settings), voices=None)
    ctx.engine("separator", "uvr")._separator(uvr_catalog.resolve(settings, "", "vocals"))
    loaded()
    op = ops.get("separate")
    bound = op.bind(ctx, {}, "uvr")
    out.mkdir(parents=True, exist_ok=True)
    stems, _meta = op.run(ctx, out, {"audio": song}, bound, lambda fraction, message=None: None)
    return stems


RUNNERS = {"direct": run_direct, "singer": run_singer, "step": run_step}


def child(mode: str, models: Path, song: Path, out: Path, home: Path) -> dict:
    """One measurement: load (imports included) then separate, each timed; peak RSS after each."""
    marks = [time.perf_counter()]
    after_load: list[float] = []

    def loaded() -> None:
        marks.append(time.perf_counter())
        after_load.append(vm_hwm_mb())

    stems = RUNNERS[mode](models, song, out, home, loaded)
    marks.append(time.perf_counter())
    peak = vm_hwm_mb()
    import soundfile as sf

    return {
        "mode": mode,
        "load_s": round(marks[1] - marks[0], 3),
        "separate_s": round(marks[2] - marks[1], 3),
        "peak_rss_after_load_mb": round(after_load[0], 1),
        "peak_rss_mb": round(peak, 1),
        "stems": {k: str(v) for k, v in stems.items()},
        "frames": {k: sf.info(str(v)).frames for k, v in stems.items()},
    }


# ------------------------------------------------------------------------------------------------------ the parent


def spawn(mode: str, models: Path, song: Path, run_dir: Path) -> dict:
    """One measurement in a fresh process with a fresh home; its JSON plus the process's wall time."""
    env = {k: v for k, v in os.environ.items() if k != "AUDIO_SEPARATOR_MODEL_DIR" and not k.startswith("SINGER_")}
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--models",
        str(models),
        "--song",
        str(song),
        "--out",
        str(run_dir / "out"),
        "--home",
        str(run_dir / "home"),
    ]
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    wall = time.perf_counter() - t
    if proc.returncode:
        raise RuntimeError(f"{mode} child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(
        process_wall_s=round(wall, 2),
        loadavg_1m_before=round(load_before, 2),
        loadavg_1m_after=round(os.getloadavg()[0], 2),
    )
    return res


def max_abs_diff(a: Path, b: Path, block: int = 1 << 18) -> float | None:
    """Largest sample difference between two equally long audio files (None when their lengths differ)."""
    import numpy as np
    import soundfile as sf

    with sf.SoundFile(str(a)) as fa, sf.SoundFile(str(b)) as fb:
        if fa.frames != fb.frames or fa.channels != fb.channels:
            return None
        worst = 0.0
        while True:
            xa = fa.read(block, dtype="float32", always_2d=True)
            xb = fb.read(block, dtype="float32", always_2d=True)
            if not len(xa):
                return worst
            worst = max(worst, float(np.max(np.abs(xa - xb))))


def _frames(path: Path) -> int:
    import soundfile as sf

    return sf.info(str(path)).frames


def median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def summarize(runs: list[dict]) -> dict:
    by_mode = {m: [r for r in runs if r["mode"] == m] for m in MODES}
    med = {m: {k: median(rs, k) for k in ("load_s", "separate_s", "peak_rss_mb")} for m, rs in by_mode.items()}
    d, s, st = med["direct"], med["singer"], med["step"]
    out = {
        "median": med,
        "time_ratio": round(s["separate_s"] / d["separate_s"], 3),
        "step_time_ratio": round(st["separate_s"] / d["separate_s"], 3),
        "rss_ratio": round(s["peak_rss_mb"] / d["peak_rss_mb"], 3),
        "step_rss_ratio": round(st["peak_rss_mb"] / d["peak_rss_mb"], 3),
    }
    out["goals"] = {"time_ratio": f"<= {GOALS['time_ratio']}", "rss_ratio": f"<= {GOALS['rss_ratio']}"}
    out["meets"] = {k: out[k] <= GOALS[k] for k in GOALS} | {
        "step_time_ratio": out["step_time_ratio"] <= GOALS["time_ratio"],
        "step_rss_ratio": out["step_rss_ratio"] <= GOALS["rss_ratio"],
    }
    return out


def measure(work: Path, models: Path, song: Path, repeat: int) -> list[dict]:
    """Alternate the three modes ``repeat`` times; compare every vocal stem with the first direct run's."""
    frames_in = _frames(song)
    runs: list[dict] = []
    reference: Path | None = None
    for r in range(repeat):
        for mode in MODES:
            run_dir = work / "runs" / f"{r}-{mode}"
            shutil.rmtree(run_dir, ignore_errors=True)
            res = spawn(mode, models, song, run_dir)
            vocals = Path(res["stems"]["vocals"])
            if reference is None:
                reference = work / "reference_vocals.wav"
                shutil.copyfile(vocals, reference)
            res["max_abs_diff_vocals"] = max_abs_diff(reference, vocals)
            res["same_length_as_input"] = all(n == frames_in for n in res["frames"].values())
            res["round"] = r
            res.pop("stems")
            runs.append(res)
            shutil.rmtree(run_dir, ignore_errors=True)  # 10-minute float stems are 212 MB each
            print(
                f"[{r}] {mode}: separate {res['separate_s']:.1f} s, load {res['load_s']:.1f} s, "
                f"peak {res['peak_rss_mb']:.0f} MB, diff {res['max_abs_diff_vocals']}",
                file=sys.stderr,
            )
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="song length (default: 10 minutes)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of direct/singer/step runs, alternated")
    ap.add_argument("--quick", action="store_true", help="smoke test: a 20 s song, one round")
    ap.add_argument("--seed", type=int, default=0, help="song and model weights")
    ap.add_argument("--workdir", type=Path, help="keep the model, song and reference stem here")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--models", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--song", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.models, args.song, args.out, args.home)))
        return 0
    seconds, repeat = (20.0, 1) if args.quick else (args.seconds, max(1, args.repeat))

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-uvr-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        model = write_model_folder(work / "models" / "uvr", args.seed)
        song = make_song(work / "song", seconds, args.seed)
        setup_s = time.perf_counter() - t
        model_mb = round(model.stat().st_size / 1e6, 2)
        frames_in = _frames(song)
        runs = measure(work, work / "models", song, repeat)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    diffs = [r["max_abs_diff_vocals"] for r in runs]
    result = {
        "figure": "uvr_stage_vs_audio_separator",
        "seconds": seconds,
        "repeat": repeat,
        "input_frames": frames_in,
        "model": {"file": MODEL_FILE, "mb": model_mb, "widths": list(WIDTHS), **MODEL_DATA, "mdx_params": MDX_PARAMS},
        "setup_s": round(setup_s, 1),
        **summarize(runs),
        "max_abs_diff_vocals": None if None in diffs else max(diffs),
        "all_same_length_as_input": all(r["same_length_as_input"] for r in runs),
        "cpu_count": os.cpu_count(),
        "runs": runs,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
