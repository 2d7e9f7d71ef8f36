"""Training one trial: restore the base model, freeze what the trial freezes, fine-tune, checkpoint.

Writes into the trial's folder:
  data/{train,validation}.jsonl   the manifests trained on (the trial's blend, text option applied)
  checkpoints/                    top-k by the monitored validation WER, and last.ckpt
  logs/csv/metrics.csv, logs/tb/  metrics, CSV and TensorBoard
  training_curves.png             training loss and validation WER by step
  training_metadata.json          everything needed to reproduce and judge the run

A run that is killed resumes from checkpoints/last.ckpt when re-run with the same training values
and data; with changed ones, the old checkpoints are moved aside and training starts over
(quranft.training.resume); a duration-batched run continues its epoch's data order
(quranft.training.data_order). How the run is set up (resources, loaders, loss, optimizer, Trainer)
is quranft.training.configure..
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from quranft.data.blend import blend_rows, write_manifest
from quranft.fileio import sha256_file, write_json
from quranft.models import nemo_models
from quranft.provenance import cpu_name, git_commit, versions
from quranft.quran.tokenizer_coverage import coverage_rows, make_mapper, missing_characters
from quranft.training import dataloading
from quranft.training.configure import (
    KeepFrozenInEval,
    Resources,
    TrainingError,
    build_trainer,
    check_rnnt_loss,
    configure_model,
    device_settings,
    threads_per_process,
)
from quranft.training.curves import METRICS_CSV, plot_training_curves
from quranft.training.data_order import DataOrderAcrossResume
from quranft.training.launch import announce_prepared, slurm_task_rank, wait_until_prepared
from quranft.training.resume import (
    MetricsAcrossResume,
    Resume,
    StoppedEarlyStaysStopped,
    prepare_checkpoints,
    run_fingerprint,
)
from quranft.training.trials import DATA_CAP_KEYS, Trial

log = logging.getLogger("quranft")


@dataclass
class TrialData:
    """What a trial trains on: its manifests (path, rows, hours, sha256), how they were blended,
    and the tokenizer's coverage of their text."""

    manifests: dict[str, dict[str, Any]]
    blend: dict[str, Any]
    coverage: dict[str, Any]
    train_durations: list[float]


