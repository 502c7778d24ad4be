"""Which number format and device the RVC engine runs in, and why (``singer engines``, ``/metrics``, step meta).

``Settings.precision`` (``SINGER_PRECISION``):

- ``fp32``: everything float32 (output equal to the reference RVC within float rounding);
- ``bf16``: content model's transformer layers under bf16 autocast and the decoder's convolutions in bf16 (the
  output layer, activations and sums stay float32, :mod:`.decoder`); only on CPUs that do bf16 natively
  (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo): emulated bf16 is slower than fp32, so elsewhere it falls back
  to fp32 and says so;
- ``int8``: content model's linear layers dynamically quantized to int8 (decoder fp32: its convolutions have no
  int8 path here);
- ``auto`` (default): on a CPU with native bf16, :data:`AUTO_NATIVE` (the precisions whose output stayed within
  :data:`.quality.THRESHOLDS` of fp32, benchmarks/bench_rvc.py --precision); else fp32. On a GPU: fp32.

Nothing here imports torch: the CPU flags come from /proc/cpuinfo, the thread count from Settings.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import lru_cache

PRECISIONS = ("auto", "fp32", "bf16", "int8")
NATIVE_BF16 = ("amx_bf16", "avx512_bf16")
# auto on a native-bf16 CPU, per part: both met the quality thresholds against fp32 (RESULTS.md, issue 17).
AUTO_NATIVE = {"content": "bf16", "decoder": "bf16"}


@lru_cache(maxsize=1)
def _cpuinfo_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read). Tests monkeypatch this."""
    return _cpuinfo_flags()


def instruction_set(flags: frozenset[str]) -> str:
    """The widest matrix/vector path the flags offer, for reports: amx, avx512_bf16, avx512, avx2 or baseline."""
    for name, flag in (("amx", "amx_bf16"), ("avx512_bf16", "avx512_bf16"), ("avx512", "avx512f"), ("avx2", "avx2")):
        if flag in flags:
            return name
    return "baseline"


def native_bf16(flags: frozenset[str]) -> bool:
    return any(f in flags for f in NATIVE_BF16)


@dataclass(frozen=True)
class RunPath:
    """What the RVC engine runs on: device, content model and decoder precision, threads, and why."""

    device: str
    content: str  # fp32 | bf16 | int8
    decoder: str  # fp32 | bf16
    threads: int
    isa: str
    requested: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.device} · content {self.content} · decoder {self.decoder} · {self.threads} threads · "
            f"{self.isa} ({self.reason})"
        )


def resolve(precision: str = "auto", device: str = "cpu", threads: int = 0) -> RunPath:
    """The path ``precision`` gives on this machine (see the module docstring)."""
    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        from ....errors import UsageError

        raise UsageError(f"Unknown precision {precision!r}.", hint=f"Choose one of: {', '.join(PRECISIONS)}.")
    flags = cpu_flags()
    isa = instruction_set(flags)
    n = int(threads) if threads and int(threads) > 0 else (os.cpu_count() or 1)
    gpu = not str(device).startswith("cpu")
    if gpu:
        isa = "gpu"
        parts, why = ("fp32", "fp32"), "GPU: fp32"
        if precision in ("bf16", "int8"):
            why = f"{precision} is a CPU path; the GPU runs fp32"
    elif precision == "fp32":
        parts, why = ("fp32", "fp32"), "asked for fp32"
    elif precision == "int8":
        parts, why = ("int8", "fp32"), "int8 content model (the decoder has no int8 path: fp32)"
    elif not native_bf16(flags):
        parts = ("fp32", "fp32")
        why = (
            "no native bf16 on this CPU (avx512_bf16 / amx_bf16): fp32"
            if precision == "auto"
            else "bf16 asked, but this CPU has no native bf16 (emulated bf16 is slower): fp32"
        )
    elif precision == "bf16":
        parts, why = ("bf16", "bf16"), "asked for bf16; native on this CPU"
    else:
        parts = (AUTO_NATIVE["content"], AUTO_NATIVE["decoder"])
        why = "auto: native bf16 on this CPU, within the quality thresholds against fp32"
    return RunPath(str(device), parts[0], parts[1], n, isa, precision, why)


def for_settings(settings) -> RunPath:
    return resolve(
        getattr(settings, "precision", "auto"), getattr(settings, "device", "cpu"), getattr(settings, "threads", 0)
    )
