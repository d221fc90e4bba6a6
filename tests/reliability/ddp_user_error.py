"""Run by torchrun in the reliability tests: rank 1 meets a problem a user can fix (a
BadDataError) in its first epoch, while rank 0 waits for it in a collective."""

import os
import sys

import effnet.train.loop as loop
from effnet.cli import main
from effnet.errors import BadDataError

real = loop.train_one_epoch


def failing(*args, **kwargs):
    if os.environ.get("RANK") == "1":
        raise BadDataError("rank 1 found a bad picture on purpose: remove it and resume")
    return real(*args, **kwargs)


loop.train_one_epoch = failing
sys.exit(main(sys.argv[1:]))
