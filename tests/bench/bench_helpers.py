"""Helpers for the bench tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread per test (import this fixture into a test module to apply it).

    The models here are tiny; on a shared 2-core machine two OpenMP threads wait for each other
    at every layer, which made these tests several times slower. Benchmarks that pin their own
    thread count (``bench(num_threads=...)``) still do.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
