"""Exponential moving average of a model's weights (evaluated and saved instead of the raw ones).

torch's :class:`~torch.optim.swa_utils.AveragedModel` does the averaging, with
:func:`~torch.optim.swa_utils.get_ema_multi_avg_fn` (one fused ``lerp`` per dtype and device).
What effnet adds:

* **Buffers are averaged too** (``use_buffers=True``), as effnet's EMA always did and timm's
  ``ModelEmaV2``/``V3`` do: BatchNorm running statistics follow the averaged weights instead
  of the raw model's. Integer buffers (BatchNorm's ``num_batches_tracked``) are counts, not
  weights: they are copied, not averaged (averaging would truncate them).
* **A warmup of the decay**, ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so that a
  short fine-tuning run is not dominated by the weights it started from (with a fixed 0.999 the
  average of a 300-step run would still hold 74% of the first step's weights). The first update
  copies the model, as ``AveragedModel`` does.

The state (``state_dict``) is the averaged module's and ``n_averaged``; a run saved by the older
hand-written EMA (``{"decay", "updates", "module"}``) still loads and resumes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from effnet.errors import ConfigError

__all__ = ["ModelEma"]


class ModelEma(AveragedModel):
    """``ema = d * ema + (1 - d) * model`` after every optimizer step (call
    :meth:`update_parameters` with the unwrapped model); ``module`` is the averaged model."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"EMA decay must be in (0, 1), got {decay}")
        super().__init__(model, multi_avg_fn=self._average, use_buffers=True)
        self.decay = float(decay)
        self.module.eval()
        self.module.requires_grad_(False)

    def decay_at(self, updates: int) -> float:
        """The decay applied after ``updates`` earlier updates (the warmup)."""
        return min(self.decay, (1 + updates) / (10 + updates))

    @torch.no_grad()
    def _average(self, averaged: list[torch.Tensor], current: list[torch.Tensor], n: Any) -> None:
        if not averaged[0].is_floating_point():
            for a, c in zip(averaged, current):  # counts (num_batches_tracked): copied
                a.copy_(c)
            return
        get_ema_multi_avg_fn(self.decay_at(int(n)))(averaged, current, n)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        if "updates" in state_dict and "module" in state_dict:  # the older hand-written EMA's
            updates = int(state_dict["updates"])
            state_dict = {f"module.{k}": v for k, v in state_dict["module"].items()}
            state_dict["n_averaged"] = torch.tensor(updates)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)
