"""The model manifest (``models/manifest.toml``): the model files singer knows, where each comes from, its
checksums. Read here; the files themselves are managed by :class:`~singer.modelstore.store.ModelStore`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..config import PACKAGE_DIR
from ..errors import ModelError

KINDS = ("separator", "content", "pitch", "voice", "data")
CHECKSUMS = "checksums.json"
SHA256_HEX = re.compile(r"[0-9a-f]{64}\Z")
_KEYS = {"kind", "engine", "url", "urls", "files", "sha256", "size", "source", "licence", "note", "requires"}


def find_manifest() -> Path:
    for p in (PACKAGE_DIR.parent / "models" / "manifest.toml", PACKAGE_DIR / "_models" / "manifest.toml"):
        if p.is_file():  # source checkout / editable install, then the installed wheel
            return p
    raise ModelError(
        "The model manifest (models/manifest.toml) is missing from this installation.", hint="Reinstall singer."
    )


@dataclass(frozen=True)
class ModelFile:
    rel: str  # path in the models folder (in site-packages for pip entries)
    url: str = ""
    sha256: str = ""
    size: int = 0


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kind: str  # one of KINDS, or "download" for a file pulled by URL
    engine: str
    files: tuple[ModelFile, ...]
    source: str = "url"  # or "pip:<requirement>": files shipped inside an installed package
    licence: str = ""
    note: str = ""
    requires: tuple[str, ...] = ()  # entries pulled along (UVR models need uvr-data)
    extra: dict = field(default_factory=dict, compare=False)  # engine-specific keys (uvr: arch, stage, presets, sdr)


def parse_entry(name: str, d: dict) -> ModelEntry:
    """One ``[models.NAME]`` table; :class:`ModelError` says what is wrong with it."""

    def bad(why: str) -> ModelError:
        return ModelError(f"Model manifest entry '{name}' is invalid: {why}", hint="Fix models/manifest.toml.")

    def per_file(key: str, value, empty) -> list:  # a list with one value per file, or a scalar for one file
        if isinstance(value, list) and len(value) != len(files):
            raise bad(f"'{key}' has {len(value)} items for {len(files)} files")
        if not isinstance(value, list) and len(files) > 1 and value != empty:
            raise bad(f"'{key}' must be a list with one item per file")
        return value if isinstance(value, list) else [value] * len(files)

    if d.get("kind") not in KINDS:
        raise bad(f"kind must be one of {', '.join(KINDS)}")
    files = [d["files"]] if isinstance(d.get("files"), str) else list(d.get("files") or [])
    if not files or any(not r or r.startswith("/") or "\\" in r or ".." in PurePosixPath(r).parts for r in files):
        raise bad(f"files {files} must be relative paths inside the models folder")
    source = d.get("source", "url")
    if source == "url" and "url" not in d and "urls" not in d:
        raise bad("needs 'url' (one file) or 'urls' (one per file)")
    urls = per_file("urls", d.get("urls", d.get("url", "")), "")
    shas = [s.lower() for s in per_file("sha256", d.get("sha256", ""), "")]
    if any(s and not SHA256_HEX.match(s) for s in shas):
        raise bad('sha256 must be 64 hex digits (or "" when unknown)')
    mf = tuple(
        ModelFile(r, u, s, int(z)) for r, u, s, z in zip(files, urls, shas, per_file("size", d.get("size", 0), 0))
    )
    requires = d.get("requires", [])
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise bad("requires must be a list of entry names")
    extra = {k: v for k, v in d.items() if k not in _KEYS}
    return ModelEntry(
        name,
        d["kind"],
        d.get("engine", ""),
        mf,
        source,
        d.get("licence", ""),
        d.get("note", ""),
        tuple(requires),
        extra,
    )
