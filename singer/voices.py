"""The voice store: bundled voices (``singer/data/voices``) plus the user's own (``settings.voices_path``).

A voice is one manifest ``<name>.json``: ``{"name", "kind", "meta": {...}, "profile": {...}}``. ``kind`` says which
converter family can sing it (each converter declares its ``voice_kinds``): ``"profile"`` (a
:class:`~singer.engines.converters.world.profile.VoiceProfile`, sung by ``world``); other kinds (``"rvc"``: a model
file and index beside the manifest, listed in ``"files"``) plug in through :data:`LOADERS` and :meth:`Voice.load`
without changing the store. ``Voice.files`` are the files whose content defines the voice; the workflow hashes them
into cache keys. Writes are atomic; names are safe slugs.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import inspect
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import PACKAGE_DIR, Settings
from .errors import InputError, ModelError, VoiceNotFound
from .files import atomic_write_json

if TYPE_CHECKING:  # the profile kind's code lives with the world and knn engines; imported when a profile is used
    from .engines.converters.knn.pool import FramePool
    from .engines.converters.world.profile import VoiceProfile

BUNDLED_DIR = PACKAGE_DIR / "data" / "voices"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")  # whole names only: NAME_RE.fullmatch ("$" lets "ayana\n" in)
MIN_SAMPLE_SECONDS = 2.0


def _load_profile(voice: Voice) -> VoiceProfile:
    from .engines.converters.world.profile import VoiceProfile

    return VoiceProfile.from_dict(voice.manifest["profile"])


def _load_rvc(voice: Voice) -> Any:
    from .engines.converters.rvc.voice import load_voice

    return load_voice(voice)


LOADERS: dict[str, Callable[[Voice], Any]] = {"profile": _load_profile, "rvc": _load_rvc}


@dataclass
class Voice:
    name: str
    kind: str
    files: list[Path]
    meta: dict = field(default_factory=dict)
    bundled: bool = False
    manifest: dict = field(default_factory=dict, repr=False)

    def load(self) -> Any:
        """The voice's model: a VoiceProfile for ``kind == "profile"``."""
        loader = LOADERS.get(self.kind)
        if loader is None:
            raise ModelError(
                f"Voice '{self.name}' is of kind '{self.kind}', which this version cannot use.",
                hint=f"Known kinds: {', '.join(LOADERS)}. Upgrade singer or remove the voice.",
            )
        try:
            return loader(self)
        except (KeyError, ValueError, TypeError) as e:
            raise ModelError(
                f"Voice '{self.name}' is damaged: {e}", hint=f"Re-create it or delete {self.files[0]}."
            ) from e

    def register(self) -> Any:
        """The voice's :class:`~singer.register.Register` (singing range, speaking pitch, where each came from), or
        None when it has none (an RVC voice added without --range, --sample or --gender)."""
        model = self.load()
        reg = getattr(model, "register", None)
        return reg() if callable(reg) else reg

    def to_dict(self) -> dict:
        try:
            reg = self.register()
        except ModelError:
            reg = None
        return {
            "name": self.name,
            "kind": self.kind,
            "bundled": self.bundled,
            "files": [str(p) for p in self.files],
            **self.meta,
            "register": reg.to_dict() if reg is not None else None,
        }


def write_profile_voice(
    path: Path, name: str, profile: VoiceProfile, meta: dict, pool: FramePool | None = None
) -> None:
    """Write a profile voice manifest atomically; ``meta`` gets the profile's summary (range, formant scale...).
    A frame pool (the knn converter's) is written first, beside it, and listed in the manifest's ``files``."""

    profile.provenance.setdefault("name", name)
    meta = {**meta, **profile.summary()}
    manifest: dict[str, Any] = {"name": name, "kind": "profile", "meta": meta, "profile": profile.to_dict()}
    if pool is not None:
        from .engines.converters.knn.pool import pool_file, save_pool

        manifest["pool"] = save_pool(pool_file(Path(path)), pool)
        manifest["files"] = [manifest["pool"]["file"]]
    atomic_write_json(Path(path), manifest)


def validate_name(name: str) -> str:
    """Return ``name`` if it is a safe slug, else raise InputError with a suggestion."""
    if isinstance(name, str) and NAME_RE.fullmatch(name):
        return name
    suggestion = re.sub(r"[^a-z0-9_-]+", "-", str(name).lower()).strip("-_")[:40] or "my-voice"
    raise InputError(
        f"Invalid voice name {name!r}.",
        hint=f"Use 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit (e.g. {suggestion!r}).",
    )


def _changes(param: str) -> Callable:
    """A VoiceStore method that creates or replaces the voice named by its argument ``param``: run under
    :meth:`VoiceStore.changing` for that name."""

    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(self: VoiceStore, *args: Any, **kwargs: Any) -> Any:
            with self.changing(sig.bind(self, *args, **kwargs).arguments[param]):
                return fn(self, *args, **kwargs)

        return inner

    return wrap


