"""Tiny RVC content-model and index fixtures for tests and benchmarks.

``make_hf_hubert`` and ``make_fairseq_hubert`` write the *same* random weights (per seed and sizes) in the
transformers and fairseq layouts. The conv front end keeps hubert's kernels/strides (320 samples per frame) with
few channels; ``conv_dim`` lists channel counts, padded to 7 layers with its last value. The fairseq names are
written out here by hand (not with singer's mapping) so tests cross-check singer's conversion.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

KERNELS = (10, 3, 3, 3, 3, 2, 2)
STRIDES = (5, 2, 2, 2, 2, 2, 2)


def _config(
    hidden: int, layers: int, heads: int, ffn: int, conv_dim: tuple[int, ...], conv_pos: int, conv_pos_groups: int
) -> dict:
    dims = list(conv_dim) + [conv_dim[-1]] * (7 - len(conv_dim))
    return dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=ffn,
        conv_dim=dims,
        conv_kernel=list(KERNELS),
        conv_stride=list(STRIDES),
        conv_bias=False,
        num_conv_pos_embeddings=conv_pos,
        num_conv_pos_embedding_groups=conv_pos_groups,
        feat_extract_norm="group",
        do_stable_layer_norm=False,
    )


def tiny_weights(
    *, hidden=32, layers=3, heads=2, ffn=64, conv_dim=(32, 32), final_dim=16, seed=0, conv_pos=16, conv_pos_groups=4
) -> tuple[dict, dict]:
    """(transformers config dict, transformers state dict incl. final_proj.*) with every tensor random."""
    import torch

    from singer.engines.converters.rvc.hubert import _transformers

    HubertConfig, HubertModel = _transformers()
    config = _config(hidden, layers, heads, ffn, tuple(conv_dim), conv_pos, conv_pos_groups)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in HubertModel(HubertConfig(**config)).state_dict().items()}
    shapes.pop("masked_spec_embed", None)
    shapes["final_proj.weight"], shapes["final_proj.bias"] = torch.Size([final_dim, hidden]), torch.Size([final_dim])
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for name, shape in shapes.items():
        r = torch.randn(shape, generator=gen)
        if "norm" in name and name.endswith("weight"):
            sd[name] = 1 + 0.1 * r  # layer/group norm gains
        elif len(shape) == 1:
            sd[name] = 0.1 * r  # biases
        else:
            fan_in = int(np.prod(shape[1:]))
            sd[name] = r / np.sqrt(fan_in)
    return config, sd


def make_hf_hubert(
    folder: Path,
    *,
    hidden=32,
    layers=3,
    heads=2,
    ffn=64,
    conv_dim=(32, 32),
    final_dim=16,
    seed=0,
    with_final_proj=True,
    conv_pos=16,
    conv_pos_groups=4,
) -> Path:
    """A transformers-format HuBERT folder (config.json + model.safetensors, final_proj in the same file)."""
    from safetensors.torch import save_file

    config, sd = tiny_weights(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        conv_dim=conv_dim,
        final_dim=final_dim,
        seed=seed,
        conv_pos=conv_pos,
        conv_pos_groups=conv_pos_groups,
    )
    if not with_final_proj:
        sd = {k: v for k, v in sd.items() if not k.startswith("final_proj.")}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(
            {"model_type": "hubert", "architectures": ["HubertModel"], "classifier_proj_size": final_dim, **config}
        )
    )
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _to_fairseq(sd: dict) -> dict:
    out = {}
    for k, v in sd.items():
        parts = k.split(".")
        if k.startswith("feature_extractor.conv_layers."):
            i, kind = parts[2], parts[3]
            k = f"feature_extractor.conv_layers.{i}.{'0' if kind == 'conv' else '2'}.{parts[-1]}"
        elif k.startswith("feature_projection.layer_norm."):
            k = "layer_norm." + parts[-1]
        elif k.startswith("feature_projection.projection."):
            k = "post_extract_proj." + parts[-1]
        elif k.startswith("encoder.pos_conv_embed.conv."):
            k = "encoder.pos_conv.0." + {"original0": "weight_g", "original1": "weight_v"}.get(parts[-1], parts[-1])
        elif k.startswith("encoder.layers."):
            i, rest = parts[2], ".".join(parts[3:])
            rest = (
                rest.replace("attention.", "self_attn.")
                .replace("feed_forward.intermediate_dense.", "fc1.")
                .replace("feed_forward.output_dense.", "fc2.")
            )
            rest = "self_attn_layer_norm." + parts[-1] if rest.startswith("layer_norm.") else rest
            k = f"encoder.layers.{i}.{rest}"
        out[k] = v
    return out


def make_fairseq_hubert(
    path: Path,
    *,
    hidden=32,
    layers=3,
    heads=2,
    ffn=64,
    conv_dim=(32, 32),
    final_dim=16,
    seed=0,
    with_final_proj=True,
    conv_pos=16,
    conv_pos_groups=4,
    with_args=True,
    with_cfg=True,
) -> Path:
    """The same weights as ``make_hf_hubert`` in fairseq's hubert_base.pt layout (``args`` Namespace and/or
    ``cfg`` dict optional, to exercise loading with and without a readable config)."""
    import torch

    config, sd = tiny_weights(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        conv_dim=conv_dim,
        final_dim=final_dim,
        seed=seed,
        conv_pos=conv_pos,
        conv_pos_groups=conv_pos_groups,
    )
    if not with_final_proj:
        sd = {k: v for k, v in sd.items() if not k.startswith("final_proj.")}
    model = _to_fairseq(sd)
    model["mask_emb"] = torch.zeros(hidden)
    model["label_embs_concat"] = torch.zeros(8, final_dim)
    dims = config["conv_dim"]
    fields = {
        "_name": "hubert",
        "label_rate": 50.0,
        "extractor_mode": "default",
        "encoder_layers": config["num_hidden_layers"],
        "encoder_embed_dim": hidden,
        "encoder_ffn_embed_dim": config["intermediate_size"],
        "encoder_attention_heads": config["num_attention_heads"],
        "activation_fn": "gelu",
        "layer_norm_first": False,
        "conv_bias": False,
        "final_dim": final_dim,
        "conv_feature_layers": f"[({dims[0]},10,5)] + [({dims[1]},3,2)] * 4 + [({dims[5]},2,2)] * 2",
        "conv_pos": config["num_conv_pos_embeddings"],
        "conv_pos_groups": config["num_conv_pos_embedding_groups"],
        "feature_grad_mult": 0.1,
        "untie_final_proj": False,
        "dropout": 0.1,
    }
    ckpt = {
        "args": argparse.Namespace(**fields) if with_args else None,
        "cfg": {"_name": None, "common": {"fp16": False}, "model": fields, "task": {"_name": "hubert_pretraining"}}
        if with_cfg
        else None,
        "model": model,
        "optimizer_history": [],
        "extra_state": {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def make_index(path: Path, vectors: np.ndarray) -> Path:
    """A faiss index written the way RVC's train_index does it (independent of singer.engines.converters.rvc.index)."""
    import faiss

    big = np.ascontiguousarray(vectors, dtype=np.float32)
    n_ivf = max(1, min(int(16 * np.sqrt(big.shape[0])), big.shape[0] // 39))
    index = faiss.index_factory(big.shape[1], f"IVF{n_ivf},Flat")
    faiss.extract_index_ivf(index).nprobe = 1
    index.train(big)
    for i in range(0, big.shape[0], 8192):
        index.add(big[i : i + 8192])
    faiss.write_index(index, str(path))
    return Path(path)


class FairseqShim:
    """Looks like RVC's fairseq HuBERT to ``rvc_python``'s Pipeline, backed by singer's ContentEncoder."""

    def __init__(self, encoder: Any):
        self.encoder = encoder
        self.final_proj = encoder.final_proj

    def extract_features(self, source: Any, padding_mask: Any = None, output_layer: int | None = None, **_: Any):
        return self.encoder.layer_output(source.float(), output_layer or 12), None

    def eval(self) -> FairseqShim:
        return self

    def to(self, *_: Any, **__: Any) -> FairseqShim:
        return self

    def float(self) -> FairseqShim:
        return self

    half = float  # CPU runs stay float32
