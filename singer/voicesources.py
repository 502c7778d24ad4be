"""Where an RVC voice comes from: a local ``.pth`` / ``.zip`` / tool folder, or a link, gathered into a staging
folder as one ``.pth`` (+ ``.index``) with the text that came with it.

Links (research and reasons: docs/voices-from-the-wild.md): a direct http(s) URL to a ``.pth`` or a zip; Hugging
Face ``blob/`` links (rewritten to ``resolve/``), ``resolve/`` links, and a repo link (``huggingface.co/<u>/<r>``,
``/tree/<rev>``) read through the Hugging Face API's file list when the repo holds one voice; pixeldrain
``/u/<id>`` (rewritten to ``/api/file/<id>``). mega.nz and Google Drive are refused with what to do instead.
``HF_ENDPOINT`` (huggingface_hub's variable) names another Hugging Face host (a mirror; the tests' loopback).

Downloads go through :func:`singer.modelstore.transfer.download`: the URL policy on every hop, at most
``max_voice_mb``, resumed with Range (within a call, and by the next call for the same link: the partial file is
kept under ``<voices>/.incoming/partial`` only when the network broke off). What a download is (a torch ``.pth``,
itself a zip, or a zip of a voice) is told from its content, not its name. Zips are unpacked by
:func:`singer.archives.extract_zip` and the voice's files picked by :func:`singer.archives.pick_voice_files`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from .archives import Limits, extract_zip, pick_voice_files
from .errors import InputError, ModelError, NetworkUnavailable, UsageError
from .files import sha256_file
from .progress import Hooks, NullHooks

HF_DEFAULT = "https://huggingface.co"
LISTING_MAX = 4 * 1024**2  # a repo's file list, bytes
LISTING_FILES = 1000  # most files of a repo looked at
RESUMES = 2  # a broken transfer is continued this many times within one add
SHA256_RE = re.compile(r"[0-9a-f]{64}")


@dataclass
class Gathered:
    """A voice's files in the staging folder, the text that came with them, and where they came from."""

    pth: Path
    index: Path | None
    readme: str | None = None
    licence: str | None = None
    notes: tuple[str, ...] = ()
    source: dict = field(default_factory=dict)  # url, download_url, sha256, bytes, kind (pth / zip / folder)


def is_url(text: str) -> bool:
    return str(text).strip().lower().startswith(("http://", "https://"))


def hf_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or HF_DEFAULT).rstrip("/")


@dataclass(frozen=True)
class Link:
    """A link as singer will fetch it: a file (``url``), or a Hugging Face repo to list (``repo``, ``rev``)."""

    url: str
    repo: str = ""
    rev: str = "main"


def resolve_link(url: str) -> Link:
    """Rewrite a share link to the URL of its file (or to a Hugging Face repo to list); refuse hosts singer cannot
    read, saying what to do instead."""
    url = url.strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    path = [unquote(p) for p in parts.path.split("/") if p]
    if host.endswith(("mega.nz", "mega.co.nz", "mega.io")) or host in ("drive.google.com", "docs.google.com"):
        site = "MEGA" if "mega" in host else "Google Drive"
        raise UsageError(
            f"Links to {site} cannot be fetched here ({site} needs its own client or a confirmation page).",
            hint="Download the file in a browser, then add it from the file: singer voices add NAME ./file.zip",
        )
    if host in ("pixeldrain.com", "www.pixeldrain.com") and len(path) == 2 and path[0] == "u":
        return Link(f"https://pixeldrain.com/api/file/{quote(path[1])}")
    hf = urlsplit(hf_endpoint())
    if parts.scheme == hf.scheme and parts.netloc.lower() in (hf.netloc.lower(), "www." + hf.netloc.lower()):
        if len(path) >= 5 and path[2] in ("blob", "resolve"):
            rest = "/".join(quote(p) for p in path[3:])
            return Link(f"{hf_endpoint()}/{quote(path[0])}/{quote(path[1])}/resolve/{rest}")
        if len(path) == 2 or (len(path) == 4 and path[2] == "tree"):
            return Link(url, repo=f"{path[0]}/{path[1]}", rev=path[3] if len(path) == 4 else "main")
    return Link(url)


def _file_name(url: str, fallback: str = "download") -> str:
    base = unquote(PurePosixPath(urlsplit(url).path).name)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base).lstrip("._-")[:120] or fallback


