"""effnet.host: the usable cores, and torch threads set for a block and restored."""

from __future__ import annotations

import torch

from effnet.host import torch_threads, usable_cores


def test_torch_threads_are_restored_even_after_an_error() -> None:
    before = torch.get_num_threads()
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0 / None: leave the caller's setting alone
        assert torch.get_num_threads() == before
    assert usable_cores() >= 1
