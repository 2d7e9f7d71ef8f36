"""Where a resumed duration-batched run picks up its epoch's data order.

Lhotse's sampler (batching: duration) draws an epoch's batches from its seed and the epoch number.
The DataLoader asks it for batches ahead of training (its workers' prefetch, and Lightning's one
batch more), so the sampler's own position when a checkpoint is written is past what was trained;
and its state_dict() refuses the sampling constraint NeMo gives it. So the checkpoint records the
epoch and the batches this rank trained in it (every DDP rank trains as many), and a resumed run
walks a fresh sampler of that epoch past them, reading the manifest's metadata only, before the
DataLoader draws its first batch: the batches after the resume are those an uninterrupted run
would have trained next, on every rank.

A checkpoint of a run on another number of processes, or of a run from before this record,
restarts its epoch's order. Fixed batching (a PyTorch sampler) is left as Lightning leaves it.
"""

from __future__ import annotations

import logging
from itertools import islice
from typing import Any

import lightning.pytorch as pl
from lhotse.dataset.sampling.base import CutSampler

log = logging.getLogger("quranft")


def walk_sampler(sampler: CutSampler, epoch: int, batches: int) -> int:
    """Set `sampler` to `epoch`, past its first `batches` batches of this rank, so that the next
    iter() (the DataLoader's) continues from there, as Lhotse's own load_state_dict does; returns
    the batches walked (fewer where the epoch has fewer)."""
    sampler.set_epoch(epoch)
    sampler.allow_iter_to_reset_state()  # a fresh pass over `epoch`, whatever was drawn before
    walked = sum(1 for _ in islice(sampler, batches))
    sampler._just_restored_state = True  # Lhotse's flag: the next iter() keeps this position
    return walked


class DataOrderAcrossResume(pl.Callback):
    """Counts the batches trained in the current epoch, keeps them in the checkpoint, and at the
    start of a resumed fit walks the train loader's Lhotse sampler to that position."""

    def __init__(self):
        self.epoch = 0
        self.batches = 0
        self.world_size = 1
        self.restored: dict[str, int] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self.batches, "world_size": self.world_size}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.restored = dict(state_dict)

    def on_fit_start(self, trainer, pl_module):
        # After the checkpoint's callback states are loaded (DDP and single-device strategies
        # restore before fit start) and before the fit loop first iterates the train loader.
        self.world_size = trainer.world_size
        if self.restored is None:
            return
        restored, self.restored = self.restored, None
        sampler = getattr(pl_module.train_dataloader(), "sampler", None)
        if not isinstance(sampler, CutSampler):
            log.warning("the train loader has no Lhotse sampler: the resumed run restarts its epoch's data order")
        elif restored["world_size"] != trainer.world_size:
            log.warning("the checkpoint was trained on %d processes, this run has %d: the resumed run restarts "
                        "epoch %d's data order", restored["world_size"], trainer.world_size, restored["epoch"])
            walk_sampler(sampler, restored["epoch"], 0)
        else:
            walked = walk_sampler(sampler, restored["epoch"], restored["batches"])
            self.epoch, self.batches = restored["epoch"], walked
            log.info("resumed epoch %d's data order after its %d trained batches", self.epoch, walked)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch != self.epoch:
            self.epoch, self.batches = trainer.current_epoch, 0
        self.batches += 1
