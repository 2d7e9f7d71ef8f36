"""What a training run is set up with: where it runs (the rule's resources), the model's data
loaders, SpecAugment, loss and optimizer from the trial's values, and the Lightning Trainer.

Shared by trial training (quranft.training.train) and the demo base's pretraining
(quranft.training.demo_base), so that both train the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from nemo.collections.asr.losses.rnnt import RNNTLoss
from omegaconf import open_dict

from quranft.errors import QuranftError
from quranft.models import nemo_models, rnnt_loss
from quranft.training import dataloading
from quranft.training.launch import slurm_task_rank, task_cpus
from quranft.training.trials import Trial

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
    quranft.training.launch has CPUs of its own (the job holds the rule's threads per task): it uses them."""
    own_cpus = task_cpus() if slurm_task_rank() is not None else None
    if own_cpus:
        return own_cpus
    processes = resources.gpus if resources.gpus > 0 else resources.cpu_processes
    return max(1, resources.threads // max(1, processes))


def device_settings(resources: Resources) -> dict[str, Any]:
    """The Trainer's accelerator, devices, precision, nodes and strategy for these resources."""
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


def check_rnnt_loss(trial: Trial, gpus: int) -> None:
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


def loader_settings(sample_rate: int, resources: Resources) -> dict[str, Any]:
    """What the train and validation loaders share: the rate, the workers, pinned memory on GPUs."""
    return {"sample_rate": sample_rate, "num_workers": threads_per_process(resources) - 1,
            "pin_memory": resources.gpus > 0}


def setup_data(model, values: Mapping[str, Any], manifests: Mapping[str, str], train_durations: Sequence[float],
               resources: Resources) -> None:
    """The model's train and validation loaders, as the trial batches (quranft.training.dataloading)."""
    common = loader_settings(model.cfg.sample_rate, resources)
    with open_dict(model.cfg):
        model.cfg.train_ds = dataloading.train_config(values, manifests["train"], train_durations, common)
        model.cfg.validation_ds = dataloading.validation_config(manifests["validation"], values["batch_size"], common)
    if not model.cfg.train_ds.get("defer_setup"):
        model.setup_training_data(model.cfg.train_ds)
    model.setup_validation_data(model.cfg.validation_ds)


def setup_spec_augment(model, values: Mapping[str, Any]) -> None:
    nemo_models.update_config(model, "spec_augment", {
        "freq_masks": values["spec_freq_masks"], "time_masks": values["spec_time_masks"],
        "freq_width": values["spec_freq_width"], "time_width": values["spec_time_width"],
    })
    model.spec_augmentation = model.from_config_dict(model.cfg.spec_augment)


def setup_hybrid_loss(model, values: Mapping[str, Any], gpus: int) -> None:
    """The RNNT loss named by the trial and the CTC weight (hybrid trials only)."""
    model.ctc_loss_weight = values["ctc_loss_weight"]
    nemo_models.update_config(model, "aux_ctc", {"ctc_loss_weight": values["ctc_loss_weight"]})
    with open_dict(model.cfg):
        model.cfg.loss = {"loss_name": values["rnnt_loss"]}
    model.loss = RNNTLoss(num_classes=model.joint.num_classes_with_blank - 1, loss_name=values["rnnt_loss"],
                          reduction=model.cfg.get("rnnt_reduction", "mean_batch"))
    if gpus == 0:  # the same loss, without NeMo's per-cell Python loop on the CPU
        rnnt_loss.install(model.loss, values["rnnt_loss"])
    if model.joint.fuse_loss_wer:
        model.joint.set_loss(model.loss)


def optim_config(lr: float, min_lr: float, weight_decay: float, warmup_steps: int, max_steps: int,
                 scheduler: str = "CosineAnnealing") -> dict[str, Any]:
    """NeMo's optim section: AdamW, warm-up, then cosine decay to `min_lr` (or constant)."""
    sched: dict[str, Any] = {"name": "CosineAnnealing", "warmup_steps": warmup_steps, "min_lr": min_lr,
                             "max_steps": max_steps}
    if scheduler == "Constant":
        sched = {"name": "ConstantAnnealing" if warmup_steps == 0 else "WarmupHoldPolicy",
                 "warmup_steps": warmup_steps, "hold_steps": max_steps, "min_lr": lr, "max_steps": max_steps}
    return {"name": "adamw", "lr": lr, "weight_decay": weight_decay, "betas": [0.9, 0.98], "sched": sched}


def configure_model(model, trial: Trial, manifests: Mapping[str, str], train_durations: Sequence[float],
                    resources: Resources) -> None:
    """Everything the trial sets on the restored model before training starts."""
    values = trial.values
    setup_data(model, values, manifests, train_durations, resources)
    setup_spec_augment(model, values)
    if not values["ctc_only"]:
        setup_hybrid_loss(model, values, resources.gpus)
    with open_dict(model.cfg):
        model.cfg.optim = optim_config(values["lr"] * values["lr_scale"], values["min_lr"] * values["lr_scale"],
                                       values["weight_decay"], values["warmup_steps"], values["max_steps"],
                                       values["scheduler"])


class KeepFrozenInEval(pl.Callback):
    """The trainer puts every module in train mode; frozen ones go back to eval before each batch,
    so that BatchNorm running statistics and dropout stay fixed in them."""

    def __init__(self, frozen: list[tuple[str, torch.nn.Module]]):
        self.frozen = frozen

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        for _, module in self.frozen:
            module.eval()


def build_trainer(device: Mapping[str, Any], max_steps: int, val_interval: int, grad_accum: int = 1,
                  gradient_clip_val: float | None = None, loggers: list | bool = False,
                  callbacks: Sequence[pl.Callback] = (), out_dir=None,
                  distributed_sampler: bool = True) -> pl.Trainer:
    """A Trainer that runs `max_steps` optimizer steps and validates every `val_interval` of them
    (no epochs, no sanity check); it checkpoints only when given a ModelCheckpoint callback."""
    return pl.Trainer(
        **device,
        max_steps=max_steps,
        accumulate_grad_batches=grad_accum,
        val_check_interval=val_interval * grad_accum,
        check_val_every_n_epoch=None,
        gradient_clip_val=gradient_clip_val or None,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, val_interval // 2)),
        logger=loggers,
        callbacks=list(callbacks),
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=os.isatty(2),
        enable_model_summary=False,
        use_distributed_sampler=distributed_sampler,
        default_root_dir=out_dir,
    )