def _merged_pool(voices: Sequence[Voice], weights: Sequence[float]) -> FramePool | None:
    """The parents' frame pools blended by weight; None when a parent has none (made before pools)."""
    from .engines.converters.knn.pool import merge_pools, voice_pool

    try:
        pools = [voice_pool(v) for v in voices]
    except ValueError as e:
        raise ModelError(f"Cannot merge: a voice is damaged: {e}", hint="Re-create that voice.") from None
    if any(p is None for p in pools):
        return None
    return merge_pools([(p, w) for p, w in zip(pools, weights) if p is not None], names=[v.name for v in voices])


class VoiceStore:
    """Lists, loads, creates, merges and removes voices."""

    def __init__(self, settings: Settings, bundled_dir: Path | None = None):
        self.settings = settings
        self.user_dir = Path(settings.voices_path)
        self.bundled_dir = Path(bundled_dir) if bundled_dir else BUNDLED_DIR

    # -- reading ---------------------------------------------------------------------------------------
    def _read(self, path: Path, bundled: bool) -> Voice | None:
        try:
            m = json.loads(path.read_text(encoding="utf-8"))
            name, kind = m["name"], m.get("kind", "profile")
        except (OSError, ValueError, KeyError, TypeError):
            return None  # not a voice manifest; ignored by list(), reported by get()
        extra = [path.parent / f for f in m.get("files", [])]
        meta = {**m.get("meta", {}), "provenance": m.get("profile", {}).get("provenance", m.get("provenance", {}))}
        return Voice(name=name, kind=kind, files=[path, *extra], meta=meta, bundled=bundled, manifest=m)

    def _scan(self, folder: Path, bundled: bool) -> dict[str, Voice]:
        out: dict[str, Voice] = {}
        if folder.is_dir():
            for p in sorted(folder.glob("*.json")):
                v = self._read(p, bundled)
                if v is not None and v.name == p.stem:
                    out[v.name] = v
        return out

    def list(self) -> builtins.list[Voice]:
        """Bundled voices first, then user voices (a user voice never hides a bundled one)."""
        bundled = self._scan(self.bundled_dir, True)
        user = {k: v for k, v in self._scan(self.user_dir, False).items() if k not in bundled}
        return [*bundled.values(), *user.values()]

    def names(self) -> builtins.list[str]:
        return [v.name for v in self.list()]

    def get(self, name: str) -> Voice:
        for folder, bundled in ((self.bundled_dir, True), (self.user_dir, False)):
            path = folder / f"{name}.json"
            if isinstance(name, str) and NAME_RE.fullmatch(name) and path.is_file():
                voice = self._read(path, bundled)
                if voice is None:
                    raise ModelError(
                        f"Voice '{name}' is damaged (unreadable {path.name}).", hint=f"Delete or re-create {path}."
                    )
                return voice
        raise VoiceNotFound(f"Unknown voice '{name}'.", hint=f"Available voices: {', '.join(self.names()) or 'none'}.")

    # -- writing ---------------------------------------------------------------------------------------
    def _check_new(self, name: str, overwrite: bool) -> Path:
        validate_name(name)
        if (self.bundled_dir / f"{name}.json").exists():
            raise InputError(f"'{name}' is a bundled voice.", hint="Choose another name for your voice.")
        path = self.user_dir / f"{name}.json"
        if path.exists() and not overwrite:
            raise InputError(f"Voice '{name}' already exists.", hint="Choose another name, or remove it first.")
        return path

    def _write(self, path: Path, name: str, profile: VoiceProfile, meta: dict, pool: FramePool | None = None) -> Voice:
        write_profile_voice(path, name, profile, meta, pool)
        voice = self._read(path, False)
        assert voice is not None
        return voice

    @contextlib.contextmanager
    def changing(self, name: str) -> Iterator[None]:
        """Held while voice ``name`` is created or replaced: two changes of one name (two threads, two processes)
        run one after the other, so the second sees the first's voice instead of mixing files with it."""
        from filelock import FileLock

        validate_name(name)
        locks = Path(self.settings.home) / "locks" / "voices"  # outside the store: a lock is not a voice's file
        locks.mkdir(parents=True, exist_ok=True)
        with FileLock(str(locks / f"{name}.lock")):
            yield

    @_changes("name")
    def create(
        self,
        name: str,
        from_paths: Sequence[str | Path],
        *,
        description: str = "",
        gender: str = "",
        licence: str = "",
        overwrite: bool = False,
    ) -> Voice:
        """Learn a profile from sample recordings (any format ffmpeg reads) and store it as a user voice."""
        path = self._check_new(name, overwrite)
        from . import audio

        paths = [Path(p) for p in from_paths]
        for p in paths:
            info = audio.probe(p)
            if info.duration < 0.5:
                raise InputError(
                    f"Sample {p.name} is too short ({info.duration:.1f} s).",
                    hint=f"Give recordings with at least {MIN_SAMPLE_SECONDS:.0f} s of voice in total.",
                )
        from .engines.converters.knn.pool import learn_pool
        from .engines.converters.world.profile import learn_profile

        profile = learn_profile(
            paths, min_voiced_seconds=MIN_SAMPLE_SECONDS, provenance={"licence": licence} if licence else None
        )
        pool = learn_pool(paths, name=name, min_voiced_seconds=MIN_SAMPLE_SECONDS)
        meta = {
            "description": description or f"learned from {len(paths)} sample(s)",
            "gender": gender,
            "licence": licence,
        }
        return self._write(path, name, profile, meta, pool)

    @_changes("new_name")
    def merge(
        self,
        names: Sequence[str],
        weights: Sequence[float] | None,
        new_name: str,
        *,
        description: str = "",
        overwrite: bool = False,
    ) -> Voice:
        """Weighted merge of profile voices into a new user voice (weights default to equal)."""
        path = self._check_new(new_name, overwrite)
        weights = list(weights) if weights is not None else [1.0] * len(names)
        if len(weights) != len(names) or not names:
            raise InputError(f"Got {len(names)} voices and {len(weights)} weights.", hint="Give one weight per voice.")
        voices = [self.get(n) for n in names]
        kinds = {v.kind for v in voices}
        if kinds == {"rvc"}:
            from .engines.converters.rvc import voice as rvc_voice

            return rvc_voice.merge(self, voices, weights, new_name, description=description, overwrite=overwrite)
        for v in voices:
            if v.kind != "profile":
                raise InputError(
                    f"Cannot merge '{v.name}' ({v.kind}) with {', '.join(sorted(kinds - {v.kind}))} voices.",
                    hint="Merge voices of one kind: RVC models with RVC models, profiles with profiles.",
                )
        from .engines.converters.world.profile import merge_profiles

        profile = merge_profiles([(v.load(), w) for v, w in zip(voices, weights)], names=list(names))
        pool = _merged_pool(voices, weights)
        genders = {v.meta.get("gender", "") for v in voices}
        licences = sorted({v.meta.get("licence", "") for v in voices} - {""})
        desc = description or "merge of " + " + ".join(f"{w:g}*{n}" for n, w in zip(names, weights))
        meta = {
            "description": desc,
            "gender": genders.pop() if len(genders) == 1 else "mixed",
            "licence": "; ".join(licences),
        }
        return self._write(path, new_name, profile, meta, pool)

    @_changes("name")
    def add_rvc(
        self,
        name: str,
        pth: str | Path,
        index: str | Path | None = None,
        *,
        vocal_range: str | None = None,
        samples: Sequence[str | Path] = (),
        sample_kind: str = "auto",
        gender: str = "",
        description: str = "",
        licence: str = "",
        overwrite: bool = False,
        sha256: str | None = None,
        local: bool = True,
        hooks: Any = None,
    ) -> Voice:
        """Add an RVC voice from ``pth``: a ``.pth``, a zip holding one, a folder another tool left (RVC WebUI,
        Applio, ultimate-rvc), or an http(s) link to any of the files (:mod:`singer.voicesources`); ``index`` is
        its ``.index`` when it comes separately. ``sha256`` pins the file ``pth`` names. ``local=False``: links
        only (HTTP callers). Its register (singing range and speaking pitch) comes from ``vocal_range`` (a singing
        range, e.g. "A3-E5"), else ``samples`` (sung or spoken: ``sample_kind``, "auto" tells them apart), else
        ``gender`` (typical figures); see :mod:`singer.register`. A readme and licence that came with the voice
        become its description and licence unless given."""
        from .engines.converters.rvc import voice as rvc_voice
        from .voicesources import gathered

        self._check_new(name, overwrite)  # before anything is downloaded
        reg, heard = None, None
        if vocal_range:
            reg = rvc_voice.register_from_range(vocal_range)
        elif samples:
            reg, heard = rvc_voice.register_from_samples([Path(p) for p in samples], sample_kind)
        with gathered(self.settings, name, pth, index, sha256=sha256, local=local, hooks=hooks) as got:
            readme = (got.readme or "").strip()
            return rvc_voice.add(
                self,
                name,
                got.pth,
                got.index,
                register=reg,
                samples=heard,
                gender=gender,
                description=(description or readme.splitlines()[0][:200]) if readme else description,
                licence=licence or (got.licence or "")[:2000],
                overwrite=overwrite,
                source={
                    **got.source,
                    **({"readme": readme} if readme else {}),
                    **({"notes": list(got.notes)} if got.notes else {}),
                },
            )

    def verify(self, name: str) -> dict:
        """Check a voice's files against the sha256 recorded when it was added."""
        voice = self.get(name)
        if voice.kind == "rvc":
            from .engines.converters.rvc import voice as rvc_voice

            return rvc_voice.verify(voice)
        voice.load()
        return {f.name: {"ok": True} for f in voice.files}

    def remove(self, name: str) -> None:
        """Delete a user voice and the files its manifest lists; bundled voices cannot be removed."""
        validate_name(name)
        if (self.bundled_dir / f"{name}.json").exists():
            raise InputError(
                f"'{name}' is a bundled voice and cannot be removed.", hint="Only voices you created can be removed."
            )
        voice = self.get(name)
        for f in voice.files:
            if f.resolve().parent == self.user_dir.resolve():
                f.unlink(missing_ok=True)
