"""What the commands share: the config options (a validated settings file, or config files) and
NAME=FILE arguments."""

from __future__ import annotations

import argparse

from quranft.config import ConfigError, load_config
from quranft.fileio import check_nemo_archive


def config_of(args: argparse.Namespace) -> dict:
    if args.settings:
        from quranft.fileio import read_json

        return read_json(args.settings)
    if args.config:
        return load_config(*args.config)
    raise ConfigError("give --config FILE [FILE ...] or --settings FILE")


def add_config_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--config", nargs="+", metavar="FILE", help="YAML config files, later ones override")
    group.add_argument("--settings", metavar="FILE",
                       help="sections of the already validated config, as a JSON file (what the rules pass)")


def add_model_options(parser: argparse.ArgumentParser, model_help: str) -> None:
    """The options of a command that judges a model's files: the config, --model (one or more
    files) and --name (the model's name in the results)."""
    add_config_options(parser)
    parser.add_argument("--model", required=True, nargs="+", help=model_help)
    parser.add_argument("--name", required=True, help="the model's name in the results (base, v1, ...)")


def named(items: list[str]) -> dict[str, str]:
    """NAME=FILE arguments by name."""
    return dict(item.split("=", 1) for item in items)


def check_nemo_inputs(*paths: str) -> None:
    """Refuse, in one line and before NeMo is imported (about 10 s), an input named .nemo that is
    not a complete .nemo archive."""
    for path in paths:
        if str(path).endswith(".nemo"):
            check_nemo_archive(path)
