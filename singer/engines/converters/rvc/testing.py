"""Random RVC voice checkpoints in the real file format, for tests and benchmarks (nothing is downloaded).

``random_checkpoint("v2", 40000, size="full")`` has the exact architecture of a community v2 40k model (about 37 M
parameters, float16 weights, weight norm stored as ``weight_g``/``weight_v`` as RVC saves it); ``size="tiny"``
keeps the layer layout and upsampling (so the real frame rate and sample rate) with few channels.
"""

from __future__ import annotations

from pathlib import Path

RB = ["1", [3, 7, 11], [[1, 3, 5], [1, 3, 5], [1, 3, 5]]]
UPSAMPLING = {  # (version, sr) -> (spec_channels, upsample_rates, upsample_kernel_sizes)
    ("v1", 32000): (513, [10, 4, 2, 2, 2], [16, 16, 4, 4, 4]),
    ("v1", 40000): (1025, [10, 10, 2, 2], [16, 16, 4, 4]),
    ("v1", 48000): (1025, [10, 6, 2, 2, 2], [16, 16, 4, 4, 4]),
    ("v2", 32000): (513, [10, 8, 2, 2], [20, 16, 4, 4]),
    ("v2", 40000): (1025, [10, 10, 2, 2], [16, 16, 4, 4]),
    ("v2", 48000): (1025, [12, 10, 2, 2], [24, 20, 4, 4]),
}


def config_list(version: str, sr: int, size: str = "full", speakers: int = 109) -> list:
    spec, rates, kernels = UPSAMPLING[(version, sr)]
    if size == "full":
        inter, hidden, filt, heads, layers, c0, gin = 192, 192, 768, 2, 6, 512, 256
    elif size == "tiny":
        inter, hidden, filt, heads, layers, c0, gin = 8, 16, 32, 2, 2, 64, 16
    else:
        raise ValueError(size)
    return [spec, 32, inter, hidden, filt, heads, layers, 3, 0, *RB, rates, c0, kernels, speakers, gin, sr]


def random_checkpoint(
    version: str = "v2",
    sr: int = 40000,
    *,
    f0: bool = True,
    size: str = "tiny",
    seed: int = 0,
    speakers: int = 4,
    scale: float = 1.0,
) -> dict:
    """A checkpoint dict exactly as RVC WebUI saves one (``torch.save`` it to get a .pth)."""
    import torch

    from .checkpoint import unfold_weight_norm
    from .synth import SynthConfig, Synthesizer

    torch.manual_seed(seed)
    cfg = config_list(version, sr, size, speakers)
    net = Synthesizer(SynthConfig.from_list(cfg), version, f0)
    weight = {}
    for k, v in net.state_dict().items():
        v = v.detach().clone()
        if k.endswith("emb_rel_k") or k.endswith("emb_rel_v"):
            v = torch.randn_like(v) * v.shape[-1] ** -0.5
        elif scale != 1.0 and v.is_floating_point():
            v = v * scale
        weight[k] = v
    weight = {k: v.half() for k, v in unfold_weight_norm(weight).items()}
    return {
        "weight": weight,
        "config": cfg,
        "info": f"random {size} test model, seed {seed}",
        "sr": f"{sr // 1000}k",
        "f0": int(f0),
        "version": version,
    }


def write_checkpoint(path: str | Path, **kw) -> Path:
    import torch

    path = Path(path)
    torch.save(random_checkpoint(**kw), path)
    return path
