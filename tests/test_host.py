"""effnet.host: the usable cores, and torch threads set for a block and restored."""

from __future__ import annotations

import pytest
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


def _faults_of_second_allocation() -> int:
    """Minor page faults taken by filling a fresh 64 MB tensor after one was freed."""
    import resource

    torch.ones(16 << 20)  # 64 MB, freed at once
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 << 20)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_fast_malloc_reuses_freed_memory_and_restores_glibc() -> None:
    from effnet.host import fast_malloc

    with fast_malloc() as active:
        if not active:
            pytest.skip("not glibc: fast_malloc leaves the allocator alone here")
        with fast_malloc() as nested:  # nested blocks: the outer one restores
            assert nested
        kept = _faults_of_second_allocation()
    plain = _faults_of_second_allocation()
    # glibc's default maps every large block fresh (16,384 faults of 4 kB for 64 MB); kept
    # memory is already mapped
    assert plain > 8_000
    assert kept < plain / 10


def test_fast_malloc_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from effnet.host import fast_malloc

    monkeypatch.setenv("EFFNET_FAST_MALLOC", "0")
    with fast_malloc() as active:
        assert active is False
    with fast_malloc(enabled=False) as active:
        assert active is False
