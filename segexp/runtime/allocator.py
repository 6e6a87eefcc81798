"""Keep freed memory inside the process, so that CPU training does not page-fault every step.

A CPU training step allocates and frees the same activations every step. glibc's malloc hands
large freed blocks back to the kernel (blocks above its mmap threshold, and a heap top above its
trim threshold), so the next step touches fresh pages, each one a page fault that the kernel
zero-fills: a large share of a small model's step time (docs/performance.md measures it). PyTorch's
CPU performance guide recommends preloading jemalloc or tcmalloc for this; ``mallopt`` obtains the
same reuse from the allocator already loaded, with nothing to install.

The cost: the process keeps its peak heap until it exits, instead of shrinking after it.
"""

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's malloc.h: shrink the heap only when this much is free at its top
M_MMAP_THRESHOLD = -3  # blocks at least this large get their own mapping, unmapped on free
MMAP_THRESHOLD_MAX = 32 << 20  # the largest value glibc accepts on 64-bit systems
TRIM_THRESHOLD = 2**31 - 1  # an int: glibc takes the setting as one


def retain_freed_memory() -> bool:
    """Ask glibc to reuse freed blocks below 32 MiB instead of returning them to the kernel.

    Returns whether the setting took effect: False off Linux, or where the C library has no
    ``mallopt`` (musl) or refuses the values."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("malloc keeps freed memory: %s", done)
    return done
