"""Resume or restart, without training: what the run record compares, where old checkpoints go, and
where a resumed duration-batched run's data order picks up."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping

from conftest import REPO
from quranft.fileio import read_json, write_json
from quranft.training.resume import RUN_FILE, Resume, StoppedEarlyStaysStopped, prepare_checkpoints, run_fingerprint
from quranft.training.trials import load_trial

MANIFESTS = {"train": {"sha256": "a" * 64}, "validation": {"sha256": "b" * 64}}


def trained(tmp_path, record: dict):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    torch.save({"global_step": 7}, checkpoints / "last.ckpt")
    write_json(checkpoints / RUN_FILE, record)
    return checkpoints


def test_a_record_from_before_holding_every_trial_value_still_resumes(tmp_path):
    """Records written before the fingerprint left out trigger and average_top_k held them, lack
    keys added since (max_unknown_char_fraction) and hold keys removed since (output_name): their
    checkpoints are kept."""
    trial = load_trial(REPO / "config" / "trials", "v1")
    fingerprint = run_fingerprint(trial, "c" * 64, MANIFESTS)
    old_values = {key: value for key, value in trial.values.items() if key != "max_unknown_char_fraction"}
    old_values.update(average_top_k=3, trigger="older wording", output_name="old-name")
    checkpoints = trained(tmp_path, {**fingerprint, "trial": old_values})
    assert prepare_checkpoints(checkpoints, fingerprint) == Resume(checkpoints / "last.ckpt", 7)


def test_changed_training_values_move_the_checkpoints_aside_and_log_what_changed(tmp_path, caplog):
    trial = load_trial(REPO / "config" / "trials", "v1")
    old = run_fingerprint(trial, "c" * 64, MANIFESTS)
    checkpoints = trained(tmp_path, old)
    new = {**old, "trial": {**old["trial"], "lr": 1e-4}, "base_model_sha256": "d" * 64}
    with caplog.at_level(logging.WARNING, logger="quranft"):
        assert prepare_checkpoints(checkpoints, new) is None
    [aside] = tmp_path.glob("checkpoints.superseded-*")
    assert (aside / "last.ckpt").is_file() and read_json(aside / RUN_FILE) == old
    assert list(checkpoints.iterdir()) == [checkpoints / RUN_FILE] and read_json(checkpoints / RUN_FILE) == new
    assert f"base_model_sha256: '{'c' * 64}' -> '{'d' * 64}'" in caplog.text
    assert "trial.lr: 5e-05 -> 0.0001" in caplog.text and str(aside) in caplog.text


def test_a_run_that_stopped_early_stops_again_when_resumed():
    stopper = EarlyStopping(monitor="val_wer_ctc", patience=2)
    trainer = SimpleNamespace(early_stopping_callback=stopper, should_stop=False, global_step=40)
    stopper.wait_count = 1  # still patient: training goes on
    StoppedEarlyStaysStopped().on_train_start(trainer, None)
    assert trainer.should_stop is False
    stopper.wait_count = 2  # as restored from a checkpoint saved when it stopped
    StoppedEarlyStaysStopped().on_train_start(trainer, None)
    assert trainer.should_stop is True


class ClipIds(torch.utils.data.Dataset):
    """A Lhotse-style dataset: a batch of cuts to their ids."""

    def __getitem__(self, cuts):
        return [cut.id for cut in cuts]


@pytest.mark.slow
@pytest.mark.parametrize("world_size", [1, 2])
def test_a_resumed_sampler_continues_its_epoch_after_the_batches_trained_on_every_rank(tmp_path, world_size):
    from quranft.training.data_order import DataOrderAcrossResume, walk_sampler
    from quranft.training.dataloading import sampled_batches, train_config, train_sampler

    durations = [round(1.0 + (7 * i % 23) / 2, 1) for i in range(90)]
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": f"clip{i}.wav", "duration": d, "text": "x"}) + "\n"
                                for i, d in enumerate(durations)), encoding="utf-8")
    train_ds = train_config({"batching": "duration", "batch_duration": 30.0, "quadratic_duration": None,
                             "num_buckets": 4, "bucket_buffer_size": 10000, "seed": 1}, str(manifest), durations,
                            {"sample_rate": 16000, "num_workers": 0, "pin_memory": False})
    for rank in range(world_size):
        epoch_1 = [[cut for cut, _ in batch] for batch in sampled_batches(train_ds, rank, world_size, epoch=1)]
        trained = DataOrderAcrossResume()  # 4 batches of epoch 0, then 5 of epoch 1
        trained.on_fit_start(SimpleNamespace(world_size=world_size), None)
        for epoch in [0] * 4 + [1] * 5:
            trained.on_train_batch_end(SimpleNamespace(current_epoch=epoch), None, None, None, 0)
        sampler = train_sampler(train_ds, rank, world_size)
        next(iter(sampler))  # drawn ahead in epoch 0, as a DataLoader prefetches
        loader = torch.utils.data.DataLoader(ClipIds(), sampler=sampler, batch_size=None, num_workers=2)
        resumed = DataOrderAcrossResume()
        resumed.load_state_dict(json.loads(json.dumps(trained.state_dict())))  # as a checkpoint keeps it
        resumed.on_fit_start(SimpleNamespace(world_size=world_size), SimpleNamespace(train_dataloader=lambda: loader))
        assert len(epoch_1) > 8 and list(loader) == epoch_1[5:]
        assert (resumed.epoch, resumed.batches) == (1, 5)
        # a checkpoint at the end of its epoch: nothing is left of it, and the next epoch is whole
        assert walk_sampler(sampler, 1, len(epoch_1) + 1) == len(epoch_1) and list(loader) == []
        sampler.set_epoch(2)
        assert list(loader) == [[cut for cut, _ in batch] for batch in sampled_batches(train_ds, rank, world_size, 2)]
