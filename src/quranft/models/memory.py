"""Memory a long recording's inference has freed, handed back to the system (no torch, no NeMo:
the ONNX path of identify uses it too)."""

from __future__ import annotations

import ctypes
import functools


def release_freed_memory() -> None:
    """What the program has freed handed back to the system (glibc's malloc_trim; elsewhere,
    nothing). glibc keeps freed blocks for the next allocations, and a .nemo's stretches of speech
    and windows, each of its own length, leave them scattered in its arenas: without this after
    each stretch and each window of a long recording (models.loading.speech_log_probs,
    transcribe._encode_windowed), a real-size model's peak on a 10-minute recording was 1,649 MB,
    with it 1,470 MB (docs/export-and-identify.md). Not after each batch of a benchmark's clips:
    the pages come back on the next batch's first touch, and a demo .nemo's benchmark took 38.5 s
    with it, 29.7 s without."""
    libc = _process_symbols()
    if hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


@functools.cache
def _process_symbols() -> ctypes.CDLL:
    # the C library the process runs on, opened once: ctypes.util.find_library would start
    # ldconfig (a process) at every window
    return ctypes.CDLL(None)
