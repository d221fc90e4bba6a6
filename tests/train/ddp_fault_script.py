"""Run by torchrun in tests: rank 1 fails in its first epoch; the job must end, not hang."""

import os
import sys

import effnet.train.loop as ft
from effnet.cli import main

real = ft.train_one_epoch


def failing(*args, **kwargs):
    if os.environ.get("RANK") == "1":
        raise RuntimeError("rank 1 failed on purpose")
    return real(*args, **kwargs)


ft.train_one_epoch = failing
sys.exit(main(sys.argv[1:]))
