"""Content features for RVC: HuBERT / ContentVec run as transformers' ``HubertModel``.

Two file layouts load into the same model: a transformers folder (``config.json`` + ``model.safetensors`` or
``pytorch_model.bin``, optionally holding ``final_proj.*`` as community ContentVec conversions do) and a fairseq
``hubert_base.pt`` / ``contentvec*.pt``, whose parameter names are mapped to transformers' on load (fairseq is never
imported; its pickled config is read through inert stubs).

RVC asks fairseq for ``extract_features(output_layer=9)`` + ``final_proj`` (v1 voices, 256-dim) or
``output_layer=12`` (v2 voices, 768-dim). With ``layer_norm_first=False`` (hubert-base) the encoder normalises
before its layers, so "output layer n" is the output of the n-th transformer layer (transformers'
``hidden_states[n]``). Only the layers needed are run. Models with fewer layers (tiny test models) use their last
layer: the layer index is clamped to the model's layer count.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ....errors import ModelError, UsageError
from .safeload import load_weights, load_with_stubs, plain

HOP = 320  # samples per content frame at 16 kHz (5 * 2**6)
LAYERS = {"v1": 9, "v2": 12}  # fairseq output_layer RVC uses per voice version
DEFAULT_STRIDES = (5, 2, 2, 2, 2, 2, 2)
PULL_HINT = (
    "Run `singer models pull hubert`, or put hubert_base.pt (fairseq) or a transformers HuBERT folder "
    "named hubert/ in {}."
)

# fairseq name -> transformers name (first match wins; patterns are anchored at the start of the key).
_FAIRSEQ_KEYS = [
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.", r"feature_extractor.conv_layers.\1.conv."),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.(?:1\.)?", r"feature_extractor.conv_layers.\1.layer_norm."),
    (r"layer_norm\.", "feature_projection.layer_norm."),
    (r"post_extract_proj\.", "feature_projection.projection."),
    (r"encoder\.pos_conv\.0\.", "encoder.pos_conv_embed.conv."),
    (r"encoder\.layers\.(\d+)\.self_attn\.", r"encoder.layers.\1.attention."),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.", r"encoder.layers.\1.layer_norm."),
    (r"encoder\.layers\.(\d+)\.fc1\.", r"encoder.layers.\1.feed_forward.intermediate_dense."),
    (r"encoder\.layers\.(\d+)\.fc2\.", r"encoder.layers.\1.feed_forward.output_dense."),
    (r"(encoder\.layer_norm\.|encoder\.layers\.\d+\.final_layer_norm\.|final_proj\.)", r"\1"),
]
_POS = "encoder.pos_conv_embed.conv."
_ACTIVATIONS = {"gelu_accurate": "gelu_pytorch_tanh"}  # fairseq name -> transformers name where they differ


def find_content_model(models_path: Path) -> Path:
    """The content model under ``models_path``: ``hubert/`` (transformers folder) or a fairseq ``.pt``."""
    models_path = Path(models_path)
    folder = models_path / "hubert"
    if (folder / "config.json").is_file():
        return folder
    for where in (models_path, folder):
        for pattern in ("hubert_base.pt", "contentvec*.pt"):
            hits = sorted(where.glob(pattern))
            if hits:
                return hits[0]
    raise ModelError(
        f"No content model (HuBERT/ContentVec) found in {models_path}.", hint=PULL_HINT.format(models_path)
    )


def _transformers() -> Any:
    """``transformers`` HuBERT classes; a torchaudio that is installed but cannot load is hidden from it first."""
    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is not None:
        try:
            import torchaudio  # noqa: F401  (transformers imports it when present)
        except (OSError, ImportError):
            sys.modules["torchaudio"] = None  # unusable anyway; find_spec -> None
    if "torchaudio" in sys.modules and sys.modules["torchaudio"] is None:  # hidden (here or by f0): tell transformers
        utils = sys.modules.get("transformers.utils.import_utils")
        getattr(getattr(utils, "is_torchaudio_available", None), "cache_clear", lambda: None)()
    try:
        from transformers import HubertConfig, HubertModel
    except ImportError as e:
        raise ModelError("The RVC engine needs the transformers package.", hint="pip install transformers") from e
    return HubertConfig, HubertModel


def _scalar(v: Any) -> Any:
    """Enum stubs come back as ``[value]``."""
    return v[0] if isinstance(v, list) and len(v) == 1 else v


def _conv_spec(text: str) -> list[tuple[int, int, int]]:
    """Evaluate fairseq's ``conv_feature_layers`` string (lists, tuples, ints, + and *) without eval()."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return ev(node.left) + ev(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            left, right = ev(node.left), ev(node.right)
            if not isinstance(right, int) or not 0 <= right <= 64:
                raise ValueError("bad repeat")
            return left * right
        raise ValueError(f"unsupported {type(node).__name__}")

    spec = ev(ast.parse(text, mode="eval").body)
    return [tuple(int(x) for x in layer) for layer in spec]


