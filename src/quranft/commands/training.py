"""The training stage's commands: the base model, the demo's base, trials (resolved, trained), averaging
and the validation curves."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from quranft.commands.options import add_config_options, check_nemo_inputs, config_of, named
from quranft.config import ConfigError

log = logging.getLogger("quranft")


def cmd_base_model(args: argparse.Namespace) -> None:
    from quranft.models.base_model import materialize

    config = config_of(args)
    origin = materialize(config["base_model"], args.output)
    log.info("base model %s (%s) -> %s", config["base_model"], origin["kind"], args.output)


def cmd_pretrain_demo_base(args: argparse.Namespace) -> None:
    from quranft.training.demo_base import pretrain_from_config

    metadata = pretrain_from_config(config_of(args), args.output, args.threads)
    log.info("demo base model: %s after %d steps (%.0f s)", metadata["validation"], metadata["steps"],
             metadata["wall_seconds"])


def cmd_resolve_trial(args: argparse.Namespace) -> None:
    from quranft.fileio import read_json
    from quranft.training.trials import resolve_best

    config = config_of(args)
    results = {name: read_json(path) for name, path in named(args.scores).items()}
    choice = resolve_best(config["trials"]["dir"], args.trial, config["trials"]["overrides"], results, args.output,
                          args.choice)
    log.info("%s extends %s (best by %s on the %s data: %s)", args.trial, choice["chosen"], choice["metric"],
             choice["selected_on"], choice["scores"])


def _resolved_trial(config: dict, name: str, trial_dir: str):
    """The trial, with an extends_best trial read from <results>/<name>/trial.yaml."""
    from quranft.training.trials import load_trial

    trial = load_trial(config["trials"]["dir"], name, config["trials"]["overrides"],
                       resolved_dir=Path(trial_dir).parent)
    if trial.values is None:
        raise ConfigError(f"trial {name} uses extends_best: run resolve-trial first")
    return trial


def cmd_train(args: argparse.Namespace) -> None:
    from quranft.training.launch import relaunch_as_tasks, srun_command

    devices = args.gpus or args.cpu_processes
    command = srun_command(devices * args.num_nodes, devices, args.num_nodes, args.threads, args.argv)
    if command:  # in a Slurm job: one task per device, each running this same command
        relaunch_as_tasks(command)

    from quranft.training.configure import Resources
    from quranft.training.train import train_trial

    config = config_of(args)
    trial = _resolved_trial(config, args.trial, args.out_dir)
    sources = {name: Path(args.data_dir) / name for name in config["sources"]}
    resources = Resources(gpus=args.gpus, num_nodes=args.num_nodes, cpu_processes=args.cpu_processes,
                          threads=args.threads)
    metadata = train_trial(trial, args.base_model, sources, args.out_dir, resources)
    if metadata:
        log.info("%s: %d steps, best %s %.4f, %.2f steps/s", args.trial, metadata["training"]["global_step"],
                 metadata["training"]["monitor"], metadata["training"]["best_score"] or float("nan"),
                 metadata["training"]["steps_per_second"] or 0.0)


def cmd_average(args: argparse.Namespace) -> None:
    check_nemo_inputs(args.base_model)
    from quranft.training.average import average_trial

    config = config_of(args)
    trial = _resolved_trial(config, args.trial, args.trial_dir)
    settings = config["averaging"]
    average_trial(args.trial_dir, args.base_model, trial.values["average_top_k"], settings["mode"],
                  settings["weighted"], max_val_clips=settings["max_val_clips"], device=args.device)


def cmd_validation_curves(args: argparse.Namespace) -> None:
    from quranft.training.curves import plot_validation_wer

    drawn = plot_validation_wer(named(args.metrics), args.output)
    log.info("validation WER of %d trials -> %s", len(drawn), args.output)


def add_commands(commands) -> None:
    """The commands of the base model, the trials, training and averaging."""
    base = commands.add_parser("base-model", help="put the configured base model at a path")
    add_config_options(base)
    base.add_argument("--output", required=True, help=".nemo file to write")
    base.set_defaults(run=cmd_base_model)

    pretrain = commands.add_parser("pretrain-demo-base", help="train the demo's tiny stand-in base model")
    add_config_options(pretrain)
    pretrain.add_argument("--output", required=True, help=".nemo file to write")
    pretrain.add_argument("--threads", type=int, default=1)
    pretrain.set_defaults(run=cmd_pretrain_demo_base)

    resolve = commands.add_parser("resolve-trial", help="resolve an extends_best trial from its candidates' results")
    add_config_options(resolve)
    resolve.add_argument("--trial", required=True)
    resolve.add_argument("--scores", nargs="+", required=True, metavar="NAME=FILE",
                         help="each candidate's training_metadata.json (metric validation_wer) or benchmark.json")
    resolve.add_argument("--output", required=True, help="the resolved trial file (results/<trial>/trial.yaml)")
    resolve.add_argument("--choice", required=True, help="how it was chosen, as JSON (results/<trial>/extends_best.json)")
    resolve.set_defaults(run=cmd_resolve_trial)

    train = commands.add_parser("train", help="fine-tune the base model as one trial says")
    add_config_options(train)
    train.add_argument("--trial", required=True, help="trial name (config/trials/<name>.yaml)")
    train.add_argument("--base-model", required=True, help="the base .nemo")
    train.add_argument("--data-dir", required=True, help="folder of the per-source manifests (results/data)")
    train.add_argument("--out-dir", required=True, help="the trial's folder (results/<trial>)")
    train.add_argument("--gpus", type=int, default=0, help="GPUs per node; 0 trains on the CPU")
    train.add_argument("--num-nodes", type=int, default=1)
    train.add_argument("--cpu-processes", type=int, default=1, help="DDP processes on the CPU (gloo)")
    train.add_argument("--threads", type=int, default=1, help="CPU threads; data workers follow it")
    train.set_defaults(run=cmd_train)

    average = commands.add_parser("average", help="average a trial's top-k checkpoints into model.nemo")
    add_config_options(average)
    average.add_argument("--trial", required=True, help="trial name (its average_top_k is used)")
    average.add_argument("--trial-dir", required=True, help="the trial's folder (results/<trial>)")
    average.add_argument("--base-model", required=True, help="the base .nemo (tokenizer and config)")
    average.add_argument("--device", default="cpu", help="where the guard decodes: cpu or cuda")
    average.set_defaults(run=cmd_average)

    curves = commands.add_parser("validation-curves", help="every trial's validation WER by step on one plot")
    curves.add_argument("--metrics", nargs="+", required=True, metavar="NAME=FILE",
                        help="each trial's Lightning metrics.csv (results/<trial>/logs/csv/metrics.csv)")
    curves.add_argument("--output", required=True, help="PNG to write")
    curves.set_defaults(run=cmd_validation_curves)
