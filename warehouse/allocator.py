"""glibc malloc tuned for the endpoint's request-body buffers (ADR 0013).

Above its mmap threshold glibc serves each chunk-sized body buffer with fresh, zeroed pages;
kept in the heap, they are reused.
"""

from __future__ import annotations

import ctypes

# glibc malloc: request-body buffers (uvloop reads up to 256 KiB, uvicorn joins reads) stay
# in the heap and its top is kept, instead of an mmap/munmap and fresh zeroed pages per chunk.
MMAP_THRESHOLD_BYTES = 1 << 20
TRIM_THRESHOLD_BYTES = 4 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>


def keep_body_buffers_in_the_heap() -> bool:
    """Tune glibc's malloc for the server's chunk-sized buffers (ADR 0013); False elsewhere.

    chdb brings its own allocator, so only Python's, uvloop's and httptools' buffers are
    affected.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