class Stager:
    """One add's staging folder (``<voices>/.incoming/<random>``, removed when the add ends) and its downloads."""

    def __init__(self, settings: Any, name: str, hooks: Hooks | None = None):
        self.settings, self.name, self.hooks = settings, name, hooks or NullHooks()
        self.incoming = Path(settings.voices_path) / ".incoming"
        self.max_bytes = int(settings.max_voice_mb * 1e6)
        for attempt in range(3):  # another add may remove an empty .incoming between the two calls
            self.incoming.mkdir(parents=True, exist_ok=True)
            try:
                self.root = Path(tempfile.mkdtemp(prefix="add-", dir=self.incoming))
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def close(self) -> None:
        """Remove the staging folder, and ``.incoming`` itself when nothing else is in it."""
        shutil.rmtree(self.root, ignore_errors=True)
        for folder in (self.incoming / "partial", self.incoming):
            try:
                folder.rmdir()
            except OSError:
                pass

    def offline(self, url: str, why: str) -> NetworkUnavailable:
        return NetworkUnavailable(
            f"Cannot download {url}: {why}",
            hint=f"No network? Download {url} on a machine that has it, copy the file to this one and add it from "
            f"there: singer voices add {self.name} ./<the file>. Adding it again from the link resumes the download.",
        )

    def fetch(self, url: str, name: str | None = None, *, max_bytes: int | None = None) -> tuple[Path, str]:
        """Download ``url`` into the staging folder; (its path, its sha256). A network break keeps the partial
        file for the next try; any other failure removes it."""
        from .modelstore.transfer import download

        partial = self.incoming / "partial"
        part = partial / (hashlib.sha256(url.encode()).hexdigest()[:24] + ".part")
        label = name or _file_name(url)
        run_id = f"voice-{self.name}-{label}"
        self.hooks.on_run_start(run_id, "voices.add", [label])  # one bar per download
        ok, t0 = False, time.monotonic()
        self.hooks.on_step_start(label, False)
        try:
            digest = download(
                self.settings,
                url,
                part,
                label=label,
                offline=lambda why: self.offline(url, why),
                hooks=self.hooks,
                max_bytes=max_bytes or self.max_bytes,
                resumes=RESUMES,
                agent="singer-voices",
            )
            ok = True
        except NetworkUnavailable:
            raise
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        finally:
            if ok:
                self.hooks.on_step_end(label, False, time.monotonic() - t0)
            self.hooks.on_run_end(run_id, ok)
        dest = self.root / "dl" / label
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, dest)
        return dest, digest


def _pinned(sha256: str | None, actual: str, what: str) -> None:
    if sha256 and actual != sha256:
        raise ModelError(
            f"{what} has sha256 {actual}, not the {sha256} you pinned; it was not added.",
            hint="The file changed upstream or was damaged on the way. If you trust the new file, pin its sha256.",
        )


def check_sha256(text: str | None) -> str | None:
    if not text:
        return None
    sha = text.strip().lower()
    if not SHA256_RE.fullmatch(sha):
        raise UsageError(f"--sha256 '{text[:80]}' is not a sha256.", hint="Give 64 hex digits.")
    return sha


def _is_torch_file(path: Path) -> bool:
    """A torch.save file (a zip whose entries sit in one folder with its data.pkl), as opposed to a zip of files."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return True  # not a zip: the checkpoint loader judges it (an old torch pickle, or refused by name)
    tops = {n.split("/", 1)[0] for n in names}
    return len(tops) == 1 and any(n.count("/") == 1 and n.endswith("/data.pkl") for n in names)


def _from_file(stage: Stager, path: Path, want: str, label: str, kind_hint: str = "") -> Gathered:
    """A single file: a ``.pth`` as it is, a zip unpacked and its voice picked."""
    if kind_hint == "pth" or _is_torch_file(path):
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] != b"\x80\x02" and head != b"PK\x03\x04":  # neither torch's zip nor its legacy pickle
            raise ModelError(
                f"{label} is not an RVC voice model, nor a zip holding one.",
                hint="Link or give the .pth file itself (or a zip of it); a web page or a preview is not the file.",
            )
        return Gathered(path, None, source={"kind": "pth"})
    limits = Limits(max_total_bytes=stage.max_bytes)
    folder = extract_zip(path, stage.root, limits=limits, label=label)
    got = pick_voice_files(folder, want=want, label=label)
    return Gathered(got.pth, got.index, got.readme, got.licence, got.notes, {"kind": "zip"})


def _from_local(stage: Stager, text: str, want: str) -> Gathered:
    path = Path(text).expanduser()
    if path.is_dir():
        vf = pick_voice_files(path, want=want, label=path.name)
        return Gathered(vf.pth, vf.index, vf.readme, vf.licence, vf.notes, {"kind": "folder", "file": path.name})
    if not path.is_file():
        raise InputError(
            f"No such file or folder: {text}",
            hint="Give an RVC .pth, a zip holding one, a tool's voice folder, or an http(s) link.",
        )
    got = _from_file(stage, path, want, path.name, "pth" if path.suffix.lower() == ".pth" else "")
    got.source["file"] = path.name
    return got


def _hf_files(stage: Stager, link: Link) -> list[str]:
    """The repo's file names from the Hugging Face API (``/api/models/<repo>/revision/<rev>``)."""
    api = f"{hf_endpoint()}/api/models/{link.repo}" + (f"/revision/{quote(link.rev)}" if link.rev != "main" else "")
    path, _ = stage.fetch(api, "listing.json", max_bytes=LISTING_MAX)
    try:
        siblings = json.loads(path.read_text(encoding="utf-8"))["siblings"]
        names = [str(s["rfilename"]) for s in siblings[:LISTING_FILES]]
    except (ValueError, KeyError, TypeError) as e:
        raise InputError(
            f"Hugging Face did not list the files of {link.repo} ({type(e).__name__}).",
            hint="Link the voice's file instead (its 'resolve' or 'blob' link).",
        ) from None
    finally:
        path.unlink(missing_ok=True)
    return names


