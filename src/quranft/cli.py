"""Command line of every stage: `python -m quranft <command> --help`.

Each Snakemake rule calls one of these commands; each also runs without Snakemake.
"""

from __future__ import annotations

import argparse
import logging
import sys

from quranft.commands import data, deploy, evaluation, training
from quranft.errors import QuranftError

log = logging.getLogger("quranft")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quranft", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for stage in (data, training, evaluation, deploy):  # in the order the workflow runs them
        stage.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # what a command re-runs itself with (training, as one Slurm task per device)
    try:
        return args.run(args) or 0
    except QuranftError as error:  # one clear line for the rule's log, then a non-zero exit
        log.error("%s", error)
        return 1
