"""Kept for the tests that still import from here; new tests import helpers.export."""

from helpers.export import THREE, randomize_bn, small_model, tiny_model
from helpers.torch_threads import one_torch_thread

__all__ = ["THREE", "one_torch_thread", "randomize_bn", "small_model", "tiny_model"]
