"""Giving freed heap memory back to the operating system (glibc keeps it otherwise, and a long-lived worker's RSS
creeps up). Both calls do nothing where the C library is not glibc."""

from __future__ import annotations

import functools

_M_MMAP_THRESHOLD = -3  # mallopt parameter; setting it also stops glibc raising the threshold by itself


@functools.cache
def _libc():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def release_memory() -> None:
    """Return the heap freed so far (between chunks of a long song, between files of a batch)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def map_large_buffers(threshold: int = 1 << 20) -> None:
    """Serve every buffer above ``threshold`` bytes from its own mapping, returned to the OS when freed.

    glibc raises its mmap threshold after the first large free, after which 100 MB activations come from the heap
    and stay resident; on a 10-minute song that costs a few hundred MB of peak RSS."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)
