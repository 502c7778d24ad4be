"""Loading torch pickles without running code from them.

``load_weights`` is ``torch.load(weights_only=True)``: tensors, dicts, lists, numbers and strings only. That is all
an RVC ``.pth`` or an ``rmvpe.pt`` holds. fairseq checkpoints (``hubert_base.pt``) also pickle their training
configuration as ``argparse.Namespace`` / omegaconf objects; ``load_with_stubs`` reads those too, but never calls
anything a file names: every global outside torch's tensor-rebuild functions becomes an inert :class:`Stub` that
only records its arguments and state, and globals from modules that can reach the system (``os``, ``subprocess``,
``builtins``' eval/exec, ...) are refused outright. Either way a crafted file cannot execute code.
"""

from __future__ import annotations

import pickle
import types
from pathlib import Path
from typing import Any

from ....errors import ModelError

# Modules whose classes may appear in fairseq/omegaconf checkpoint configs; they load as inert stubs.
STUB_MODULES = ("argparse", "omegaconf", "fairseq", "enum", "typing", "collections", "pathlib", "dataclasses")
# Exact globals torch's own pickles need to rebuild tensors.
TORCH_GLOBALS = {
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch", "Size"),
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_parameter_with_state"),
}
TORCH_STORAGES = {
    "FloatStorage",
    "HalfStorage",
    "DoubleStorage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "BFloat16Storage",
    "UntypedStorage",
}
SAFE_BUILTINS = {"set", "frozenset", "list", "dict", "tuple", "int", "float", "str", "bool", "slice", "complex"}


class Stub:
    """Stands in for a class from a checkpoint's config; holds what the pickle gave it, calls nothing."""

    _stub_name = "?"

    def __init__(self, *args: Any, **kwargs: Any):
        self.args, self.kwargs, self.state = args, kwargs, None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # dict subclasses (omegaconf) are filled item by item
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:  # list subclasses
        self.__dict__.setdefault("items_list", []).append(value)

    def extend(self, values: Any) -> None:
        self.__dict__.setdefault("items_list", []).extend(values)

    def to_plain(self) -> Any:
        """Best-effort plain value: a Namespace's attributes, a DictConfig's content."""
        return plain(self.state if self.state is not None else self.__dict__.get("items", {}))


def plain(obj: Any, depth: int = 0) -> Any:
    """Turn stubs (and containers of them) into dicts/lists of plain values."""
    if depth > 20:
        return None
    if isinstance(obj, Stub):
        if obj.state is not None:
            return plain(obj.state, depth + 1)
        if "items" in obj.__dict__:
            return plain(obj.__dict__["items"], depth + 1)
        return plain(list(obj.args), depth + 1) if obj.args else None
    if isinstance(obj, dict):
        # omegaconf pickles keep the content under "_content"
        if "_content" in obj and isinstance(obj["_content"], dict | list):
            return plain(obj["_content"], depth + 1)
        if "_val" in obj:
            return plain(obj["_val"], depth + 1)
        return {str(k): plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v, depth + 1) for v in obj]
    return obj


def _stub_class(module: str, name: str) -> type:
    return type(name, (Stub,), {"_stub_name": f"{module}.{name}"})


class _StubUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in TORCH_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" and name in TORCH_STORAGES:
            return super().find_class(module, name)
        if (
            module in ("torch", "torch.serialization")
            and name in ("device", "dtype")
            or module == "torch"
            and name in ("float32", "float16", "bfloat16", "int64")
        ):
            return super().find_class(module, name)
        if module == "builtins" and name in SAFE_BUILTINS:
            return super().find_class(module, name)
        root = module.split(".")[0]
        if root in STUB_MODULES:
            return _stub_class(module, name)
        raise pickle.UnpicklingError(f"refusing global {module}.{name}")


stub_pickle = types.ModuleType("singer_stub_pickle")
stub_pickle.Unpickler = _StubUnpickler  # type: ignore[attr-defined]
stub_pickle.load = pickle.load  # type: ignore[attr-defined]
stub_pickle.__name__ = "pickle"


def _refused(path: Path, e: Exception) -> ModelError:
    lines = [ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "refusing" in ln]
    why = lines[0] if lines else str(e).splitlines()[0]
    return ModelError(
        f"Refused to load {path.name}: it is not a plain weights file ({why}).",
        hint="Model files must hold tensors only; a file that asks to run code is never loaded. "
        "Get the model from a source you trust.",
    )


def check_container(path: Path) -> None:
    """Refuse a zip-format checkpoint torch would inflate into memory: torch saves every record stored (never
    compressed), so a deflated record, or records that add up to more than the file, can only be a memory bomb
    (torch's reader inflates each record whole, whatever it grows to)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return  # not a zip: a legacy pickle, or damaged (torch says which)
    size = path.stat().st_size
    if any(i.compress_type != zipfile.ZIP_STORED for i in infos) or sum(i.file_size for i in infos) > size:
        raise ModelError(
            f"Refused to load {path.name}: its records are compressed or claim more than the file holds "
            "(torch never saves them so; unpacking them could take any amount of memory).",
            hint="Use the .pth as RVC WebUI/Applio saved it (torch.save), not a re-packed copy.",
        )


def load_weights(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with errors as ModelError naming the file."""
    import torch

    path = Path(path)
    check_container(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refused(path, e) from e
    except (RuntimeError, EOFError, OSError, ValueError, KeyError) as e:
        raise ModelError(
            f"Cannot read {path.name}: {e}", hint="The file is damaged or not a torch checkpoint; download it again."
        ) from e


def load_with_stubs(path: str | Path) -> Any:
    """Load a checkpoint whose config holds foreign classes (fairseq); they come back as inert stubs."""
    import torch

    path = Path(path)
    check_container(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=stub_pickle)
    except pickle.UnpicklingError as e:
        raise _refused(path, e) from e
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, AttributeError, TypeError) as e:
        raise ModelError(
            f"Cannot read {path.name}: {e}", hint="The file is damaged or not a torch checkpoint; download it again."
        ) from e