def _hf_choose(stage: Stager, names: list[str], link: Link, want: str) -> tuple[str, str | None]:
    """The file (a .pth or, lacking one, a single .zip) and index the repo's listing holds, by the archive rules
    run on a folder of empty stand-ins named like the listing."""
    shadow = stage.root / "listing"
    keep = {}
    for n in names:
        parts = [p for p in n.split("/") if p not in ("", ".")]
        if not parts or ".." in parts or n.startswith("/") or not n.lower().endswith((".pth", ".index", ".zip")):
            continue
        safe = [re.sub(r"[^\w.+-]+", "_", p)[:120] or "_" for p in parts]
        target = shadow.joinpath(*safe)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
        keep[target] = n
    label = f"huggingface.co/{link.repo}"
    if not any(p.suffix.lower() == ".pth" for p in keep):
        zips = [p for p in keep if p.suffix.lower() == ".zip"]
        if len(zips) != 1:
            raise InputError(
                f"'{label}' holds {'no voice' if not zips else f'{len(zips)} zips'}: it does not hold one voice.",
                hint="Link the voice's file instead (its 'resolve' or 'blob' link).",
            )
        return keep[zips[0]], None
    got = pick_voice_files(shadow, want=want, label=label)
    return keep[got.pth], keep[got.index] if got.index else None


def _from_url(stage: Stager, url: str, want: str, sha256: str | None) -> Gathered:
    link = resolve_link(url)
    index_path = None
    if link.repo:
        main, index = _hf_choose(stage, _hf_files(stage, link), link, want)
        base = f"{hf_endpoint()}/{link.repo}/resolve/{quote(link.rev)}/"
        file_url = base + "/".join(quote(p) for p in main.split("/"))
        if index:
            index_path, _ = stage.fetch(base + "/".join(quote(p) for p in index.split("/")), _file_name(index))
    else:
        file_url = link.url
    path, digest = stage.fetch(file_url)
    _pinned(sha256, digest, path.name)
    got = _from_file(stage, path, want, path.name)
    if got.index is None and index_path is not None:
        got.index = index_path
    got.source.update(url=url, download_url=file_url, sha256=digest, bytes=path.stat().st_size)
    return got


@contextmanager
def gathered(
    settings: Any,
    name: str,
    source: str | Path,
    index: str | Path | None = None,
    *,
    sha256: str | None = None,
    local: bool = True,
    hooks: Hooks | None = None,
) -> Iterator[Gathered]:
    """The voice's files from ``source`` (and ``index``, a separate link or file), staged for as long as the block
    runs; removed afterwards, whatever happens. ``local=False`` (HTTP callers): links only, no paths."""
    stage = Stager(settings, name, hooks)
    sha256 = check_sha256(sha256)
    try:
        text = str(source)
        if is_url(text):
            got = _from_url(stage, text, name, sha256)
        elif not local:
            raise UsageError("A voice comes from an http(s) link or an upload here.", hint="Give its link.")
        else:
            got = _from_local(stage, text, name)
            if sha256:
                _pinned(sha256, sha256_file(Path(text).expanduser()) if Path(text).is_file() else "", Path(text).name)
        if index:
            got.index = _index(stage, str(index), local)
        yield got
    finally:
        stage.close()


def _index(stage: Stager, text: str, local: bool) -> Path:
    if is_url(text):
        path, _ = stage.fetch(resolve_link(text).url)
        return path
    path = Path(text).expanduser()
    if not local or not path.is_file():
        raise InputError(
            f"No such index file: {text}" if local else "An index comes from an http(s) link here.",
            hint="Give the .index trained with the model, or leave it out.",
        )
    return path
