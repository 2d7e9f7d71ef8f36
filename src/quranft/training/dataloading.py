"""How a trial's training data is batched, what padding a batching leaves, and what training saw.

batching: fixed     `batch_size` clips per batch and device: NeMo's classic loader, shuffled;
                    Lightning's DistributedSampler gives each DDP rank its own share.
batching: duration  batches of up to `batch_duration` seconds of audio, each drawn from one bucket
                    of clips of similar duration: NeMo's Lhotse loader (`use_lhotse: true`) with
                    Lhotse's DynamicBucketingSampler. The sampler is seeded and built when the
                    trainer starts (`defer_setup`), so that it knows its DDP rank: every rank
                    walks the same order and keeps every world_size-th batch. An epoch is one pass
                    over the manifest, of no known length: training runs for `max_steps`.

Validation always uses NeMo's classic loader, `batch_size` clips a batch, in manifest order.

NeMo is imported only where the sampler itself is drawn from (train_sampler), for the tests and
scripts/bench_batching.py; the padding measure needs nothing of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from quranft.fileio import write_json

FIXED, DURATION = "fixed", "duration"
# The classic loader's duration filter, kept for Lhotse batches too.
MIN_DURATION, MAX_DURATION = 0.1, 30.0
FRAME_SHIFT = 0.01  # seconds per feature frame of the preprocessor


def bucket_duration_bins(durations: Sequence[float], num_buckets: int) -> list[float]:
    """Lhotse's bucket boundaries for these clip durations: each bucket holds about the same total
    audio, so buckets are narrow where most of the audio is. Fewer buckets when there are fewer clips
    (or distinct durations) than buckets; no boundaries (one bucket) below two clips."""
    from lhotse import MonoCut
    from lhotse.dataset.sampling.dynamic_bucketing import estimate_duration_buckets

    buckets = min(num_buckets, len(durations))
    if buckets < 2:
        return []
    cuts = (MonoCut(id=str(i), start=0.0, duration=float(d), channel=0) for i, d in enumerate(durations))
    return sorted({round(float(b), 3) for b in estimate_duration_buckets(cuts, num_buckets=buckets)})


def validation_config(manifest: str, batch_size: int, common: Mapping[str, Any]) -> dict[str, Any]:
    """NeMo's validation_ds: the classic loader, `batch_size` clips a batch, in manifest order."""
    return {**common, "manifest_filepath": manifest, "batch_size": batch_size, "shuffle": False,
            "use_start_end_token": False}


def train_config(values: Mapping[str, Any], manifest: str, durations: Sequence[float],
                 common: Mapping[str, Any]) -> dict[str, Any]:
    """NeMo's train_ds for the trial's batching; `common` holds the loader settings both share
    (sample_rate, num_workers, pin_memory)."""
    if values["batching"] == FIXED:
        return {**common, "manifest_filepath": manifest, "batch_size": values["batch_size"], "shuffle": True,
                "max_duration": MAX_DURATION, "min_duration": MIN_DURATION, "is_tarred": False,
                "use_start_end_token": False}
    return {
        **common, "use_lhotse": True, "manifest_filepath": manifest,
        "batch_duration": values["batch_duration"], "quadratic_duration": values["quadratic_duration"],
        "use_bucketing": True, "num_buckets": values["num_buckets"],
        "bucket_duration_bins": bucket_duration_bins(durations, values["num_buckets"]) or None,
        "bucket_buffer_size": values["bucket_buffer_size"],
        "shuffle_buffer_size": None,  # Lhotse would add it to the bucket buffer
        "shuffle": True, "drop_last": False, "max_duration": MAX_DURATION, "min_duration": MIN_DURATION,
        # The same seed on every rank (NeMo's "trng" default would shuffle each rank its own way,
        # and the ranks' batches would overlap), and no background bucketing thread, whose timing
        # would make the batches differ between ranks.
        "seed": values["seed"], "shard_seed": values["seed"], "concurrent_bucketing": False,
        "pretokenize": False,  # tokenized in the loader's workers, not in the training process
        "defer_setup": True,
    }


