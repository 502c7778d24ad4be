"""Voices as they are shared: safe zip extraction, and picking a voice's files out of a zip or a tool's folder.

:func:`extract_zip` unpacks into a fresh temporary folder, inflating each entry itself and counting the bytes it
writes against the compressed bytes it read, so a header that lies about sizes is caught while streaming.
:func:`pick_voice_files` chooses the .pth and .index (rules and sources: docs/voices-from-the-wild.md). A refusal is
an :class:`InputError` naming the archive by its file name only; on any failure nothing extracted is left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import struct
import tempfile
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from singer.errors import InputError

RATIO_FLOOR = 1024**2  # text compresses well: the ratio applies once an entry has given this many bytes
CHUNK = 1024**2  # most bytes inflated at once
FEED = 64 * 1024  # compressed bytes read at once
REZIP = "Make a new zip of the voice's own files (its .pth and .index) and try again."
AGAIN = "Download it again."
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, 22 bytes, name length, extra length
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class Limits:
    """What one archive may hold. Real voices barely compress (fp16 weights, float32 index vectors: ~1.1x)."""

    max_total_bytes: int = 2 * 1024**3  # a ~60 MB .pth plus an index of up to ~1 GB, with room to spare
    max_entries: int = 1000
    max_ratio: float = 100.0  # most an entry may grow over the compressed bytes it was read from


@dataclass(frozen=True)
class Member:
    """One entry that passed the checks: its safe relative path, and its header (whose sizes are only claims)."""

    parts: tuple[str, ...]
    info: zipfile.ZipInfo = field(repr=False, compare=False)
    room: int = field(repr=False, compare=False)  # bytes up to the next entry: the most its data can take


def _refuse(label: str, what: str, hint: str = REZIP) -> InputError:
    return InputError(f"The zip '{label}' {what}", hint=hint)


def _shown(name: str) -> str:
    clean = "".join(c if c.isprintable() else "?" for c in name)
    return repr(clean if len(clean) <= 80 else clean[:77] + "...")


def _checked(info: zipfile.ZipInfo, label: str, limits: Limits) -> tuple[str, ...]:
    """The entry's safe path parts (backslashes count as separators, as old Windows tools wrote them)."""
    name, kind = _shown(info.filename), stat.S_IFMT(info.external_attr >> 16)
    unified = info.filename.replace("\\", "/")
    parts = tuple(p for p in unified.split("/") if p not in ("", "."))
    if unified.startswith("/") or _DRIVE.match(unified) or ".." in parts:
        raise _refuse(label, f"has an entry that would land outside its folder, {name}; it is refused.")
    if not parts or any("\x00" in p or len(os.fsencode(p)) > 255 for p in parts):
        raise _refuse(label, f"has an entry whose name cannot be stored, {name}.")
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        what = "symbolic link" if kind == stat.S_IFLNK else "special file"
        raise _refuse(label, f"has a {what}, {name}; only plain files and folders are taken.")
    if info.flag_bits & 0x1:
        raise _refuse(label, "is protected by a password.", hint="Unzip it with its password, then add the folder.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise _refuse(label, f"uses a compression method (number {info.compress_type}) that is not read here.")
    if info.file_size > RATIO_FLOOR and info.file_size > limits.max_ratio * max(info.compress_size, 1):
        raise _refuse(label, f"looks like a zip bomb: {name} would grow over {limits.max_ratio:g}x.")
    return parts


def _members(zf: zipfile.ZipFile, archive_size: int, label: str, limits: Limits) -> list[Member]:
    """Every entry checked before anything is written; each one's room runs to the next entry's header."""
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise _refuse(label, f"has {len(infos)} entries; at most {limits.max_entries} are allowed.")
    offsets = sorted(i.header_offset for i in infos)
    if len(set(offsets)) != len(offsets):
        raise _refuse(label, "has entries that share their data (a zip bomb); it is refused.")
    rooms = {start: end - start for start, end in zip(offsets, offsets[1:] + [archive_size], strict=True)}
    members: list[Member] = []
    files: dict[str, str] = {}
    dirs: set[str] = set()
    for info in infos:
        parts = _checked(info, label, limits)
        key = [unicodedata.normalize("NFC", p).casefold() for p in parts]
        k = "/".join(key)
        dirs.update("/".join(key[:i]) for i in range(1, len(key) + info.is_dir()))
        if not info.is_dir() and k in files:
            raise _refuse(label, f"has two entries that would be one file: {files[k]} and {_shown(info.filename)}.")
        if not info.is_dir():
            files[k] = _shown(info.filename)
        members.append(Member(parts, info, rooms[info.header_offset]))
    if clash := next((files[k] for k in files if k in dirs), None):
        raise _refuse(label, f"has an entry, {clash}, that is both a file and a folder.")
    if (declared := sum(i.file_size for i in infos)) > limits.max_total_bytes:
        raise _refuse(label, f"would unpack to {declared / 1e6:.0f} MB; {limits.max_total_bytes / 1e6:.0f} MB at most.")
    return members


def _data(f: BinaryIO, m: Member, label: str) -> Iterator[tuple[bytes, int]]:
    """The entry's bytes, inflated here, each chunk with how many compressed bytes were read so far."""
    damaged = _refuse(label, f"is damaged ({_shown(m.info.filename)} cannot be read).", hint=AGAIN)
    f.seek(m.info.header_offset)
    head = f.read(_LOCAL_HEADER.size)
    sig, name_len, extra_len = _LOCAL_HEADER.unpack(head) if len(head) == _LOCAL_HEADER.size else (b"", 0, 0)
    room = m.room - _LOCAL_HEADER.size - name_len - extra_len
    if sig != b"PK\x03\x04" or room < 0:
        raise damaged
    f.seek(name_len + extra_len, os.SEEK_CUR)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if m.info.compress_type == zipfile.ZIP_DEFLATED else None
    read, full = 0, False  # full: the last call filled CHUNK, so zlib may hold output without more input
    while inflater is None or not inflater.eof:
        data = inflater.unconsumed_tail if inflater else b""
        if not data and not full:
            left = (room if inflater else min(room, m.info.compress_size)) - read
            if left <= 0 and inflater is None:
                return
            if left <= 0 or not (data := f.read(min(FEED, left))):
                raise damaged
            read += len(data)
        try:
            out = inflater.decompress(data, CHUNK) if inflater else data
        except zlib.error as e:
            raise damaged from e
        full = inflater is not None and len(out) == CHUNK
        yield out, read


def _write(f: BinaryIO, m: Member, target: Path, label: str, limits: Limits, budget: int) -> int:
    """Write one entry, counting what it really gives; returns its size. ``budget``: bytes left under the cap."""
    written, crc = 0, 0
    with open(target, "xb") as out:
        for chunk, read in _data(f, m, label):
            written += len(chunk)
            if written > budget:
                raise _refuse(label, f"unpacks to more than the {limits.max_total_bytes / 1e6:.0f} MB allowed.")
            if written > RATIO_FLOOR and written > limits.max_ratio * read:
                raise _refuse(label, f"is a zip bomb: {_shown(m.info.filename)} grows over {limits.max_ratio:g}x.")
            crc = zlib.crc32(chunk, crc)
            out.write(chunk)
    if written != m.info.file_size or crc != m.info.CRC:
        raise _refuse(label, f"does not match its own header ({_shown(m.info.filename)}); it is refused.")
    return written


def extract_zip(path: Path, dest_parent: Path, *, limits: Limits = Limits(), label: str | None = None) -> Path:
    """Unpack ``path`` into a new folder under ``dest_parent`` and return it (the caller removes it when done).
    Refused, nothing left behind: absolute names, ``..``, drive letters (backslashes count as separators), links and
    special entries, names that collide once case and Unicode form are set aside, entries sharing data, passwords,
    methods other than stored/deflate, and anything over ``limits``. ``label`` names the archive in messages.
    """
    label = label or path.name
    root = Path(tempfile.mkdtemp(prefix="unzip-", dir=dest_parent))
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
            total = 0
            for m in _members(zf, os.fstat(f.fileno()).st_size, label, limits):
                target = root.joinpath(*m.parts)
                (target if m.info.is_dir() else target.parent).mkdir(parents=True, exist_ok=True)
                if not m.info.is_dir():
                    total += _write(f, m, target, label, limits, limits.max_total_bytes - total)
        return root
    except (zipfile.BadZipFile, EOFError) as e:
        shutil.rmtree(root, ignore_errors=True)
        raise _refuse(label, "is not a zip archive, or is damaged.", hint=AGAIN) from e
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


@dataclass(frozen=True)
class VoiceFiles:
    """What a voice's folder holds: the model, its index, and the text that came with it."""

    pth: Path
    index: Path | None
    readme: str | None = None  # the description its author wrote (readme, info, credits...)
    licence: str | None = None
    notes: tuple[str, ...] = ()  # what was left out, and why, in words for the user


_TRAINING = re.compile(r"^[GD]_\d+$")  # RVC and Applio training checkpoints: generator/discriminator + optimizer
_BASE = re.compile(r"^(f0)?[GD](32|40|48)k$", re.IGNORECASE)  # pretrained bases in a whole tool's folder
_EPOCH = re.compile(r"(_e\d+_s\d+|_\d+e_\d+s|_best|_\d+)$", re.IGNORECASE)  # RVC, Applio, ultimate-rvc suffixes
_TRAINED_INDEX = re.compile(r"(^|_)trained_", re.IGNORECASE)  # the IVF quantiser kept for training, no vectors
_README = re.compile(r"^(read[ _-]?me|info|credits?|about|description)\b", re.IGNORECASE)
_LICENCE = re.compile(r"^(licen[cs]e|copying)\b", re.IGNORECASE)
_JUNK = ("thumbs.db", "desktop.ini")
_TEXT = ("", ".txt", ".md", ".rst")
TEXT_CAP = 16 * 1024
TRAINING_HINT = "Use the inference .pth: RVC's weights/<name>.pth, Applio's logs/<name>/<name>_<N>e_<S>s.pth."


def _files(folder: Path) -> list[Path]:
    """Every plain file under ``folder``, in a stable order; hidden, __MACOSX and links left out."""
    found: list[Path] = []
    for top, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(names):
            p = Path(top, name)
            if not name.startswith(".") and name.lower() not in _JUNK and p.is_file() and not p.is_symlink():
                found.append(p)
    return found


def _listed(paths: list[Path], folder: Path) -> str:
    names = [p.relative_to(folder).as_posix() for p in paths]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _choose_pth(pths: list[Path], training: list[Path], folder: Path, want: str | None, label: str) -> Path:
    if not pths:
        what = f"only training checkpoints ({_listed(training, folder)})" if training else "no voice model (.pth)"
        raise InputError(f"'{label}' holds {what}.", hint=TRAINING_HINT if training else "A voice is an RVC .pth file.")
    named = [p for p in pths if want and p.stem.casefold() == want.casefold()]
    if len(pths) == 1 or len(named) == 1:
        return pths[0] if len(pths) == 1 else named[0]
    raise InputError(
        f"'{label}' holds {len(pths)} voice models: {_listed(pths, folder)}.",
        hint="Say which one to use by its file name (without .pth), or keep only that one.",
    )


def _choose_index(indexes: list[Path], pth: Path, folder: Path, want: str | None, label: str) -> Path | None:
    """Prefer an ``added_*`` index, then one beside the model or named like it; a tie is an error."""
    names = {n.casefold() for n in (_EPOCH.sub("", pth.stem), want) if n}

    def rank(p: Path) -> tuple[bool, bool]:
        related = p.parent == pth.parent or any(n in p.name.casefold() for n in names)
        return "added" not in p.name.casefold(), not related

    tied = [p for p in indexes if rank(p) == min(map(rank, indexes))]
    if len(tied) > 1:
        raise InputError(
            f"'{label}' holds {len(tied)} indexes that could go with {pth.name}: {_listed(tied, folder)}.",
            hint="Keep the one made with this model (RVC names it added_..._<name>_v2.index) and try again.",
        )
    return tied[0] if tied else None


def _text(path: Path) -> str | None:
    with open(path, "rb") as f:
        raw = f.read(TEXT_CAP + 1)
    text = "" if b"\x00" in raw else raw[:TEXT_CAP].decode("utf-8-sig", errors="replace").strip()
    return (text + (" [...]" if len(raw) > TEXT_CAP else "")) if text else None


def pick_voice_files(folder: Path, *, want: str | None = None, label: str | None = None) -> VoiceFiles:
    """Choose the voice's .pth and .index under ``folder`` (nested too); keep the readme and licence beside the
    model or above it. ``want``, the voice's name, settles a choice between several .pth (an RVC WebUI folder holds
    one per voice) and helps match the index. ``label`` names the source in messages (default: the folder's name).
    """
    label = label or folder.name
    files = _files(folder)
    pths = [p for p in files if p.suffix.lower() == ".pth"]
    training = [p for p in pths if _TRAINING.match(p.stem)]
    bases = [p for p in pths if _BASE.match(p.stem) or "pretrained" in p.relative_to(folder).parent.as_posix().lower()]
    pth = _choose_pth([p for p in pths if p not in training and p not in bases], training, folder, want, label)
    indexes = [p for p in files if p.suffix.lower() == ".index"]
    trained = [p for p in indexes if _TRAINED_INDEX.search(p.name)]
    usable = [p for p in indexes if p not in trained]
    index = _choose_index(usable, pth, folder, want, label)
    texts = [p for p in files if p.suffix.lower() in _TEXT and p.parent in (pth.parent, *pth.parent.parents)]
    licences = [p for p in texts if _LICENCE.match(p.name)]
    others = [p for p in texts if p not in licences]
    readmes = [p for p in texts if _README.match(p.name)] or (others if len(others) == 1 else [])
    notes = [
        f"Left out {what}: {_listed(paths, folder)} ({why})."
        for what, paths, why in (
            ("training checkpoints", training, "they resume training; the voice does not need them"),
            ("pretrained base models", bases, "they are what voices are trained from"),
            ("the training index", trained, "RVC keeps it to build the real index; it holds no voice"),
            ("other indexes", [p for p in usable if p != index], "an added_* index made with this model wins"),
            ("ONNX models", [p for p in files if p.suffix.lower() == ".onnx"], "only .pth voices are read"),
        )
        if paths
    ]
    if index is None:
        notes.append("No retrieval index came with it: the voice sings without one (a little less like its owner).")
    readme, licence = (_text(ps[0]) if ps else None for ps in (readmes, licences))
    return VoiceFiles(pth, index, readme, licence, tuple(notes))
