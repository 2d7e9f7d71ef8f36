"""Resume or restart, without training: what the run record compares, and where old checkpoints go."""

from __future__ import annotations

import logging
from types import SimpleNamespace

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
