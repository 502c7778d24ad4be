"""Model files: the manifest of known models (:mod:`.manifest`) and the store of local copies, downloads and
checksums (:mod:`.store`)."""

from .manifest import CHECKSUMS, KINDS, ModelEntry, ModelFile, find_manifest, parse_entry
from .store import ModelStore

__all__ = ["CHECKSUMS", "KINDS", "ModelEntry", "ModelFile", "ModelStore", "find_manifest", "parse_entry"]
