"""RVC ``.pth`` voice checkpoints: read safely, describe, check, build the synthesizer, merge N voices.

The community layout (RVC WebUI ``savee``/``extract_small_model``, Applio): a dict with ``weight`` (the
synthesizer's state dict without ``enc_q``, usually float16), ``config`` (18 hyper-parameters), ``f0`` (1/0),
``version`` ("v1"/"v2"; missing in old v1 files), ``sr`` ("40k"...) and ``info``. Weight-normed layers appear as
``weight_g``/``weight_v`` (old torch) or ``parametrizations.weight.original0/1`` (new torch); both are folded into
plain weights here. Loading goes through :func:`singer.engines.converters.rvc.safeload.load_weights` (weights_only).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ....errors import InputError, ModelError
from .safeload import load_weights

SR_NAMES = {32000: "32k", 40000: "40k", 48000: "48k"}


@dataclass
class RVCCheckpoint:
    """What a ``.pth`` holds, validated."""

    path: Path | None
    weight: dict  # name -> tensor (weight norm folded, float32)
    config: list
    version: str
    f0: bool
    sr: int
    info: str = ""
    extra: dict = field(default_factory=dict)  # other top-level keys kept on save (embedder_model, speakers_id...)

    @property
    def content_dim(self) -> int:
        return 768 if self.version == "v2" else 256

    def describe(self) -> dict:
        n = sum(int(t.numel()) for t in self.weight.values())
        return {
            "version": self.version,
            "f0": self.f0,
            "sample_rate": self.sr,
            "content_dim": self.content_dim,
            "speakers": int(self.weight["emb_g.weight"].shape[0]),
            "parameters": n,
            "info": self.info,
            **{k: v for k, v in self.extra.items() if isinstance(v, str | int | float)},
        }

    def build(self, device: str = "cpu"):
        """The synthesizer with these weights loaded (strict), in eval mode."""
        import torch

        from .synth import SynthConfig, Synthesizer

        cfg = SynthConfig.from_list(self.config)
        net = Synthesizer(cfg, self.version, self.f0)
        try:
            net.load_state_dict(self.weight, strict=True)
        except RuntimeError as e:
            raise ModelError(
                f"{self._name()} does not fit the RVC {self.version} architecture its config describes: {_short(e)}",
                hint="The file may be from an unsupported RVC fork or damaged.",
            ) from e
        net.eval().requires_grad_(False)
        return net.to(torch.device(device))

    def save(self, path: Path, half: bool = True) -> None:
        """Write in the community layout (float16 weights as RVC saves them), atomically."""
        import torch

        path = Path(path)
        weight = {
            k: (v.half() if half and v.is_floating_point() else v) for k, v in unfold_weight_norm(self.weight).items()
        }
        obj = {
            "weight": weight,
            "config": self.config,
            "info": self.info,
            "sr": SR_NAMES.get(self.sr, str(self.sr)),
            "f0": int(self.f0),
            "version": self.version,
            **self.extra,
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(obj, tmp)
        tmp.replace(path)

    def _name(self) -> str:
        return self.path.name if self.path else "checkpoint"


def _short(e: Exception, n: int = 300) -> str:
    s = str(e).replace("\n", " ")
    return s if len(s) <= n else s[:n] + "..."


def fold_weight_norm(weight: dict) -> dict:
    """Replace ``X.weight_g``/``X.weight_v`` (or parametrizations) by ``X.weight`` = g * v / ||v|| (dim 0)."""
    import torch

    out: dict = {}
    pairs: dict[str, dict[str, Any]] = {}
    for k, v in weight.items():
        m = re.match(
            r"^(.*)\.(weight_g|weight_v|parametrizations\.weight\.original0|parametrizations\.weight\.original1)$", k
        )
        if m:
            role = "g" if m.group(2) in ("weight_g", "parametrizations.weight.original0") else "v"
            pairs.setdefault(m.group(1), {})[role] = v
        else:
            out[k] = v
    for base, gv in pairs.items():
        if set(gv) != {"g", "v"}:
            raise ValueError(f"incomplete weight norm for {base}")
        out[f"{base}.weight"] = torch._weight_norm(gv["v"].float(), gv["g"].float(), 0)
    return out


# Layers RVC wraps in weight norm; files store them as weight_g / weight_v, which RVC WebUI and Applio expect.
WEIGHT_NORMED = re.compile(
    r"^(dec\.ups\.\d+|dec\.resblocks\.\d+\.convs[12]?\.\d+|flow\.flows\.\d+\.enc\.(in_layers|res_skip_layers)\.\d+"
    r"|flow\.flows\.\d+\.enc\.cond_layer)\.weight$"
)


def unfold_weight_norm(weight: dict) -> dict:
    """Plain weights -> ``weight_g`` (norm per output channel) + ``weight_v``, the layout community tools load."""
    import torch

    out = {}
    for k, v in weight.items():
        m = WEIGHT_NORMED.match(k)
        if m:
            g = torch.linalg.vector_norm(v.reshape(v.shape[0], -1).float(), dim=1).reshape(-1, *([1] * (v.dim() - 1)))
            out[f"{m.group(1)}.weight_g"], out[f"{m.group(1)}.weight_v"] = g.to(v.dtype), v
        else:
            out[k] = v
    return out


def _check_format(raw: Any, name: str) -> None:
    """Raise ModelError unless ``raw`` looks like an RVC inference model with a vocoder singer runs."""
    if isinstance(raw, dict) and "weight" not in raw and "model" in raw:
        raise ModelError(
            f"{name} is an RVC training checkpoint (G_*.pth), not a voice model.",
            hint="Use the small model RVC exports for inference (e.g. weights/<name>.pth).",
        )
    if not isinstance(raw, dict) or not isinstance(raw.get("weight"), dict) or "config" not in raw:
        raise ModelError(
            f"{name} is not an RVC voice model (no 'weight' and 'config').",
            hint="Give the .pth that RVC WebUI/Applio export for inference.",
        )
    vocoder = str(raw.get("vocoder", "HiFi-GAN"))
    if vocoder not in ("HiFi-GAN", "hifigan", ""):
        raise ModelError(
            f"{name} uses the {vocoder} vocoder, which singer does not support yet.",
            hint="Use a model trained with the default HiFi-GAN vocoder.",
        )
    embedder = str(raw.get("embedder_model", "contentvec"))
    if embedder.lower() not in ("contentvec", "hubert_base", "hubert-base", ""):
        raise ModelError(
            f"{name} was trained on {embedder} features; singer extracts ContentVec (hubert_base) features only.",
            hint="Use a model trained with the default ContentVec embedder.",
        )


def from_dict(raw: Any, path: Path | None = None) -> RVCCheckpoint:
    """Validate a loaded checkpoint dict (as ``torch.load`` gives it) and normalise it."""
    name = path.name if path else "checkpoint"
    _check_format(raw, name)
    try:
        weight = {
            k: v.float() if v.is_floating_point() else v for k, v in raw["weight"].items() if not k.startswith("enc_q.")
        }
        weight = fold_weight_norm(weight)
        config = list(raw["config"])
        emb = weight["emb_g.weight"]
        phone = weight["enc_p.emb_phone.weight"]
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise ModelError(
            f"{name} is not a usable RVC voice model ({_short(e)}).", hint="The file may be damaged."
        ) from e
    config[-3] = int(emb.shape[0])  # speakers, as RVC does
    dim = int(phone.shape[1])
    if dim not in (256, 768):
        raise ModelError(f"{name}: content input of {dim} dims; RVC v1 uses 256 and v2 768.", hint="Unsupported model.")
    version = "v2" if dim == 768 else "v1"
    declared = raw.get("version")
    if declared and declared != version:
        raise ModelError(
            f"{name} says version {declared} but its weights are {version} ({dim}-dim content).",
            hint="The file is inconsistent; re-export it.",
        )
    f0 = "enc_p.emb_pitch.weight" in weight
    if "f0" in raw and bool(int(raw["f0"])) != f0:
        raise ModelError(
            f"{name} says f0={raw['f0']} but its weights {'have' if f0 else 'lack'} a pitch embedding.",
            hint="The file is inconsistent; re-export it.",
        )
    sr = config[-1]
    sr = int(sr.rstrip("k")) * 1000 if isinstance(sr, str) else int(sr)
    _check_shapes(name, config, version, f0, weight)
    extra = {
        k: v
        for k, v in raw.items()
        if k not in ("weight", "config", "info", "sr", "f0", "version") and isinstance(v, str | int | float | bool)
    }
    return RVCCheckpoint(
        path=path,
        weight=weight,
        config=config,
        version=version,
        f0=f0,
        sr=sr,
        info=str(raw.get("info", "")),
        extra=extra,
    )


CONFIG_INT_MAX = 65536  # no layer width, count, kernel or rate of a real RVC model comes near this
CONFIG_LIST_MAX = 64


def _config_numbers(value: Any) -> list:
    if isinstance(value, list | tuple):
        if len(value) > CONFIG_LIST_MAX:
            raise ValueError(f"a config list of {len(value)} entries")
        return [n for v in value for n in _config_numbers(v)]
    return [value] if isinstance(value, int | float) and not isinstance(value, bool) else []


def _check_shapes(name: str, config: list, version: str, f0: bool, weight: dict) -> None:
    """The network the config describes must be the one the weights fill: built without memory (torch's meta
    device) after its numbers were bounded, its parameter shapes compared with the weights'. A config asking for
    absurd sizes would otherwise allocate them when the voice is first used."""
    import torch

    from .synth import SynthConfig, Synthesizer

    try:
        numbers = _config_numbers(config[:-1])
        if any(not (0 <= n <= CONFIG_INT_MAX) for n in numbers):
            raise ValueError("a config number out of range")
        with torch.device("meta"):
            shapes = {
                k: tuple(v.shape)
                for k, v in Synthesizer(SynthConfig.from_list(config), version, f0).state_dict().items()
            }
    except (ValueError, TypeError, IndexError, RuntimeError) as e:
        raise ModelError(
            f"{name} has a config no RVC model has ({_short(e)}).", hint="The file may be damaged."
        ) from None
    wrong = sorted(k for k in shapes if k not in weight or tuple(weight[k].shape) != shapes[k])
    extra = sorted(k for k in weight if k not in shapes)
    if wrong or extra:
        raise ModelError(
            f"{name} does not fit the RVC {version} architecture its config describes "
            f"({len(wrong)} weights of another shape or missing, {len(extra)} unknown; e.g. {(wrong or extra)[0]}).",
            hint="The file may be from an unsupported RVC fork or damaged.",
        )


def load(path: str | Path) -> RVCCheckpoint:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No such model file: {path}", hint="Give the path of an RVC .pth file.")
    return from_dict(load_weights(path), path)


def check_compatible(cks: list[RVCCheckpoint], names: list[str]) -> None:
    """Refuse a merge of checkpoints that differ in version, sample rate, f0 or any layer's shape."""
    first, n0 = cks[0], names[0]
    for ck, n in zip(cks[1:], names[1:]):
        for what, a, b in (
            ("version", first.version, ck.version),
            ("sample rate", first.sr, ck.sr),
            ("pitch (f0)", first.f0, ck.f0),
        ):
            if a != b:
                raise InputError(
                    f"Cannot merge '{n0}' and '{n}': {what} differs ({a} vs {b}).",
                    hint="Merge only voices trained with the same RVC version, sample rate and f0 setting.",
                )
        missing = set(first.weight) ^ set(ck.weight)
        if missing:
            raise InputError(
                f"Cannot merge '{n0}' and '{n}': layers differ (e.g. {sorted(missing)[0]}).",
                hint="The models have different architectures.",
            )
        for k, t in first.weight.items():
            if k == "emb_g.weight":
                continue
            if tuple(t.shape) != tuple(ck.weight[k].shape):
                raise InputError(
                    f"Cannot merge '{n0}' and '{n}': layer {k} has shape {tuple(t.shape)} vs "
                    f"{tuple(ck.weight[k].shape)}.",
                    hint="The models have different architectures.",
                )


