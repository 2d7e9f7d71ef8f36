#!/usr/bin/env python3
"""Measure training speed (steps/s, samples/s) of the demo trials.

    python scripts/bench_training.py [--steps 30] [--gpus 0] [--trials v1 v2 v3 v4 v5 v6]

Trains each trial of config/trials with config/demo.yaml's scaled-down budget, `--steps` optimizer
steps and no validation in between, from the demo base model on the demo data stage's manifests
(run `make demo`, or at least its data stage, first). Trials that extend the best of others start
from the first candidate here: the speed depends on freezing and the loss, which the trial's own
file sets. With `--gpus 1` (on a GPU machine) the same runs use CUDA with bf16 mixed precision.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--gpus", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--base-model", default=str(REPO / "demo" / "base_model.nemo"))
    parser.add_argument("--data-dir", default=str(REPO / "results" / "data"))
    parser.add_argument("--trials", nargs="+", default=["v1", "v2", "v3", "v4", "v5", "v6"])
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    from quranft.config import load_config
    from quranft.training.configure import Resources
    from quranft.training.train import train_trial
    from quranft.training.trials import Trial, load_trial, possible_values

    config = load_config(REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml")
    trials_dir = REPO / config["trials"]["dir"]
    overrides = {**config["trials"]["overrides"], "max_steps": args.steps, "val_interval": args.steps,
                 "early_stopping_patience": None}
    sources = {name: Path(args.data_dir) / name for name in config["sources"]}
    resources = Resources(gpus=args.gpus, threads=args.threads)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as work:
        for name in args.trials:
            trial = load_trial(trials_dir, name, overrides)
            if trial.values is None:  # extends the best of others: here, the first of them
                trial = Trial(name, possible_values(trials_dir, trial, overrides)[0], trial.files)
            metadata = train_trial(trial, args.base_model, sources, Path(work) / name, resources)
            figures = {
                "trial": name, "ctc_only": trial.values["ctc_only"],
                "freeze_encoder_layers": trial.values["freeze_encoder_layers"],
                "batch_size": trial.values["batch_size"], "grad_accum": trial.values["grad_accum"],
                "steps": metadata["training"]["global_step"],
                "steps_per_second": metadata["training"]["steps_per_second"],
                "samples_per_second": metadata["training"]["samples_per_second"],
                "trainable_parameters": metadata["parameters"]["trainable"],
                "device": metadata["device"]["device_name"], "precision": metadata["device"]["precision"],
            }
            results.append(figures)
            print(json.dumps(figures), flush=True)
            shutil.rmtree(Path(work) / name, ignore_errors=True)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
