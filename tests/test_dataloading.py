"""Batching by duration: the padding measure, bucket boundaries, and the batches NeMo's Lhotse
loader draws (whole epochs, within batch_duration, each DDP rank its own share)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quranft.training.dataloading import bucket_duration_bins, padding_share, sampled_batches, train_config

COMMON = {"sample_rate": 16000, "num_workers": 0, "pin_memory": False}


def test_padding_share_counts_the_frames_each_clip_is_padded_with():
    # 1, 2, 3 and 4 s padded to 4 s: 6 of 16 s are padding; two clips of 2 s: none
    result = padding_share([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0]])
    assert result["padding_share"] == pytest.approx(6 / 20)
    assert result["mean_batch_padding"] == pytest.approx((6 / 16 + 0) / 2)
    assert (result["batches"], result["clips"], result["mean_batch_clips"]) == (2, 6, 3)
    assert result["mean_batch_seconds"] == pytest.approx(7.0)
    assert padding_share([])["padding_share"] == 0.0


def test_bucket_boundaries_hold_about_the_same_audio_each_and_shrink_with_few_clips():
    durations = [1.0] * 90 + [10.0] * 9  # 90 s of short clips, 90 s of long ones
    assert bucket_duration_bins(durations, 2) == [10.0]
    assert bucket_duration_bins(durations, 30) == [1.0, 10.0]  # no two buckets of the same clips
    spread = bucket_duration_bins([1 + i / 10 for i in range(200)], 30)
    assert 25 <= len(spread) <= 29 and spread == sorted(spread)
    assert np.diff(spread)[0] > np.diff(spread)[-1]  # narrower where the audio is
    assert 1 <= len(bucket_duration_bins([2.0, 3.0, 4.0], 30)) <= 2  # no more buckets than clips
    assert bucket_duration_bins([2.0], 30) == []


@pytest.fixture(scope="module")
def synthetic_manifest(tmp_path_factory):
    """A NeMo manifest of 400 clips of 0.6 to 30 s and no audio (the sampler reads metadata only)."""
    rng = np.random.default_rng(3)
    durations = np.clip(rng.lognormal(np.log(7.0), 0.6, 400), 0.6, 30.0).round(3).tolist()
    path = tmp_path_factory.mktemp("manifest") / "train.jsonl"
    path.write_text("".join(json.dumps({"audio_filepath": f"clip{i}.wav", "duration": d, "text": "x"}) + "\n"
                            for i, d in enumerate(durations)), encoding="utf-8")
    return path, durations


DURATION_TRIAL = {"batching": "duration", "batch_duration": 60.0, "quadratic_duration": None, "num_buckets": 8,
                  "bucket_buffer_size": 10000, "seed": 1, "batch_size": 4}


@pytest.mark.slow
def test_duration_batches_cover_an_epoch_within_batch_duration_with_little_padding(synthetic_manifest):
    path, durations = synthetic_manifest
    train_ds = train_config(DURATION_TRIAL, str(path), durations, COMMON)
    assert train_ds["use_lhotse"] and train_ds["use_bucketing"] and len(train_ds["bucket_duration_bins"]) == 7
    epoch = sampled_batches(train_ds)
    ids = [cut for batch in epoch for cut, _ in batch]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == len(durations)  # every clip once
    assert all(sum(d for _, d in batch) <= 60.0 for batch in epoch)
    sizes = {len(batch) for batch in epoch}
    assert min(sizes) <= 2 and max(sizes) >= 8  # few long clips or many short ones
    bucketed = padding_share([[d for _, d in batch] for batch in epoch])["padding_share"]
    shuffled = np.random.default_rng(0).permutation(durations).tolist()
    fixed = padding_share([shuffled[i:i + 4] for i in range(0, len(shuffled), 4)])["padding_share"]
    assert bucketed < 0.1 < fixed
    assert [c for b in sampled_batches(train_ds, epoch=1) for c, _ in b] != ids  # reshuffled each epoch


@pytest.mark.slow
def test_each_ddp_rank_draws_its_own_duration_batches(synthetic_manifest):
    path, durations = synthetic_manifest
    train_ds = train_config(DURATION_TRIAL, str(path), durations, COMMON)
    ranks = [sampled_batches(train_ds, rank=rank, world_size=2) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1])  # the same number of steps: no rank waits for the other
    ids = [{cut for batch in batches for cut, _ in batch} for batches in ranks]
    assert not ids[0] & ids[1]
    assert len(ids[0] | ids[1]) == len(durations)
