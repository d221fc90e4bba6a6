"""This machine's cores and torch's thread count: one answer, set for a block and restored."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["torch_threads", "usable_cores"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity on Linux, else all of them), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads, then restore the caller's count.

    ``None`` or 0 leaves the count as it is: library calls never change the process's setting
    behind its back.
    """
    import torch

    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
