"""Process-group context read from the environment ``torchrun`` sets (RANK, WORLD_SIZE, ...).

A single process is simply world size 1: the training code calls the same helpers either way.

When one process of a job fails, the others fail too, inside a collective, with the backend's
words ("Connection closed by peer" from gloo, NCCL's watchdog). :func:`peer_failures` turns those
into one :class:`PeerFailedError` line that points at the real error, and :func:`record_failure`
hands the failing process's own error to torchrun, whose summary then shows it as the root cause.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from effnet.errors import ConfigError, EffnetError

__all__ = [
    "DistContext",
    "PeerFailedError",
    "init_distributed",
    "peer_failures",
    "record_failure",
]

# What the collectives say when another process of the job has gone (gloo, NCCL, the store).
_PEER_GONE = (
    "Connection closed by peer",
    "Connection reset by peer",
    "Broken pipe",
    "remote worker crashing",
    "NCCL communicator was aborted",
    "ProcessGroupNCCL",
    "ProcessGroupGloo",
    "Socket Timeout",
)


class PeerFailedError(EffnetError):
    """This process stopped because another process of the torchrun job failed."""

    exit_code = 1


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks in place (a no-op in a single process)."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather_cat(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate equal-length tensors from every rank along dim 0, in rank order."""
        if not self.enabled:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return (
            torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
        )
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "device 'cuda' was asked for but no CUDA GPU is available; use --device cpu"
        )
    return device


def init_distributed(device: str = "auto", timeout_s: float = 600.0) -> DistContext:
    """Join the process group ``torchrun`` describes, or return a single-process context.

    NCCL on GPUs, gloo on CPU. The timeout bounds how long survivors wait on a dead rank.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=resolve_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        from datetime import timedelta

        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def _is_peer_failure(exc: BaseException) -> bool:
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in _PEER_GONE)


@contextlib.contextmanager
def peer_failures(ctx: DistContext, run_dir: Path) -> Iterator[None]:
    """Under torchrun, a collective that fails because another process died becomes one
    :class:`PeerFailedError` line: that process's own error is the one to read."""
    try:
        yield
    except Exception as exc:
        if not ctx.enabled or isinstance(exc, EffnetError) or not _is_peer_failure(exc):
            raise
        raise PeerFailedError(
            f"rank {ctx.rank} stopped: another process of this torchrun job failed (its error is "
            f"the one to read, above or in torchrun's summary). Fix it, then continue from the "
            f"last finished epoch with --resume {run_dir}"
        ) from exc


def record_failure(exc: BaseException) -> None:
    """Under torchrun, write ``exc`` to the error file the elastic agent reads, so its summary
    names this process's own error as the root cause (what ``@record`` does for a raised
    exception; the command line prints user errors as one line instead of raising them). A
    :class:`PeerFailedError` is not recorded: it is the consequence, not the cause."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if isinstance(exc, PeerFailedError) or not path:
        return
    from torch.distributed.elastic.multiprocessing.errors import ErrorHandler

    with contextlib.suppress(Exception):  # reporting must never hide the error itself
        if not isinstance(exc, EffnetError):
            ErrorHandler().record_exception(exc)  # a bug: its traceback, as @record writes it
            return
        # a user's error: its one line where the summary shows a traceback (ErrorHandler's
        # file format: the message, and the "call stack" and time the summary prints)
        line = f"{type(exc).__name__}: {exc}"
        data = {
            "message": line,
            "extraInfo": {"py_callstack": line, "timestamp": str(int(time.time()))},
        }
        Path(path).write_text(json.dumps({"message": data}), encoding="utf-8")
