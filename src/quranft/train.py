"""Training one trial: restore the base model, freeze what the trial freezes, fine-tune, checkpoint.

Writes into the trial's folder:
  data/{train,validation}.jsonl   the manifests trained on (the trial's blend, text option applied)
  checkpoints/                    top-k by the monitored validation WER, and last.ckpt
  logs/csv/metrics.csv, logs/tb/  metrics, CSV and TensorBoard
  training_curves.png             training loss and validation WER by step
  training_metadata.json          everything needed to reproduce and judge the run

A run that is killed resumes from checkpoints/last.ckpt when re-run with the same training values
and data; with changed ones, the old checkpoints are moved aside and training starts over
(quranft.resume).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from nemo.collections.asr.losses.rnnt import RNNTLoss
from omegaconf import open_dict

from quranft import dataloading, nemo_models, rnnt_loss
from quranft.blend import blend_rows, write_manifest
from quranft.curves import plot_training_curves
from quranft.errors import QuranftError
from quranft.fileio import write_json
from quranft.resume import (MetricsAcrossResume, StoppedEarlyStaysStopped, prepare_checkpoints,
                             run_fingerprint)
from quranft.launch import RankDataRecord, announce_prepared, slurm_task_rank, wait_until_prepared
from quranft.text import describe, make_mapper, missing_characters
from quranft.trials import DATA_CAP_KEYS, Trial

log = logging.getLogger("quranft")


class TrainingError(QuranftError, RuntimeError):
    """A trial that cannot train as configured; the message names the trial file and key."""


@dataclass(frozen=True)
class Resources:
    """Where to train; comes from the rule's resources, never from the trial."""

    gpus: int = 0  # 0 trains on the CPU
    num_nodes: int = 1
    cpu_processes: int = 1  # DDP processes on the CPU (gloo), when gpus == 0
    threads: int = 1  # the job's CPU threads, shared by its processes on a node