def train_sampler(train_ds: Mapping[str, Any], rank: int = 0, world_size: int = 1):
    """The Lhotse sampler that NeMo's loader builds for this train_ds on one DDP rank, reading the
    manifest's metadata only (no audio)."""
    from nemo.collections.common.data.lhotse.dataloader import (
        get_lhotse_sampler_from_config,
        make_structured_with_schema_warnings,
    )

    settings = {key: value for key, value in train_ds.items() if key != "defer_setup"}
    config = make_structured_with_schema_warnings({**settings, "metadata_only": True})
    sampler, _ = get_lhotse_sampler_from_config(config, global_rank=rank, world_size=world_size)
    return sampler


def sampled_batches(train_ds: Mapping[str, Any], rank: int = 0, world_size: int = 1,
                    epoch: int = 0) -> list[list[tuple[str, float]]]:
    """One epoch of the batches (clip id, duration) that NeMo's Lhotse loader draws for this
    train_ds on one DDP rank: the sampler training uses."""
    sampler = train_sampler(train_ds, rank, world_size)
    sampler.set_epoch(epoch)
    return [[(cut.id, cut.duration) for cut in batch] for batch in sampler]


def padding_share(batches: Iterable[Sequence[float]], frame_shift: float = FRAME_SHIFT) -> dict[str, float]:
    """How much of the batches' feature frames are padding: each clip padded to the longest of its
    batch. `padding_share` counts frames over all batches (the compute wasted), `mean_batch_padding`
    averages the batches' own shares."""
    frames = padded = clips = seconds = 0
    shares = []
    for batch in batches:
        lengths = [max(1, round(d / frame_shift)) for d in batch]
        total = max(lengths) * len(lengths)
        frames += total
        padded += total - sum(lengths)
        shares.append((total - sum(lengths)) / total)
        clips += len(lengths)
        seconds += sum(batch)
    n = len(shares)
    return {"batches": n, "clips": clips, "padding_share": padded / frames if frames else 0.0,
            "mean_batch_padding": sum(shares) / n if n else 0.0, "mean_batch_clips": clips / n if n else 0.0,
            "mean_batch_seconds": seconds / n if n else 0.0}


def clip_keys(batch) -> list[str]:
    """A key per clip of a training batch (signal, lengths, tokens, token lengths): its audio length
    and a hash of its target tokens. NeMo's batches carry no clip ids; these keys tell clips apart."""
    _, lengths, tokens, token_lengths = batch[:4]
    return [f"{length}:{hashlib.sha1(str(row[:count]).encode()).hexdigest()[:12]}"
            for length, row, count in zip(lengths.tolist(), tokens.tolist(), token_lengths.tolist())]


class SamplesSeen(pl.Callback):
    """Counts the batches, clips and seconds of audio that training steps saw (batch sizes vary
    with duration batching, so steps x batch_size would be wrong), summed over the DDP ranks at
    the end. With `out_dir`, each rank first writes what it saw itself to
    <out_dir>/logs/ranks/rank<k>.json: its batches and clips, and a key per clip (audio length and
    a hash of its target tokens) for its first `keep` clips, so that a DDP run shows every rank
    trained, on its own share."""

    def __init__(self, sample_rate: int, out_dir: str | Path | None = None, keep: int = 1000):
        self.sample_rate = sample_rate
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.keep = keep
        self.batches = 0
        self.samples = 0
        self.audio_seconds = 0.0
        self.keys: list[str] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        signal_lengths = batch[1]
        self.batches += 1
        self.samples += int(signal_lengths.shape[0])
        self.audio_seconds += float(signal_lengths.sum()) / self.sample_rate
        if self.out_dir is not None and len(self.keys) < self.keep:  # tokens to the host only while keys are kept
            self.keys += clip_keys(batch)[:self.keep - len(self.keys)]

    def on_train_end(self, trainer, pl_module):
        if self.out_dir is not None:
            write_json(self.out_dir / "logs" / "ranks" / f"rank{trainer.global_rank}.json",
                       {"rank": trainer.global_rank, "world_size": trainer.world_size, "batches": self.batches,
                        "samples": self.samples, "sample_keys": self.keys})
        seen = torch.tensor([self.samples, self.audio_seconds], dtype=torch.float64, device=pl_module.device)
        seen = trainer.strategy.reduce(seen, reduce_op="sum")
        self.samples, self.audio_seconds = int(seen[0]), float(seen[1])