def merge(cks: list[RVCCheckpoint], weights: list[float], names: list[str]) -> RVCCheckpoint:
    """Weighted average of every parameter (weights normalised to sum 1).

    Speaker embeddings of models trained with different speaker counts are cut to the smallest count (as RVC's own
    merge does), so speaker id 0 (singer's default) is the weighted mix of each model's speaker 0.
    """
    import torch

    if len(cks) != len(weights) or len(cks) < 2:
        raise InputError(
            f"Got {len(cks)} voices and {len(weights)} weights.", hint="Give two or more voices and one weight each."
        )
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0 or not math.isfinite(sum(weights)):
        raise InputError(
            f"Invalid merge weights {weights}.", hint="Use non-negative weights with a positive sum, e.g. 0.6,0.4."
        )
    check_compatible(cks, names)
    total = float(sum(weights))
    ws = [w / total for w in weights]
    out: dict = {}
    n_spk = min(int(ck.weight["emb_g.weight"].shape[0]) for ck in cks)
    with torch.no_grad():
        for k, t in cks[0].weight.items():
            if not t.is_floating_point():
                out[k] = t.clone()
                continue
            parts = [ck.weight[k][:n_spk] if k == "emb_g.weight" else ck.weight[k] for ck in cks]
            acc = parts[0] * ws[0]
            for p, w in zip(parts[1:], ws[1:]):
                acc.add_(p, alpha=w)
            out[k] = acc
    config = list(cks[0].config)
    config[-3] = n_spk
    info = "merge of " + " + ".join(f"{w:.3g}*{n}" for n, w in zip(names, ws))
    return RVCCheckpoint(
        path=None, weight=out, config=config, version=cks[0].version, f0=cks[0].f0, sr=cks[0].sr, info=info, extra={}
    )
