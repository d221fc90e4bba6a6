"""The command line explains itself: every command shows examples, every flag has a help text,
``finetune --help`` groups its flags, the aliases from timm's and torchvision's scripts mean
what they mean there, completion scripts cover every command, ``-q``/``-v`` set the log."""

from __future__ import annotations

import argparse
import logging

import pytest

from effnet.cli import build_parser, main, walk
from effnet.cli.flags import given
from effnet.train import FinetuneConfig
from effnet.train.config import GROUPS

COMMANDS = [(prog, p) for prog, p in walk(build_parser())]


def example_lines(parser: argparse.ArgumentParser) -> list[str]:
    epilog = parser.epilog or ""
    assert epilog.startswith("Examples:"), f"{parser.prog}: no examples"
    return [ln.strip() for ln in epilog.splitlines()[1:] if ln.strip()]


@pytest.mark.parametrize(("prog", "parser"), COMMANDS, ids=[prog for prog, _ in COMMANDS])
def test_every_command_shows_examples_and_describes_every_flag(
    prog: str, parser: argparse.ArgumentParser
) -> None:
    commands = [ln for ln in example_lines(parser) if not ln.startswith("--")]
    assert len(commands) >= 2, f"{prog}: fewer than two examples"
    words = prog.split()[1:]  # "effnet lab search" -> the example says "lab search"
    assert all(" ".join(words) in ln for ln in commands if "effnet" in ln), prog
    assert "Examples:" in parser.format_help()
    undescribed = [
        "/".join(a.option_strings) or a.dest
        for a in parser._actions
        if not isinstance(a, argparse._SubParsersAction)
        and (not a.help or a.help == argparse.SUPPRESS)
    ]
    assert not undescribed, f"{prog}: no help for {undescribed}"


def test_the_walk_reaches_every_command() -> None:
    progs = {prog for prog, _ in COMMANDS}
    for name in ("finetune", "train", "evaluate", "push", "completion", "lab search", "report"):
        assert f"effnet {name}" in progs


@pytest.mark.parametrize("command", ["finetune", "train"])
def test_finetune_help_groups_its_flags_in_order(command: str) -> None:
    parser = dict(COMMANDS)[f"effnet {command}"]
    text = parser.format_help()
    headings = [f"{g}:" for g in GROUPS if f"\n{g}:\n" in text]
    assert len(headings) == len(GROUPS) if command == "finetune" else len(headings) >= 7
    positions = [text.index(f"\n{h}\n") for h in headings]
    assert positions == sorted(positions)  # data first, output & tracking last

    def section(heading: str) -> str:
        start = text.index(f"\n{heading}:\n")
        return text[start : text.index("\n\n", start + 1)]

    assert "--model MODEL" in section("model & weights")
    assert "--lr LR" in section("phase 2 / optimisation")
    assert "-b BATCH_SIZE, --batch-size" in section("phase 2 / optimisation")
    assert "--aa AUTO_AUGMENT" in section("augmentation & regularisation")
    assert "--compile" in section("execution") and "--grad-checkpointing" in section("execution")
    assert "--mlflow" in section("output & tracking") and "--json" in section("output & tracking")


def test_timm_and_torchvision_aliases_set_the_same_fields() -> None:
    parser = build_parser()
    argv = ["finetune", "-b", "16", "-j", "0", "--model-ema", "--aa", "rand-m9-mstd0.5",
            "--reprob", "0.3", "--mixup", "0.2", "--cutmix", "1.0", "--layer-decay", "0.8",
            "--compile", "--grad-checkpointing"]  # fmt: skip
    flags = given(parser.parse_args(argv), FinetuneConfig)
    assert flags == {
        "batch_size": 16, "workers": 0, "ema": 0.9998, "auto_augment": "rand-m9-mstd0.5",
        "random_erase": 0.3, "mixup": 0.2, "cutmix": 1.0, "layer_decay": 0.8, "compile": True,
        "grad_checkpointing": True,
    }  # fmt: skip
    FinetuneConfig(**flags)  # and the config takes them
    ema = given(parser.parse_args(["finetune", "--model-ema-decay", "0.99"]), FinetuneConfig)
    assert ema == {"ema": 0.99}


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_script_covers_every_command_and_finetunes_flags(
    shell: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("shtab")
    assert main(["completion", shell]) == 0
    script = capsys.readouterr().out
    top = dict(COMMANDS)["effnet"]
    names = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in names:
        assert name in script, name
    finetune = dict(COMMANDS)["effnet finetune"]
    for action in finetune._actions:
        for option in action.option_strings:
            assert option in script, option


def test_quiet_and_verbose_set_the_effnet_log_level(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from effnet.cli import models

    levels = []

    def spy(args: argparse.Namespace) -> int:
        levels.append(logging.getLogger("effnet").getEffectiveLevel())
        logging.getLogger("effnet.test").info("an info line")
        return 0

    spy.__name__, spy.__doc__ = "cmd_list", models.cmd_list.__doc__
    monkeypatch.setattr(models, "cmd_list", spy)
    for argv in (["list"], ["-q", "list"], ["list", "-q"], ["-v", "list"], ["-qq", "list"]):
        assert main(argv) == 0
    assert levels == [logging.INFO, logging.WARNING, logging.WARNING, logging.DEBUG, logging.ERROR]
    err = capsys.readouterr().err
    assert err.count("an info line") == 2  # shown by default and with -v, on stderr
    assert "effnet.test INFO: an info line" in err  # -v says where it comes from
    assert logging.getLogger("effnet").handlers == []  # the command leaves no handler behind
