"""One torch thread per test, for the modules that push tiny tensors through many layers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from effnet.host import torch_threads


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread per test (import this fixture into a test module to apply it).

    These tests push tiny tensors through hundreds of small layers; on a shared 2-core machine
    two OpenMP threads wait for each other at every layer, which made the export and bench
    tests 3x slower (120 s vs 40 s for both folders at load 4-5). Benchmarks that pin their own
    thread count (``bench(num_threads=...)``) still do.
    """
    with torch_threads(1):
        yield
