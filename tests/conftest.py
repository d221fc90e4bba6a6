"""Shared test settings: deterministic, single-threaded torch so the suite behaves on 2 cores."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist (`make test` runs one worker per core) each worker gets one thread:
    # two workers with two threads each oversubscribe the cores and spin.
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)
