"""Tiny UVR models in the real file formats audio-separator loads, so separator tests need no downloads.

:func:`install_uvr_kit` writes into a folder everything audio-separator's own loading code reads there:

* ``tiny_vocals.onnx`` -- an MDX-Net model (ONNX, input ``"input"`` ``[batch, 4, dim_f, dim_t]``, output the vocal
  spectrogram in audio-separator's STFT layout ``[L re, L im, R re, R im]``). It is a small magnitude-mask network
  trained for a few seconds of CPU, when the kit is first built, on synthetic songs from :mod:`tests.synth` (seeds
  11-16; tests evaluate on other seeds), with spectrograms made by audio-separator's own STFT class and chunking,
  so it really finds the voice: its vocal estimate correlates about 0.9 with the true vocal stem.
* ``mdx_model_data.json`` / ``vr_model_data.json`` -- UVR's parameter tables, keyed by audio-separator's model hash.
* ``tiny_roformer.ckpt`` + ``tiny_roformer.yaml`` -- a MelBand-Roformer with random (seeded) weights, stored the way
  real Roformer checkpoints are (a plain state dict), with a de-reverb style config (``noreverb`` / ``reverb``).
* ``download_checks.json`` -- UVR's model list, naming both models, so ``Separator.download_model_files`` finds
  them without a request.

The files are built once per process into a temporary folder and copied from there; a build takes about 10 s.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

VOCALS = "tiny_vocals.onnx"
ROFORMER = "tiny_roformer.ckpt"
ROFORMER_YAML = "tiny_roformer.yaml"
SR = 44100
N_FFT, HOP, DIM_F, DIM_T_LOG2 = 2048, 1024, 512, 6
DIM_T = 2**DIM_T_LOG2
# the mdx_params a Separator needs for tiny_vocals.onnx (segment_size == dim_t: ONNX Runtime, no onnx2torch)
MDX_PARAMS = {"hop_length": HOP, "segment_size": DIM_T, "overlap": 0.25, "batch_size": 1, "enable_denoise": False}
TRAIN_SEEDS, TRAIN_SECONDS, TRAIN_STRIDE = range(11, 17), 4.0, 16384
TRAIN_STEPS, TRAIN_BATCH, TRAIN_LR = 60, 8, 5e-3

ROFORMER_CONFIG = {
    "audio": {
        "chunk_size": 65280,
        "dim_f": 257,
        "dim_t": 256,
        "hop_length": 256,
        "n_fft": 512,
        "num_channels": 2,
        "sample_rate": SR,
        "min_mean_abs": 0.0,
    },
    "model": {
        "dim": 16,
        "depth": 1,
        "stereo": True,
        "num_stems": 1,
        "time_transformer_depth": 1,
        "freq_transformer_depth": 1,
        "num_bands": 32,
        "dim_head": 8,
        "heads": 2,
        "attn_dropout": 0.0,
        "ff_dropout": 0.0,
        "flash_attn": True,
        "dim_freqs_in": 257,
        "sample_rate": SR,
        "stft_n_fft": 512,
        "stft_hop_length": 256,
        "stft_win_length": 512,
        "stft_normalized": False,
        "mask_estimator_depth": 1,
    },
    "training": {
        "batch_size": 1,
        "instruments": ["noreverb", "reverb"],
        "target_instrument": "noreverb",
        "use_amp": False,
    },
    "inference": {"batch_size": 1, "dim_t": 256, "num_overlap": 2},
}

_built: Path | None = None


def uvr_model_hash(path: Path | str) -> str:
    """audio-separator's ``Separator.get_model_hash``: MD5 of the whole file, or of its last 10,240,000 bytes."""
    tail = 10000 * 1024
    with open(path, "rb") as f:
        f.seek(0, 2)
        f.seek(max(f.tell() - tail, 0))
        return hashlib.md5(f.read()).hexdigest()


# ----------------------------------------------------------------------------------------------------------------
# the MDX-Net vocal model


def _mask_net(hidden: int = 8):
    """Per stereo channel: magnitude -> log1p -> two convs over (freq, time) -> sigmoid mask on re and im."""
    import torch
    from torch import nn

    class MaskNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(2, hidden, (5, 3), padding=(2, 1))
            self.conv2 = nn.Conv2d(hidden, hidden, (5, 3), padding=(4, 2), dilation=2)
            self.out = nn.Conv2d(hidden, 2, 1)
            self.freq_bias = nn.Parameter(torch.zeros(1, 1, DIM_F, 1))  # the voice lives in some bands more

        def forward(self, x):
            re, im = x[:, 0::2], x[:, 1::2]  # [L re, L im, R re, R im] -> (L, R) each
            feats = torch.log1p(torch.sqrt(re * re + im * im + 1e-8))
            h = torch.relu(self.conv2(torch.relu(self.conv1(feats))))
            mask = torch.sigmoid(self.out(h) + self.freq_bias)
            return torch.stack([re * mask, im * mask], dim=2).flatten(1, 2)

    return MaskNet()


