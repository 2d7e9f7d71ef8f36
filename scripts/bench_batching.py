#!/usr/bin/env python3
"""Padding and training speed of fixed versus duration batches.

    python scripts/bench_batching.py [--clips 10000] [--steps 20] [--threads 2] [--output FILE.json]

1. Padding: the share of padded feature frames (each clip padded to the longest of its batch) on
   `--clips` synthetic clip durations, seeded: a lognormal around 7 s clipped to 0.6-30 s, most
   clips 3-15 s (no audio: a NeMo manifest of durations, read as metadata only). Fixed batches are
   random groups of batch_size clips (NeMo's classic loader, shuffled); duration batches are one
   epoch of the very sampler training builds (quranft.training.dataloading.sampled_batches: NeMo's Lhotse
   loader, DynamicBucketingSampler), with the bucket boundaries training estimates and, for
   comparison, NeMo's own evenly spaced ones.
2. Speed: V1 with config/demo.yaml's scaled-down budget trains `--steps` steps on the demo data
   stage (run `make demo`, or its data stage, first) from the demo base model on the CPU, with
   fixed batches and with duration batches of about the same audio; samples/s and seconds of
   audio/s as training_metadata.json counts them, and the padding of those batches on the demo's
   own train manifest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

COMMON = {"sample_rate": 16000, "num_workers": 0, "pin_memory": False}


def synthetic_durations(clips: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return np.clip(rng.lognormal(np.log(7.0), 0.55, clips), 0.6, 30.0).round(3).tolist()


def write_manifest(path: Path, durations: list[float]) -> Path:
    path.write_text("".join(json.dumps({"audio_filepath": f"clip{i}.wav", "duration": d, "text": "x"}) + "\n"
                            for i, d in enumerate(durations)), encoding="utf-8")
    return path


def fixed_batches(durations: list[float], batch_size: int, seed: int = 0) -> list[list[float]]:
    order = np.random.default_rng(seed).permutation(len(durations))
    shuffled = [durations[i] for i in order]
    return [shuffled[i:i + batch_size] for i in range(0, len(shuffled), batch_size)]


def duration_values(batch_duration: float, num_buckets: int = 30, quadratic_duration: float | None = None) -> dict:
    return {"batching": "duration", "batch_duration": batch_duration, "num_buckets": num_buckets,
            "bucket_buffer_size": 10000, "quadratic_duration": quadratic_duration, "seed": 1234}


def padding_rows(manifest: Path, durations: list[float]) -> list[dict]:
    from quranft.training.dataloading import padding_share, sampled_batches, train_config

    rows = []
    for batch_size in (12, 32):
        rows.append({"batching": f"fixed, batch_size {batch_size}",
                     **padding_share(fixed_batches(durations, batch_size))})
    for label, values, even_bins in (
        ("duration 100 s, 30 buckets", duration_values(100.0), False),
        ("duration 300 s, 30 buckets", duration_values(300.0), False),
        ("duration 300 s, 10 buckets", duration_values(300.0, num_buckets=10), False),
        ("duration 300 s, 30 buckets, quadratic 30", duration_values(300.0, quadratic_duration=30.0), False),
        ("duration 300 s, 30 evenly spaced buckets (NeMo's default)", duration_values(300.0), True),
    ):
        train_ds = train_config(values, str(manifest), durations, COMMON)
        if even_bins:
            train_ds["bucket_duration_bins"] = None  # NeMo spaces them evenly over min-max_duration
        batches = sampled_batches(train_ds)
        rows.append({"batching": label, **padding_share([[d for _, d in batch] for batch in batches])})
    return rows


def speed_rows(steps: int, threads: int, base_model: str, data_dir: Path) -> list[dict]:
    from quranft.config import load_config
    from quranft.training.configure import Resources
    from quranft.training.dataloading import padding_share, sampled_batches, train_config
    from quranft.training.train import train_trial
    from quranft.training.trials import load_trial

    config = load_config(REPO / "config" / "config.yaml", REPO / "config" / "demo.yaml")
    trials_dir = REPO / config["trials"]["dir"]
    sources = {name: data_dir / name for name in config["sources"]}
    base = {**config["trials"]["overrides"], "max_steps": steps, "val_interval": steps, "early_stopping_patience": None}
    batch_size = base["batch_size"]

    def run(label: str, overrides: dict, work: Path) -> tuple[dict, list[float]]:
        trial = load_trial(trials_dir, "v1", {**base, **overrides})
        metadata = train_trial(trial, base_model, sources, work / "run", Resources(threads=threads))
        manifest = metadata["data"]["manifests"]["train"]["path"]
        durations = [json.loads(line)["duration"] for line in Path(manifest).read_text().splitlines()]
        if trial.values["batching"] == "fixed":
            padding = padding_share(fixed_batches(durations, batch_size))
        else:
            train_ds = train_config(trial.values, manifest, durations, COMMON)
            padding = padding_share([[d for _, d in batch] for batch in sampled_batches(train_ds)])
        shutil.rmtree(work / "run")
        training = metadata["training"]
        return {"batching": label, "steps": training["global_step"], "fit_seconds": training["fit_seconds"],
                "samples_per_second": training["samples_per_second"],
                "audio_seconds_per_second": training["audio_seconds_per_second"],
                "mean_batch_clips": round(training["samples_seen"] / max(1, training["global_step"]), 2),
                "padding_share": padding["padding_share"]}, durations

    with tempfile.TemporaryDirectory(prefix="bench-batching-") as work:
        fixed, durations = run(f"fixed, batch_size {batch_size}", {}, Path(work))
        seconds = round(batch_size * float(np.mean(durations)), 1)  # the audio of a fixed batch, on average
        duration, _ = run(f"duration {seconds} s, 8 buckets",
                          {"batching": "duration", "batch_duration": seconds, "num_buckets": 8}, Path(work))
    return [fixed, duration]


def print_table(rows: list[dict], columns: list[str]) -> None:
    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        print("| " + " | ".join(cell(row[c]) for c in columns) + " |")
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=10000)
    parser.add_argument("--steps", type=int, default=20, help="training steps of each speed run (0: none)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--base-model", default=str(REPO / "demo" / "base_model.nemo"))
    parser.add_argument("--data-dir", default=str(REPO / "results" / "data"))
    parser.add_argument("--output", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    durations = synthetic_durations(args.clips)
    within = np.mean([(3.0 <= d <= 15.0) for d in durations])
    print(f"{len(durations)} synthetic clips: median {np.median(durations):.1f} s, 5-95% "
          f"{np.percentile(durations, 5):.1f}-{np.percentile(durations, 95):.1f} s, {within:.0%} within 3-15 s\n")
    with tempfile.TemporaryDirectory(prefix="bench-batching-") as work:
        padding = padding_rows(write_manifest(Path(work) / "train.jsonl", durations), durations)
    print_table(padding, ["batching", "batches", "mean_batch_clips", "mean_batch_seconds", "padding_share",
                          "mean_batch_padding"])
    speed = speed_rows(args.steps, args.threads, args.base_model, Path(args.data_dir)) if args.steps else []
    if speed:
        print_table(speed, ["batching", "steps", "fit_seconds", "samples_per_second", "audio_seconds_per_second",
                            "mean_batch_clips", "padding_share"])
    if args.output:
        Path(args.output).write_text(json.dumps({"padding": padding, "speed": speed}, indent=2) + "\n",
                                     encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
