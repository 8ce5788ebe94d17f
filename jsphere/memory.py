"""How much memory this machine can still give, so that a size asked for (a batch, a class count, a number of
photos) is refused before it is allocated rather than failing in the allocator."""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (Linux's MemAvailable), or None where that is not known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
