"""singer: find a song, separate it, sing it again in a character's voice, remix.

The public API is :class:`singer.api.Singer` with :class:`singer.api.CoverRequest`; both are imported lazily so
``import singer`` (and ``singer --help``) stay fast.
"""

from __future__ import annotations

from .version import __version__

__all__ = ["CoverRequest", "CoverResult", "Settings", "Singer", "__version__"]


def __getattr__(name: str):
    if name in ("Singer", "CoverRequest", "CoverResult"):
        from . import api

        return getattr(api, name)
    if name == "Settings":
        from .config import Settings

        return Settings
    raise AttributeError(name)
