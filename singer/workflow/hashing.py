"""Content hashing for cache keys.

key = hash(step op, step version, canonical params, digests of input files). Never a path string, never a call
position: the same content under another name hits the cache; an edited file misses it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
_digest_memo: dict[tuple[str, int, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """blake2b-256 of a file's bytes, memoised per (path, size, mtime_ns, inode) within a process."""
    p = Path(path)
    st = p.stat()
    memo_key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    hit = _digest_memo.get(memo_key)
    if hit:
        return hit
    h = hashlib.blake2b(digest_size=32)
    with open(p, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    digest = h.hexdigest()
    _digest_memo[memo_key] = digest
    return digest


def canonical(obj: Any) -> Any:
    """Turn params into a JSON-stable form: sorted keys, floats normalised, paths refused."""
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, float):
        if obj.is_integer():
            return int(obj)
        return float(repr(obj))
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Path):
        raise TypeError("paths must be passed as step inputs (hashed by content), not params")
    if hasattr(obj, "model_dump"):
        return canonical(obj.model_dump(mode="json"))
    raise TypeError(f"cannot hash param of type {type(obj).__name__}")


def canonical_json(obj: Any) -> str:
    return json.dumps(canonical(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def step_key(op: str, version: str, params: dict, input_digests: dict[str, str]) -> str:
    payload = canonical_json({"op": op, "version": str(version), "params": params, "inputs": input_digests})
    return hashlib.blake2b(payload.encode(), digest_size=20).hexdigest()
