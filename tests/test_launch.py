"""Where training runs: one Slurm task per device, and a loud warning for a CPU run beside a GPU."""

from __future__ import annotations

import logging
import sys

import pytest

from quranft.training import launch


@pytest.fixture
def in_slurm_job(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    monkeypatch.delenv(launch.TASK_MARK, raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)


def test_a_job_on_two_devices_starts_two_tasks_running_the_same_command(in_slurm_job):
    argv = ["train", "--trial", "v1", "--gpus", "2"]
    assert launch.srun_command(2, 2, 1, 8, argv) == [
        "srun", "--overlap", "--ntasks=2", "--ntasks-per-node=2", "--nodes=1", "--cpus-per-task=4",
        "--kill-on-bad-exit=1", "--export=ALL", sys.executable, "-m", "quranft", *argv]


def test_each_task_gets_the_cpus_the_job_holds_per_task_and_its_process_uses_them(in_slurm_job, monkeypatch):
    """sbatch --ntasks-per-gpu=1 --cpus-per-task=8 on 4 GPUs holds 32 CPUs: each of the 4 training
    processes gets 8 (7 data-loading workers), not a quarter of 8."""
    from quranft.training.configure import Resources, threads_per_process

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")
    assert "--cpus-per-task=8" in launch.srun_command(4, 4, 1, 8, ["train"])
    resources = Resources(gpus=4, threads=8)
    assert threads_per_process(resources) == 2  # the job step itself, before it starts the tasks
    monkeypatch.setenv(launch.TASK_MARK, "1")
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert threads_per_process(resources) == 8
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")  # a task without the variable shares the threads
    assert threads_per_process(resources) == 2


def test_no_launch_outside_slurm_for_one_device_or_inside_a_started_task(in_slurm_job, monkeypatch):
    assert launch.srun_command(1, 1, 1, 8, ["train"]) is None
    monkeypatch.setenv(launch.TASK_MARK, "1")
    assert launch.srun_command(2, 2, 1, 8, ["train"]) is None
    monkeypatch.delenv(launch.TASK_MARK)
    monkeypatch.delenv("SLURM_JOB_ID")
    assert launch.srun_command(2, 2, 1, 8, ["train"]) is None  # Lightning starts the processes itself


def test_the_ranks_of_a_started_task_wait_for_rank_0(in_slurm_job, monkeypatch, tmp_path):
    monkeypatch.setenv(launch.TASK_MARK, "1")
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_STEP_ID", "3")
    assert launch.slurm_task_rank() == 1
    with pytest.raises(TimeoutError, match=r"\.prepared\.42\.3\.json: rank 0 did not finish preparing"):
        launch.wait_until_prepared(tmp_path, timeout=0.2, poll=0.05)
    ready = launch.announce_prepared(tmp_path, 120)
    assert launch.wait_until_prepared(tmp_path, timeout=0.2) == {"resume_step": 120}
    assert ready.name == ".prepared.42.3.json"


def test_training_on_the_cpu_beside_a_gpu_warns_loudly(monkeypatch, caplog):
    import torch

    from quranft.training.configure import Resources, device_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with caplog.at_level(logging.WARNING, logger="quranft"):
        settings = device_settings(Resources(gpus=0))
    assert settings["accelerator"] == "cpu"
    assert "TRAINING ON THE CPU although CUDA sees 2 GPU(s) here" in caplog.text and "!" * 100 in caplog.text