def _write_manifest(path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write a manifest; return its path, size and hash."""
    write_manifest(path, rows)
    return {"path": str(path), "rows": len(rows), "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "sha256": sha256_file(path)}


def _map_text(trial: Trial, rows: dict[str, list[dict]], can_encode) -> tuple[dict[str, list[dict]], dict]:
    """The rows with the trial's text_option applied, and the tokenizer coverage before and after.

    Stops (TrainingError) when more than max_unknown_char_fraction of the targets' characters would
    still become unknown tokens: the model could not learn to write them, and the run would only
    show it in its WER days later.
    """
    values = trial.values
    missing = missing_characters((r["text"] for split in rows.values() for r in split), can_encode)
    mapper = make_mapper(values["text_option"], missing)
    mapped = {split: [{**r, "text": mapper(r["text"])} for r in split_rows] for split, split_rows in rows.items()}
    still_missing = missing_characters((r["text"] for split in mapped.values() for r in split), can_encode)
    characters = sum(len(r["text"]) - r["text"].count(" ") for split in mapped.values() for r in split)
    unknown = sum(still_missing.values())
    coverage = {"text_option": values["text_option"], "missing_before": coverage_rows(missing),
                "missing_after": coverage_rows(still_missing), "characters": characters, "unknown": unknown,
                "unknown_share": round(unknown / max(1, characters), 6)}
    for row in coverage["missing_after"]:
        log.warning("tokenizer lacks %s %s (%d times): it becomes an unknown token", row["codepoint"], row["name"],
                    row["count"])
    limit = values["max_unknown_char_fraction"]
    if unknown > limit * characters:
        listed = ", ".join(f"{row['codepoint']} {row['name']} ({row['char']}) {row['count']} times"
                           for row in coverage["missing_after"])
        hint = ("text_option: map_missing maps those with an Uthmani fallback" if values["text_option"] == "keep"
                else "text_option: map_missing has no fallback for them")
        raise TrainingError(
            f"{trial.files[0]}: {unknown} of the {characters} characters of the train and validation targets "
            f"({unknown / characters:.2%}) would become unknown tokens of the base model's tokenizer with "
            f"text_option: {values['text_option']}, above key 'max_unknown_char_fraction' ({limit}): {listed}. "
            f"{hint}; or raise max_unknown_char_fraction in the trial."
        )
    return mapped, coverage


def restore_base(trial: Trial, base_model: Path):
    """The base model, restored for the trial's loss; refused when it has fewer layers than the
    trial freezes."""
    model = nemo_models.restore(base_model, ctc_only=trial.values["ctc_only"], hybrid=True)
    layers = len(model.encoder.layers)
    if trial.values["freeze_encoder_layers"] > layers:
        raise TrainingError(
            f"{trial.files[0]}: key 'freeze_encoder_layers' is {trial.values['freeze_encoder_layers']}, "
            f"but the base model's encoder has {layers} layers"
        )
    return model


def trial_data(trial: Trial, source_dirs: dict[str, str | Path], out_dir: Path, can_encode) -> TrialData:
    """The trial's blend of the prepared sources, its text option applied, written to
    <out_dir>/data/{train,validation}.jsonl."""
    rows, blend_report = blend_rows(source_dirs, trial.values["include_retasy"],
                                    {key: trial.values[key] for key in DATA_CAP_KEYS})
    mapped, coverage = _map_text(trial, rows, can_encode)
    manifests = {split: _write_manifest(out_dir / "data" / f"{split}.jsonl", split_rows)
                 for split, split_rows in mapped.items()}
    if not mapped["train"] or not mapped["validation"]:
        raise TrainingError(f"{trial.files[0]}: the trial's blend leaves an empty train or validation manifest")
    return TrialData(manifests, blend_report, coverage, [r["duration"] for r in mapped["train"]])


def _callbacks(trial: Trial, checkpoints: Path, frozen, seen: dataloading.SamplesSeen) -> list[pl.Callback]:
    values = trial.values
    monitor = values["monitor"]
    callbacks = [
        StoppedEarlyStaysStopped(),
        KeepFrozenInEval(frozen),
        seen,
        ModelCheckpoint(dirpath=checkpoints, filename=f"step{{step:06d}}-{monitor}{{{monitor}:.4f}}",
                        auto_insert_metric_name=False, monitor=monitor, mode="min",
                        save_top_k=values["save_top_k"], save_last=True),
    ]
    if values["batching"] == dataloading.DURATION:
        callbacks.append(DataOrderAcrossResume())
    if values["early_stopping_patience"] is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode="min", patience=values["early_stopping_patience"]))
    return callbacks


def _trial_trainer(trial: Trial, device: dict[str, Any], out_dir: Path, frozen, seen) -> pl.Trainer:
    values = trial.values
    loggers = [CSVLogger(out_dir / "logs", name="", version="csv"),
               TensorBoardLogger(out_dir / "logs", name="", version="tb")]
    return build_trainer(
        device, values["max_steps"], values["val_interval"], values["grad_accum"], values["gradient_clip_val"],
        loggers, _callbacks(trial, out_dir / "checkpoints", frozen, seen), out_dir,
        # Lhotse's sampler splits the batches between DDP ranks itself; Lightning's would wrap it.
        distributed_sampler=values["batching"] == dataloading.FIXED,
    )


def _training_figures(trial: Trial, trainer: pl.Trainer, resume: Resume | None, seen, fit_seconds: float) -> dict:
    values = trial.values
    steps_run = trainer.global_step - (resume.step if resume else 0)
    best = trainer.checkpoint_callback.best_model_score

    def rate(amount: float, digits: int) -> float | None:
        return round(amount / fit_seconds, digits) if fit_seconds else None

    return {
        "global_step": trainer.global_step, "resumed_from_step": resume.step if resume else None,
        "stopped_early": values["early_stopping_patience"] is not None and trainer.global_step < values["max_steps"],
        "fit_seconds": round(fit_seconds, 2), "steps_per_second": rate(steps_run, 4),
        "samples_seen": seen.samples, "audio_seconds_seen": round(seen.audio_seconds, 2),
        "samples_per_second": rate(seen.samples, 3), "audio_seconds_per_second": rate(seen.audio_seconds, 3),
        "monitor": values["monitor"], "best_score": float(best) if best is not None else None,
    }


def _metadata(trial: Trial, base_model: Path, base_sha256: str, parameters: dict[str, int], frozen, data: TrialData,
              device: dict[str, Any], resources: Resources, trainer: pl.Trainer, training: dict) -> dict[str, Any]:
    values = trial.values
    checkpoint = trainer.checkpoint_callback
    ranked = sorted(((float(score), path) for path, score in checkpoint.best_k_models.items()), key=lambda x: x[0])
    return {
        "trial": trial.name,
        "trial_files": [str(f) for f in trial.files],
        "trial_values": values,
        "base_model": {"path": str(base_model), "sha256": base_sha256},
        "parameters": parameters,
        "frozen_modules": [name for name, _ in frozen],
        "data": {"manifests": data.manifests, "blend": data.blend},
        "tokenizer_coverage": data.coverage,
        "device": {**device, "device_name": torch.cuda.get_device_name(0) if resources.gpus else cpu_name(),
                   "cpu_threads": torch.get_num_threads(), "data_workers": threads_per_process(resources) - 1},
        "training": training,
        "checkpoints": {"top_k": [{"path": str(p), values["monitor"]: s} for s, p in ranked],
                        "last": str(Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt")},
        "versions": versions(),
        "git_commit": git_commit(),
    }


def train_trial(trial: Trial, base_model: str | Path, source_dirs: dict[str, str | Path], out_dir: str | Path,
                resources: Resources = Resources()) -> dict[str, Any]:
    """Fine-tune `base_model` as `trial` says; return (and write) the training metadata (on rank 0;
    the other DDP ranks return {})."""
    started = time.time()
    out_dir, base_model = Path(out_dir), Path(base_model)
    check_rnnt_loss(trial, resources.gpus)
    task_rank = slurm_task_rank()
    if task_rank:  # the other Slurm tasks prepare once rank 0 has decided what the run resumes from
        wait_until_prepared(out_dir)
    torch.set_num_threads(threads_per_process(resources))
    pl.seed_everything(trial.values["seed"], workers=True)
    model = restore_base(trial, base_model)
    data = trial_data(trial, source_dirs, out_dir, nemo_models.can_encode(model))
    base_sha256 = sha256_file(base_model)
    resume = prepare_checkpoints(out_dir / "checkpoints", run_fingerprint(trial, base_sha256, data.manifests))
    ready = announce_prepared(out_dir, resume.step if resume else None) if task_rank == 0 else None
    configure_model(model, trial, {split: m["path"] for split, m in data.manifests.items()}, data.train_durations,
                    resources)
    frozen = nemo_models.frozen_modules(model, trial.values["freeze_encoder_layers"], trial.values["freeze_rnnt_decoder"],
                                        trial.values["ctc_only"])
    nemo_models.freeze(frozen)
    parameters = nemo_models.count_parameters(model)
    device = device_settings(resources)
    seen = dataloading.SamplesSeen(model.cfg.sample_rate, out_dir)
    metrics = MetricsAcrossResume(out_dir / METRICS_CSV, resumed=resume is not None)
    trainer = _trial_trainer(trial, device, out_dir, frozen, seen)
    model.set_trainer(trainer)
    model.setup_optimization(model.cfg.optim)
    fit_started = time.time()
    trainer.fit(model, ckpt_path=str(resume.checkpoint) if resume else None)
    fit_seconds = time.time() - fit_started
    if not trainer.is_global_zero:
        return {}
    if ready is not None:
        ready.unlink(missing_ok=True)
    metrics.restore(resume.step if resume else 0)
    training = _training_figures(trial, trainer, resume, seen, fit_seconds)
    metadata = {**_metadata(trial, base_model, base_sha256, parameters, frozen, data, device, resources, trainer,
                          training),
                "wall_seconds": round(time.time() - started, 2)}
    plot_training_curves(out_dir / METRICS_CSV, out_dir / "training_curves.png",
                         title=f"{trial.name}: {trial.values['monitor']}")
    write_json(out_dir / "training_metadata.json", metadata)
    return metadata