def threads_per_process(resources: Resources) -> int:
    """The job's threads shared by its training processes on this node (one per GPU, or the CPU
    processes): each keeps one for its training loop and gives the others to data-loading workers,
    so that a job of 8 threads trains one process with 7 workers. A Slurm task started by
    quranft.launch has CPUs of its own (the job holds the rule's threads per task): it uses them."""
    from quranft.launch import slurm_task_rank, task_cpus

    own_cpus = task_cpus() if slurm_task_rank() is not None else None
    if own_cpus:
        return own_cpus
    processes = resources.gpus if resources.gpus > 0 else resources.cpu_processes
    return max(1, resources.threads // max(1, processes))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def versions() -> dict[str, str]:
    import lightning
    import nemo

    return {"python": platform.python_version(), "torch": torch.__version__, "nemo_toolkit": nemo.__version__,
            "lightning": lightning.__version__}


def _write_manifest(path: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Write a manifest; return its path, size and hash."""
    write_manifest(path, rows)
    return {"path": str(path), "rows": len(rows), "hours": round(sum(r["duration"] for r in rows) / 3600, 4),
            "sha256": sha256_file(path)}


def _device_settings(resources: Resources) -> dict[str, Any]:
    if resources.gpus > 0:
        if not torch.cuda.is_available():
            raise TrainingError(f"the rule asks for {resources.gpus} GPU(s), but CUDA is not available here")
        precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        devices = resources.gpus
        settings = {"accelerator": "gpu", "devices": devices, "precision": precision}
    else:
        if torch.cuda.is_available():
            log.warning("%s\nTRAINING ON THE CPU although CUDA sees %d GPU(s) here: the job asked for no GPU "
                        "(resources gpu=0). On a GPU machine run `snakemake --profile gpu`, or give the rule "
                        "GPUs with --set-resources train_trial:gpu=1.\n%s", "!" * 100,
                        torch.cuda.device_count(), "!" * 100)
        devices = resources.cpu_processes
        settings = {"accelerator": "cpu", "devices": devices, "precision": "32-true"}
    settings["num_nodes"] = resources.num_nodes
    settings["strategy"] = "ddp" if devices * resources.num_nodes > 1 else "auto"
    return settings


def _check_rnnt_loss(trial: Trial, gpus: int) -> None:
    """Fail early, and clearly, where NeMo's default numba RNNT loss cannot run."""
    values = trial.values
    if values["ctc_only"] or values["rnnt_loss"] not in ("default", "warprnnt_numba") or gpus == 0:
        return
    try:
        from numba import cuda
        from numba.cuda.cudadrv.nvvm import NVVM

        if not cuda.is_available():
            raise RuntimeError("numba sees no CUDA device")
        NVVM()
    except Exception as error:  # numba raises several types for a missing libNVVM
        raise TrainingError(
            f"{trial.files[0]}: key 'rnnt_loss' is '{values['rnnt_loss']}' (NeMo's numba RNNT loss), "
            f"which cannot run on this GPU: {error}. Set rnnt_loss: pytorch (slower, no numba) "
            "or ctc_only: true in the trial."
        ) from None


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
    coverage = {"text_option": values["text_option"], "missing_before": describe(missing),
                "missing_after": describe(still_missing), "characters": characters, "unknown": unknown,
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


def _configure_model(model, trial: Trial, manifests: dict[str, dict], train_durations: list[float],
                     resources: Resources) -> None:
    values = trial.values
    workers = threads_per_process(resources) - 1
    common = {"sample_rate": model.cfg.sample_rate, "num_workers": workers, "pin_memory": resources.gpus > 0}
    with open_dict(model.cfg):
        model.cfg.train_ds = dataloading.train_config(values, manifests["train"]["path"], train_durations, common)
        model.cfg.validation_ds = {**common, "manifest_filepath": manifests["validation"]["path"],
                                   "batch_size": values["batch_size"], "shuffle": False, "use_start_end_token": False}
    if not model.cfg.train_ds.get("defer_setup"):
        model.setup_training_data(model.cfg.train_ds)
    model.setup_validation_data(model.cfg.validation_ds)

    nemo_models.update_config(model, "spec_augment", {
        "freq_masks": values["spec_freq_masks"], "time_masks": values["spec_time_masks"],
        "freq_width": values["spec_freq_width"], "time_width": values["spec_time_width"],
    })
    model.spec_augmentation = model.from_config_dict(model.cfg.spec_augment)

    if not values["ctc_only"]:
        model.ctc_loss_weight = values["ctc_loss_weight"]
        nemo_models.update_config(model, "aux_ctc", {"ctc_loss_weight": values["ctc_loss_weight"]})
        with open_dict(model.cfg):
            model.cfg.loss = {"loss_name": values["rnnt_loss"]}
        model.loss = RNNTLoss(num_classes=model.joint.num_classes_with_blank - 1, loss_name=values["rnnt_loss"],
                              reduction=model.cfg.get("rnnt_reduction", "mean_batch"))
        if resources.gpus == 0:  # the same loss, without NeMo's per-cell Python loop on the CPU
            rnnt_loss.install(model.loss, values["rnnt_loss"])
        if model.joint.fuse_loss_wer:
            model.joint.set_loss(model.loss)

    lr, min_lr = values["lr"] * values["lr_scale"], values["min_lr"] * values["lr_scale"]
    sched: dict[str, Any] = {"name": "CosineAnnealing", "warmup_steps": values["warmup_steps"],
                             "min_lr": min_lr, "max_steps": values["max_steps"]}
    if values["scheduler"] == "Constant":
        sched = {"name": "ConstantAnnealing" if values["warmup_steps"] == 0 else "WarmupHoldPolicy",
                 "warmup_steps": values["warmup_steps"], "hold_steps": values["max_steps"],
                 "min_lr": lr, "max_steps": values["max_steps"]}
    with open_dict(model.cfg):
        model.cfg.optim = {"name": "adamw", "lr": lr, "weight_decay": values["weight_decay"],
                           "betas": [0.9, 0.98], "sched": sched}


class KeepFrozenInEval(pl.Callback):
    """The trainer puts every module in train mode; frozen ones go back to eval before each batch,
    so that BatchNorm running statistics and dropout stay fixed in them."""

    def __init__(self, frozen: list[tuple[str, torch.nn.Module]]):
        self.frozen = frozen

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for _, module in self.frozen:
            module.eval()


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
    if values["early_stopping_patience"] is not None:
        callbacks.append(EarlyStopping(monitor=monitor, mode="min", patience=values["early_stopping_patience"]))
    return callbacks


def train_trial(trial: Trial, base_model: str | Path, source_dirs: dict[str, str | Path], out_dir: str | Path,
                resources: Resources = Resources()) -> dict[str, Any]:
    """Fine-tune `base_model` as `trial` says; return (and write) the training metadata."""
    started = time.time()
    out_dir = Path(out_dir)
    base_model = Path(base_model)
    values = trial.values
    _check_rnnt_loss(trial, resources.gpus)
    task_rank = slurm_task_rank()
    if task_rank:  # the other Slurm tasks prepare once rank 0 has decided what the run resumes from
        wait_until_prepared(out_dir)
    torch.set_num_threads(threads_per_process(resources))
    pl.seed_everything(values["seed"], workers=True)

    model = nemo_models.restore(base_model, ctc_only=values["ctc_only"])
    layers = len(model.encoder.layers)
    if values["freeze_encoder_layers"] > layers:
        raise TrainingError(
            f"{trial.files[0]}: key 'freeze_encoder_layers' is {values['freeze_encoder_layers']}, "
            f"but the base model's encoder has {layers} layers"
        )

    caps = {key: values[key] for key in DATA_CAP_KEYS}
    rows, blend_report = blend_rows(source_dirs, values["include_retasy"], caps)
    mapped, coverage = _map_text(trial, rows, nemo_models.can_encode(model))
    data_dir = out_dir / "data"
    manifests = {split: _write_manifest(data_dir / f"{split}.jsonl", split_rows) for split, split_rows in mapped.items()}
    if not mapped["train"] or not mapped["validation"]:
        raise TrainingError(f"{trial.files[0]}: the trial's blend leaves an empty train or validation manifest")

    checkpoints = out_dir / "checkpoints"
    base_sha256 = sha256_file(base_model)
    resume = prepare_checkpoints(checkpoints, run_fingerprint(trial, base_sha256, manifests))
    if task_rank == 0:
        ready = announce_prepared(out_dir, resume.step if resume else None)
    _configure_model(model, trial, manifests, [r["duration"] for r in mapped["train"]], resources)
    frozen = nemo_models.frozen_modules(model, values["freeze_encoder_layers"], values["freeze_rnnt_decoder"])
    nemo_models.freeze(frozen)
    parameters = nemo_models.count_parameters(model)

    device = _device_settings(resources)
    seen = dataloading.SamplesSeen(model.cfg.sample_rate)
    metrics = MetricsAcrossResume(out_dir / "logs" / "csv" / "metrics.csv", resumed=resume is not None)
    loggers = [CSVLogger(out_dir / "logs", name="", version="csv"),
               TensorBoardLogger(out_dir / "logs", name="", version="tb")]
    trainer = pl.Trainer(
        **device,
        max_steps=values["max_steps"],
        accumulate_grad_batches=values["grad_accum"],
        val_check_interval=values["val_interval"] * values["grad_accum"],
        check_val_every_n_epoch=None,
        gradient_clip_val=values["gradient_clip_val"] or None,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, values["val_interval"] // 2)),
        logger=loggers,
        callbacks=[*_callbacks(trial, checkpoints, frozen, seen), RankDataRecord(out_dir).callback],
        enable_progress_bar=os.isatty(2),
        enable_model_summary=False,
        # Lhotse's sampler splits the batches between DDP ranks itself; Lightning's would wrap it.
        use_distributed_sampler=values["batching"] == dataloading.FIXED,
        default_root_dir=out_dir,
    )
    model.set_trainer(trainer)
    model.setup_optimization(model.cfg.optim)
    fit_started = time.time()
    trainer.fit(model, ckpt_path=str(resume.checkpoint) if resume else None)
    fit_seconds = time.time() - fit_started
    if not trainer.is_global_zero:
        return {}
    if task_rank == 0:
        ready.unlink(missing_ok=True)

    start_step = resume.step if resume else 0
    metrics.restore(start_step)
    steps_run = trainer.global_step - start_step
    checkpoint = trainer.checkpoint_callback
    ranked = sorted(((float(score), path) for path, score in checkpoint.best_k_models.items()), key=lambda x: x[0])
    metadata = {
        "trial": trial.name,
        "trial_files": [str(f) for f in trial.files],
        "trial_values": values,
        "base_model": {"path": str(base_model), "sha256": base_sha256},
        "parameters": parameters,
        "frozen_modules": [name for name, _ in frozen],
        "data": {"manifests": manifests, "blend": blend_report},
        "tokenizer_coverage": coverage,
        "device": {**device, "device_name": torch.cuda.get_device_name(0) if resources.gpus else platform.processor()
                   or platform.machine(), "cpu_threads": torch.get_num_threads(),
                   "data_workers": threads_per_process(resources) - 1},
        "training": {
            "global_step": trainer.global_step, "resumed_from_step": resume.step if resume else None,
            "stopped_early": values["early_stopping_patience"] is not None and trainer.global_step < values["max_steps"],
            "fit_seconds": round(fit_seconds, 2), "steps_per_second": round(steps_run / fit_seconds, 4) if fit_seconds else None,
            "samples_seen": seen.samples, "audio_seconds_seen": round(seen.audio_seconds, 2),
            "samples_per_second": round(seen.samples / fit_seconds, 3) if fit_seconds else None,
            "audio_seconds_per_second": round(seen.audio_seconds / fit_seconds, 3) if fit_seconds else None,
            "monitor": values["monitor"],
            "best_score": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
        },
        "checkpoints": {"top_k": [{"path": str(p), values["monitor"]: s} for s, p in ranked],
                        "last": str(checkpoints / "last.ckpt")},
        "versions": versions(),
        "git_commit": git_commit(),
        "wall_seconds": round(time.time() - started, 2),
    }
    plot_training_curves(out_dir / "logs" / "csv" / "metrics.csv", out_dir / "training_curves.png",
                         title=f"{trial.name}: {values['monitor']}")
    write_json(out_dir / "training_metadata.json", metadata)
    return metadata