def _fairseq_to_hf(ckpt: dict, path: Path) -> tuple[dict, dict]:
    """(transformers config kwargs, transformers-named state dict) from a fairseq checkpoint."""
    sd = ckpt.get("model")
    if not isinstance(sd, dict):
        raise ModelError(f"{path.name} has no 'model' weights.", hint="Expected a fairseq HuBERT checkpoint.")
    cfg, args = plain(ckpt.get("cfg")), plain(ckpt.get("args"))
    hp = cfg.get("model") if isinstance(cfg, dict) else None
    hp = {k: _scalar(v) for k, v in (hp if isinstance(hp, dict) else args if isinstance(args, dict) else {}).items()}

    out = {}
    for key, value in sd.items():
        for pattern, repl in _FAIRSEQ_KEYS:
            new, n = re.subn("^" + pattern, repl, key)
            if n:
                out[new] = value
                break
    convs = sorted(
        int(m.group(1)) for k in sd if (m := re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.0\.weight", k))
    )
    n_layers = sum(1 for k in sd if re.fullmatch(r"encoder\.layers\.\d+\.fc1\.weight", k))
    if not convs or not n_layers or "post_extract_proj.weight" not in sd or "encoder.pos_conv.0.bias" not in sd:
        raise ModelError(
            f"{path.name} is not a HuBERT/ContentVec checkpoint (unexpected parameter names).",
            hint="Use hubert_base.pt from the RVC release or a ContentVec checkpoint.",
        )
    conv_w = [sd[f"feature_extractor.conv_layers.{i}.0.weight"] for i in convs]
    strides = list(DEFAULT_STRIDES)
    try:
        spec = _conv_spec(str(hp["conv_feature_layers"]))
        if [(d, k) for d, k, _ in spec] == [(w.shape[0], w.shape[2]) for w in conv_w]:
            strides = [s for _, _, s in spec]
    except (KeyError, ValueError, SyntaxError, TypeError):
        pass
    if len(strides) != len(conv_w):
        raise ModelError(f"{path.name}: cannot tell the strides of its {len(conv_w)} conv layers.")
    hidden = sd["post_extract_proj.weight"].shape[0]
    act = str(hp.get("activation_fn") or "gelu")
    pos_v = sd.get("encoder.pos_conv.0.weight_v", sd.get("encoder.pos_conv.0.weight"))
    config = dict(
        hidden_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=int(hp.get("encoder_attention_heads") or max(1, hidden // 64)),
        intermediate_size=sd["encoder.layers.0.fc1.weight"].shape[0],
        hidden_act=_ACTIVATIONS.get(act, act),
        conv_dim=[w.shape[0] for w in conv_w],
        conv_kernel=[w.shape[2] for w in conv_w],
        conv_stride=strides,
        conv_bias="feature_extractor.conv_layers.0.0.bias" in sd,
        feat_extract_norm="layer" if "feature_extractor.conv_layers.1.2.1.weight" in sd else "group",
        num_conv_pos_embeddings=pos_v.shape[2],
        num_conv_pos_embedding_groups=hidden // pos_v.shape[1],
        do_stable_layer_norm=bool(hp.get("layer_norm_first", False)),
    )
    return config, out


def _normalise(sd: dict) -> tuple[dict, Any, Any]:
    """Common key fix-ups; returns (state dict, final_proj weight, final_proj bias)."""
    import torch

    sd = {(k[len("hubert.") :] if k.startswith("hubert.") else k): v for k, v in sd.items()}
    g = sd.pop(_POS + "weight_g", sd.pop(_POS + "parametrizations.weight.original0", None))
    v = sd.pop(_POS + "weight_v", sd.pop(_POS + "parametrizations.weight.original1", None))
    if g is not None and v is not None:
        sd[_POS + "weight"] = torch._weight_norm(v.float(), g.float(), 2)
    return sd, sd.pop("final_proj.weight", None), sd.pop("final_proj.bias", None)


def _read_hf(folder: Path) -> tuple[dict, dict]:
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"Cannot read {folder / 'config.json'}: {e}", hint="Pull the content model again.") from e
    if (folder / "model.safetensors").is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return config, load_file(str(folder / "model.safetensors"))
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelError(
                f"Cannot read {folder.name}/model.safetensors: {e}", hint="Pull the content model again."
            ) from e
    if (folder / "pytorch_model.bin").is_file():
        return config, load_weights(folder / "pytorch_model.bin")
    raise ModelError(f"{folder} has no model.safetensors or pytorch_model.bin.", hint=PULL_HINT.format(folder.parent))


TILE_FRAMES = 250  # conv front end on long input: 5 s tiles (the group norm's statistics stay global)


def conv_features(fe: Any, x: Any, tile_frames: int = TILE_FRAMES) -> Any:
    """HuBERT's conv front end (``fe``: transformers' feature encoder) on [1, samples], in tiles for long input.

    The convolutions have no padding, so frame j depends on input samples [j*hop, j*hop + field) only: tiles cut at
    frame boundaries give the same frames. The first layer's group norm normalises each channel over the whole
    signal; its mean and variance follow exactly from the input's 10-sample window statistics. Memory stays at one tile's
    activations instead of the whole chunk's (about 280 MB per 43 s chunk at layer 0 of hubert-base)."""
    import torch

    layers = list(fe.conv_layers)
    first = layers[0]
    norm = getattr(first, "layer_norm", None)
    kernels = [lay.conv.kernel_size[0] for lay in layers]
    strides = [lay.conv.stride[0] for lay in layers]
    hop, field = 1, 1  # samples per frame, samples seen by one frame
    for k, st in zip(kernels, strides):
        field += (k - 1) * hop
        hop *= st
    n = x.shape[-1]
    frames = (n - field) // hop + 1
    if not isinstance(norm, torch.nn.GroupNorm) or frames <= 2 * tile_frames:
        return fe(x)
    c0, k0, s0 = first.conv, kernels[0], strides[0]
    x3 = x[:, None]  # [1, 1, samples], as the feature encoder shapes it
    n0 = (n - k0) // s0 + 1
    # First conv's per-channel mean and variance in closed form from the input's window statistics
    # (y_c[t] = w_c . x[t*s0 : t*s0+k0] + b_c): mean = w.mu + b, E[y^2] = w S w^T + 2 b w.mu + b^2.
    cols = torch.stack([x3[0, 0, k : k + s0 * (n0 - 1) + 1 : s0].double() for k in range(k0)])  # [k0, n0]
    mu, sec = cols.mean(dim=1), cols @ cols.T / n0
    w = c0.weight[:, 0, :].double()
    b = c0.bias.double() if c0.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    mean = w @ mu + b
    ey2 = torch.einsum("ck,kl,cl->c", w, sec, w) + 2 * b * (w @ mu) + b * b
    var = (ey2 - mean * mean).clamp_min(0)
    scale = (norm.weight.double() / torch.sqrt(var + norm.eps)).float()[None, :, None]
    shift = (norm.bias.double() - mean * norm.weight.double() / torch.sqrt(var + norm.eps)).float()[None, :, None]
    out = []
    for f in range(0, frames, tile_frames):  # pass 2: frames f..f+T from their own input span
        e = min(frames, f + tile_frames)
        h = first.activation(c0(x3[..., f * hop : (e - 1) * hop + field]).mul_(scale).add_(shift))
        for lay in layers[1:]:
            h = lay(h)
        out.append(h)
    return torch.cat(out, dim=-1)


class ContentEncoder:
    """A loaded HuBERT/ContentVec; ``features`` gives what RVC's fairseq call gives."""

    def __init__(self, model: Any, final_proj: Any, path: Path):
        self.model, self.final_proj, self.path = model, final_proj, path
        self.dim: int = model.config.hidden_size
        self.num_layers: int = model.config.num_hidden_layers
        self.has_final_proj: bool = final_proj is not None
        self.proj_dim: int | None = final_proj.out_features if final_proj is not None else None
        self._stable = bool(model.config.do_stable_layer_norm)

    @classmethod
    def load(cls, path: Path) -> ContentEncoder:
        """Load a transformers folder or fairseq .pt, or reuse the warm one (:mod:`singer.engines.warm`) while its
        files are unchanged."""
        from ... import warm

        path = Path(path)
        if not path.exists():
            raise ModelError(f"Content model {path} does not exist.", hint=PULL_HINT.format(path.parent))
        return warm.get("hubert", path.name, str(path.resolve()), lambda: cls._build(path), stamp=warm.file_stamp(path))

    @classmethod
    def _build(cls, path: Path) -> ContentEncoder:
        import torch

        HubertConfig, HubertModel = _transformers()
        if path.is_dir():
            config, sd = _read_hf(path)
        else:
            ckpt = load_with_stubs(path)
            if not isinstance(ckpt, dict):
                raise ModelError(
                    f"{path.name} is not a fairseq checkpoint.", hint="Expected hubert_base.pt / contentvec.pt."
                )
            config, sd = _fairseq_to_hf(ckpt, path)
        sd, proj_w, proj_b = _normalise(sd)
        config = {**config, "mask_time_prob": 0.0, "mask_feature_prob": 0.0, "layerdrop": 0.0}
        try:
            cfg = HubertConfig(**config)
            cfg._attn_implementation = "sdpa"
            with torch.device("meta"):
                model = HubertModel(cfg)
            torch.nn.utils.parametrize.remove_parametrizations(model.encoder.pos_conv_embed.conv, "weight")
            expected = model.state_dict()
            missing = [k for k in expected if k not in sd]
            if missing:
                raise ModelError(
                    f"{path.name} lacks {len(missing)} HuBERT weights (e.g. {missing[0]}).",
                    hint="The file is not a HuBERT/ContentVec model or is incomplete; pull it again.",
                )
            model.load_state_dict({k: sd[k].float() for k in expected}, strict=True, assign=True)
        except (ValueError, RuntimeError, TypeError, KeyError) as e:
            raise ModelError(
                f"Cannot build the content model from {path.name}: {e}", hint="Pull the content model again."
            ) from e
        final_proj = None
        if proj_w is not None:
            final_proj = torch.nn.Linear(proj_w.shape[1], proj_w.shape[0], bias=proj_b is not None)
            with torch.no_grad():
                final_proj.weight.copy_(proj_w.float())
                if proj_b is not None:
                    final_proj.bias.copy_(proj_b.float())
            final_proj.eval().requires_grad_(False)
        model.eval().requires_grad_(False)
        return cls(model, final_proj, path)

    def blocks(self, precision: str) -> Any:
        """The transformer layers in ``precision``: fp32 and bf16 (autocast) share the loaded ones; int8 is a
        dynamically quantized copy of their linear layers (made once, kept with this encoder)."""
        if precision != "int8":
            return self.model.encoder.layers
        q = self.__dict__.get("_int8")
        if q is None:
            import copy

            import torch

            q = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(self.model.encoder.layers), {torch.nn.Linear}, dtype=torch.qint8
            )
            self.__dict__["_int8"] = q
        return q

    def layer_output(self, wav16k: Any, layer: int, precision: str = "fp32") -> Any:
        """fairseq ``extract_features(output_layer=layer)[0]``: [1, frames, dim]; layer clamped to the model.
        ``precision``: fp32, bf16 (the transformer layers under bf16 autocast) or int8 (their linears quantized)."""
        import contextlib

        import torch

        if isinstance(wav16k, torch.Tensor):
            x = wav16k.detach().float().cpu()
        else:
            x = torch.from_numpy(np.ascontiguousarray(wav16k, dtype=np.float32))
        x = x.reshape(1, -1) if x.dim() == 1 or 1 in x.shape else None
        if x is None:
            raise UsageError("Content features need mono 16 kHz audio (a 1-D array).")
        if x.shape[1] < 400:
            raise UsageError(f"Audio too short for content features ({x.shape[1]} samples at 16 kHz; need 400).")
        m = self.model
        with torch.inference_mode():
            h = m.feature_projection(conv_features(m.feature_extractor, x).transpose(1, 2))
            h = h + m.encoder.pos_conv_embed(h)
            if not self._stable:
                h = m.encoder.layer_norm(h)
            bf16 = precision == "bf16"
            with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                for block in self.blocks(precision)[: max(1, min(int(layer), self.num_layers))]:
                    h = block(h)
        return h.float().clone()  # a normal float32 tensor, usable outside inference mode

    def features(self, wav16k: Any, version: str, precision: str = "fp32") -> Any:
        """[1, frames, 256] for "v1" (layer 9 through final_proj), [1, frames, 768] for "v2" (layer 12)."""
        import torch

        if version not in LAYERS:
            raise UsageError(f"Unknown RVC voice version {version!r}; expected v1 or v2.")
        if version == "v1" and self.final_proj is None:
            raise ModelError(
                f"The content model {self.path.name} lacks final_proj, which v1 voices need.",
                hint="Use hubert_base.pt from the RVC release (it has final_proj), or a v2 voice.",
            )
        h = self.layer_output(wav16k, LAYERS[version], precision)
        if version == "v1":
            with torch.inference_mode():
                h = self.final_proj(h)
            h = h.clone()
        return h
