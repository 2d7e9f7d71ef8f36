"""Training that is killed and resumed, or re-run after an edit: from the last checkpoint, its
data order kept, an edited setting starting over with the old checkpoints kept aside, an edited
average_top_k averaging again. Apart from tests/test_train.py so that the two files run side by
side (each is minutes long)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time

import pytest
import torch

from conftest import REPO
from quranft.training.trials import load_trial
from test_train import DURATION_BATCHING, cli_config, sources, train_command, write_trial

pytestmark = pytest.mark.slow


def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path, tiny_base, demo_data_stage):
    """Killed from outside once its first checkpoint (step 5) is written, resumed to step 10 (here,
    in the test's process: a new process would only import NeMo again); a duration-batched run
    killed and resumed: the next test."""
    from quranft.training.train import train_trial

    trials = write_trial(tmp_path / "trials", max_steps=10, val_interval=5)
    command = train_command(cli_config(tmp_path, trials), "t", tiny_base, demo_data_stage, tmp_path / "out")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "out" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not last.exists() and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "out" / "training_metadata.json").exists()
    step = torch.load(last, map_location="cpu", weights_only=False)["global_step"]
    assert 5 <= step < 10
    train_trial(load_trial(trials, "t"), tiny_base, sources(demo_data_stage), tmp_path / "out")
    metadata = json.loads((tmp_path / "out" / "training_metadata.json").read_text())
    assert metadata["training"]["resumed_from_step"] == step
    assert metadata["training"]["global_step"] == 10


def test_a_killed_duration_batched_run_resumes_its_epochs_data_order(tmp_path, tiny_base, demo_data_stage,
                                                                     monkeypatch):
    """Killed two steps after a checkpoint written mid-way through a later epoch, the run trains
    after its resume exactly the batches an uninterrupted run trains after that checkpoint's step.
    The killed run is a process of its own (it sends itself SIGKILL); the uninterrupted and the
    resumed runs train in the test's process, with the same threads and data workers."""
    from support.recorded_train import KILL_AT, RECORD, read_batches, recording

    from quranft.models.nemo_models import CTCOnlyHybridModel
    from quranft.training.configure import Resources
    from quranft.training.train import train_trial

    max_steps, val_interval = 20, 4
    trials = write_trial(tmp_path / "trials", max_steps=max_steps, val_interval=val_interval, **DURATION_BATCHING)
    monkeypatch.setattr(CTCOnlyHybridModel, "training_step", recording(CTCOnlyHybridModel.training_step))
    monkeypatch.delenv(KILL_AT, raising=False)
    threads = torch.get_num_threads()

    def train_here(out: str, record: str) -> dict:
        monkeypatch.setenv(RECORD, str(tmp_path / record))
        try:
            return train_trial(load_trial(trials, "t"), tiny_base, sources(demo_data_stage), tmp_path / out,
                               Resources(threads=3))
        finally:
            torch.set_num_threads(threads)

    train_here("uninterrupted", "uninterrupted.jsonl")
    uninterrupted = read_batches(tmp_path / "uninterrupted.jsonl")
    assert [batch["step"] for batch in uninterrupted] == list(range(max_steps))
    epochs = [batch["epoch"] for batch in uninterrupted]
    # the first checkpoint after which the next batch is still in the same epoch, not the first
    checkpoint = next((step for step in range(val_interval, max_steps - 2, val_interval)
                       if epochs[step - 1] == epochs[step] >= 1), None)
    assert checkpoint is not None, f"no checkpoint falls mid-way through a later epoch (epochs by step: {epochs})"

    command = train_command(cli_config(tmp_path, trials), "t", tiny_base, demo_data_stage, tmp_path / "run",
                            "--threads", "3")
    command[1:3] = [str(REPO / "tests" / "support" / "recorded_train.py")]  # python -m quranft, recording
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), **{RECORD: str(tmp_path / "killed.jsonl"),
                                                           KILL_AT: str(checkpoint + 2)})
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "run" / "training_metadata.json").exists()
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == checkpoint
    assert read_batches(tmp_path / "killed.jsonl") == uninterrupted[:checkpoint + 2]
    metadata = train_here("run", "resumed.jsonl")
    assert metadata["training"]["resumed_from_step"] == checkpoint and metadata["training"]["global_step"] == max_steps
    assert read_batches(tmp_path / "resumed.jsonl") == uninterrupted[checkpoint:]


def test_a_changed_training_setting_starts_over_keeping_the_old_checkpoints_aside(tmp_path, tiny_base,
                                                                                  demo_data_stage, caplog):
    from quranft.training.train import train_trial

    trials = write_trial(tmp_path / "trials", max_steps=3, val_interval=3)
    train_trial(load_trial(trials, "t"), tiny_base, sources(demo_data_stage), tmp_path / "out")
    first = sorted(p.name for p in (tmp_path / "out" / "checkpoints").glob("*.ckpt"))
    write_trial(trials, max_steps=3, val_interval=3, lr=2.0e-3)
    with caplog.at_level(logging.WARNING, logger="quranft"):
        metadata = train_trial(load_trial(trials, "t"), tiny_base, sources(demo_data_stage), tmp_path / "out")
    assert metadata["training"]["resumed_from_step"] is None and metadata["training"]["global_step"] == 3
    [aside] = (tmp_path / "out").glob("checkpoints.superseded-*")
    assert sorted(p.name for p in aside.glob("*.ckpt")) == first
    assert "trial.lr: 0.001 -> 0.002" in caplog.text and str(aside) in caplog.text


def test_editing_average_top_k_keeps_the_checkpoints_and_only_averages_again(tmp_path, tiny_base, demo_data_stage):
    from quranft.training.average import average_trial
    from quranft.training.train import train_trial

    trials = write_trial(tmp_path / "trials", max_steps=6, val_interval=3, save_top_k=2, average_top_k=1)
    out = tmp_path / "out"
    train_trial(load_trial(trials, "t"), tiny_base, sources(demo_data_stage), out)
    checkpoints = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "checkpoints").glob("*.ckpt")}
    assert len(checkpoints) == 3  # the two best and last.ckpt
    write_trial(trials, max_steps=6, val_interval=3, save_top_k=2, average_top_k=2, trigger="edited")
    trial = load_trial(trials, "t")
    metadata = train_trial(trial, tiny_base, sources(demo_data_stage), out)
    assert metadata["training"]["resumed_from_step"] == 6 and metadata["training"]["global_step"] == 6
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (out / "checkpoints").glob("*.ckpt")} == checkpoints
    assert not list(out.glob("checkpoints.superseded-*"))
    assert len(metadata["checkpoints"]["top_k"]) == 2 and metadata["trial_values"]["average_top_k"] == 2
    # the curves still show the training the resumed run did not redo
    curves = (out / "logs" / "csv" / "metrics.csv").read_text(encoding="utf-8")
    assert len([line for line in curves.splitlines()[1:] if line.strip()]) >= 2
    averaging = average_trial(out, tiny_base, trial.values["average_top_k"], "always")
    assert len(averaging["members"]) == 2