def _chunks(wave: np.ndarray) -> np.ndarray:
    """(n, 2, chunk) windows of a song padded like MDXSeparator.demix (n_fft // 2 zeros in front)."""
    chunk = HOP * (DIM_T - 1)  # MDXSeparator: hop_length * (segment_size - 1) -> exactly dim_t STFT frames
    trim = N_FFT // 2
    padded = np.concatenate([np.zeros((2, trim), np.float32), wave, np.zeros((2, chunk), np.float32)], axis=1)
    starts = range(0, wave.shape[1] + trim - chunk // 2, TRAIN_STRIDE)
    return np.stack([padded[:, s : s + chunk] for s in starts])


def _training_spectrograms():
    """(mix, vocals) spectrograms [n, 4, dim_f, dim_t] as MDXSeparator.run_model feeds the model."""
    import torch
    from audio_separator.separator.uvr_lib_v5.stft import STFT

    from tests.synth import make_synthetic_song

    mixes, vocals = [], []
    for seed in TRAIN_SEEDS:
        mix, voc, _ = make_synthetic_song(TRAIN_SECONDS, SR, seed)
        mixes.append(_chunks(mix))
        vocals.append(_chunks(voc))
    gains = np.random.default_rng(0).uniform(0.3, 1.3, (sum(len(m) for m in mixes), 1, 1)).astype(np.float32)
    stft = STFT(logging.getLogger(__name__), N_FFT, HOP, DIM_F, torch.device("cpu"))
    specs = []
    for waves in (mixes, vocals):
        spec = stft(torch.from_numpy(np.concatenate(waves) * gains))
        spec[:, :, :3, :] = 0  # run_model zeroes the lowest three bins before the model sees them
        specs.append(spec)
    return specs[0], specs[1]


def _train_vocal_net():
    import torch

    mix, vocals = _training_spectrograms()
    net = _mask_net()
    opt = torch.optim.Adam(net.parameters(), lr=TRAIN_LR)
    for _ in range(TRAIN_STEPS):
        idx = torch.randint(0, len(mix), (TRAIN_BATCH,))
        loss = (net(mix[idx]) - vocals[idx]).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def _export_onnx(net, path: Path) -> None:
    import torch

    example = torch.zeros(1, 4, DIM_F, DIM_T)
    torch.onnx.export(
        net,
        (example,),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )


def _mdx_model_data(path: Path) -> dict:
    return {
        uvr_model_hash(path): {
            "compensate": 1.0,
            "mdx_dim_f_set": DIM_F,
            "mdx_dim_t_set": DIM_T_LOG2,
            "mdx_n_fft_scale_set": N_FFT,
            "primary_stem": "Vocals",
        }
    }


# ----------------------------------------------------------------------------------------------------------------
# the Roformer and the model list


def _write_roformer(folder: Path) -> None:
    import torch
    import yaml
    from audio_separator.separator.uvr_lib_v5.roformer.mel_band_roformer import MelBandRoformer

    torch.manual_seed(1)
    model = MelBandRoformer(**ROFORMER_CONFIG["model"])
    torch.save(model.state_dict(), folder / ROFORMER)
    (folder / ROFORMER_YAML).write_text(yaml.safe_dump(ROFORMER_CONFIG, sort_keys=False), encoding="utf-8")


def _download_checks() -> dict:
    """UVR's download_checks.json with every list audio-separator indexes; only the tiny models in it."""
    empty = (
        "vr_download_list",
        "demucs_download_list",
        "mdx_download_vip_list",
        "mdx23c_download_list",
        "mdx23c_download_vip_list",
    )
    return {
        **{key: {} for key in empty},
        "mdx_download_list": {"MDX-Net Model: Tiny Vocals": VOCALS},
        "roformer_download_list": {"Roformer Model: Tiny MelBand Roformer": {ROFORMER: ROFORMER_YAML}},
    }


def _build(folder: Path) -> None:
    import torch

    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):  # tests keep their own RNG state
        warnings.simplefilter("ignore")  # stft return_complex, legacy ONNX exporter, rotary-embedding notices
        torch.manual_seed(0)
        _export_onnx(_train_vocal_net(), folder / VOCALS)
        _write_roformer(folder)
    (folder / "mdx_model_data.json").write_text(json.dumps(_mdx_model_data(folder / VOCALS), indent=1))
    (folder / "vr_model_data.json").write_text("{}")
    (folder / "download_checks.json").write_text(json.dumps(_download_checks(), indent=1))


def install_uvr_kit(folder: Path) -> dict[str, str]:
    """Write the tiny UVR models + the data files audio-separator needs into `folder` (created if missing).
    Returns {"vocals": "tiny_vocals.onnx", "roformer": "tiny_roformer.ckpt"} (file names inside folder)."""
    global _built
    if _built is None:
        built = Path(tempfile.mkdtemp(prefix="uvrkit-"))
        atexit.register(shutil.rmtree, built, ignore_errors=True)
        _build(built)
        _built = built
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for file in _built.iterdir():
        shutil.copyfile(file, folder / file.name)
    return {"vocals": VOCALS, "roformer": ROFORMER}
